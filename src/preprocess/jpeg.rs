//! Big JPEGs decoded at 1/4 or 1/8 of their size in the DCT domain, with libjpeg-turbo's decoder
//! (the one mozjpeg carries).
//!
//! Why: the network sees a 224-pixel crop, and a phone photo has 3000 or more rows. Decoding all
//! 12 megapixels and then shrinking them wastes most of the work; libjpeg can instead run a
//! smaller inverse DCT on each 8x8 block (at 1/8, only its mean), skipping most of the
//! dequantising, IDCT, upsampling and colour conversion. Huffman decoding cannot be skipped and
//! is what remains. zune-jpeg (through `image`) has no such mode, and jpeg-decoder's saved
//! nothing (its Huffman decoding is slower).
//!
//! What it changes: a reduced decode is a slightly different low-pass filter from decoding
//! fully and resizing once. At 1/8 each pixel is its block's mean (a box filter aligned to the
//! blocks), at 1/4 an inverse DCT of the block's lowest 2x2 frequencies; the reduced image is
//! rounded to 8 bits, and the bilinear pass then filters with a
//! triangle as wide as what is left of the reduction. Decoding fully and resizing once filters
//! with one triangle as wide as the whole reduction, rounding once. Keeping the reduced image at
//! twice the resize target at least ([`super::Preprocessing::decode_side`]) keeps the embeddings
//! within a cosine of 0.995 of the full decode's (`tests/jpeg_accuracy.rs`; the distribution on
//! phone photos is in BENCHMARKS.md).
//!
//! Anything this path cannot do exactly as the full decode would is left to it (see
//! [`decode_reduced`]), so the files accepted and their orientation and colours do not change.

use std::os::raw::c_int;
use std::panic::AssertUnwindSafe;

use image::metadata::Orientation;
use image::RgbImage;
use mozjpeg::{Decompress, Marker};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, J_COLOR_SPACE};

use super::{Decoded, PreprocessError};

/// Carried by the unwind out of libjpeg when it reports a warning or an error.
struct LibjpegComplaint;

/// libjpeg's default `error_exit` calls `exit()`, which would end the whole run for one bad file.
/// Unwinding out instead is allowed: the C code is built with unwind tables (`-fexceptions`, the
/// `unwinding` feature of mozjpeg-sys), every function is declared `"C-unwind"`, and dropping the
/// `Decompress` frees libjpeg's memory, as the `longjmp` that libjpeg's own documentation
/// suggests would. `resume_unwind` does not call the panic hook, so nothing is printed.
extern "C-unwind" fn unwind_on_error(_cinfo: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new(LibjpegComplaint));
}

/// libjpeg reports corrupt data (a bad Huffman code, a missing marker, extraneous bytes) as a
/// warning (level -1) and carries on with made-up data. Stopping at the first one hands the file
/// to the full decode, so a damaged file is decoded or refused exactly as before. This is what
/// TurboJPEG's "stop on warning" flag does. Levels 0 and up are trace messages.
extern "C-unwind" fn unwind_on_warning(_cinfo: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        std::panic::resume_unwind(Box::new(LibjpegComplaint));
    }
}

fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_error_mgr` is plain data (integers, function pointers and a pointer to
    // libjpeg's static message table), for which all zeroes is a valid value, and
    // `jpeg_std_error` only fills it in. It keeps no pointer to itself, so it can be moved.
    let mut errors: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut errors) };
    errors.error_exit = Some(unwind_on_error);
    errors.emit_message = Some(unwind_on_warning);
    // Only called by the default `error_exit` and `emit_message`, replaced above; never print.
    errors.output_message = None;
    errors
}

/// The reduction (8, 4, or 1 for none) that leaves the least work while keeping the shorter
/// side at least `shorter_side`. libjpeg rounds a reduced side up, so `shorter >= d *
/// shorter_side` is enough. The shorter side is the same before and after an EXIF rotation
/// (orientations 5 to 8 swap width and height), so the stored dimensions decide.
///
/// Never 2: libjpeg's plain C code at 1/2 took as long as zune-jpeg at full size (3 MP phone
/// photos: 23.2 against 23.3 ms), and moved embeddings further than 1/4 did (a 3 MP photo of
/// `tests/jpeg_accuracy.rs` to a cosine of 0.99499; BENCHMARKS.md, section 7).
pub(super) fn reduction(width: u32, height: u32, shorter_side: u32) -> u32 {
    let shorter = width.min(height);
    [8, 4]
        .into_iter()
        .find(|&d| shorter >= d * shorter_side.max(1))
        .unwrap_or(1)
}

/// The EXIF orientation, read as the full decode reads it: zune-jpeg keeps the last APP1
/// segment (the only markers saved) that starts with `Exif\0\0` and has more after it, and
/// `image` parses the TIFF structure that follows.
fn orientation(decompress: &Decompress<&[u8]>) -> Orientation {
    decompress
        .markers()
        .filter_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .filter(|exif| !exif.is_empty())
        .last()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

/// Decodes a JPEG reduced in the DCT domain to the smallest size whose shorter side is still at
/// least `shorter_side`, as RGB8 with its EXIF orientation beside it. `Ok(None)` leaves the file
/// to the full decode, which then behaves exactly as it did before this path existed. That happens when:
///
/// - no reduction by 4 or 8 is possible (the shorter side is under 4 x `shorter_side`): at
///   full size zune-jpeg is faster than libjpeg's C code without SIMD, and smaller images keep
///   the pixels (and cached vectors) they always had;
/// - the JPEG is CMYK or YCCK (libjpeg gives no RGB for these; the full decode converts them),
///   or of a colour space libjpeg does not know;
/// - libjpeg reports any warning or error: corrupt or truncated data, 12-bit or arithmetic-coded
///   JPEGs (this build reads neither), a header it cannot parse.
///
/// A header that claims more than `max_pixels` pixels is refused here, before anything is
/// allocated for it. The caller has already checked that the file is not cut short.
pub(super) fn decode_reduced(
    bytes: &[u8],
    max_pixels: u64,
    shorter_side: u32,
) -> Result<Option<Decoded>, PreprocessError> {
    complaints_to_none(|| libjpeg(bytes, max_pixels, Some(shorter_side)))
}

/// Decodes a JPEG at full size, as RGB8 with its EXIF orientation beside it, for the files that zune-jpeg refuses and
/// libjpeg reads: an Adobe (APP14) segment shorter than its 12 bytes, found on a public corpus,
/// is the one known. `Ok(None)` when libjpeg reports any warning or error too, or the JPEG is
/// not YCbCr, grey or RGB; the caller then keeps zune-jpeg's error. The pixel limit applies
/// from the header, as in [`decode_reduced`].
pub(super) fn decode_full(bytes: &[u8], max_pixels: u64) -> Result<Option<Decoded>, PreprocessError> {
    complaints_to_none(|| libjpeg(bytes, max_pixels, None))
}

/// Runs `decode`, turning libjpeg's complaints (unwound by [`error_manager`]'s handlers) into
/// `Ok(None)`.
fn complaints_to_none(
    decode: impl FnOnce() -> Result<Option<Decoded>, PreprocessError>,
) -> Result<Option<Decoded>, PreprocessError> {
    match std::panic::catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(payload) if payload.is::<LibjpegComplaint>() => Ok(None),
        // Anything else is a bug in this path or the wrapper: the caller's `isolated` makes it a
        // skipped file with its message, as for any decoder panic.
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// libjpeg's decode, reduced as much as keeps the shorter side at least `shorter_side`, or at
/// full size for `None`.
fn libjpeg(bytes: &[u8], max_pixels: u64, shorter_side: Option<u32>) -> Result<Option<Decoded>, PreprocessError> {
    // An `Err` here is a JPEG with tables but no image (libjpeg's "no image" case).
    let Ok(mut decompress) = Decompress::builder()
        .with_err(error_manager())
        .with_markers(&[Marker::APP(1)])
        .from_mem(bytes)
    else {
        return Ok(None);
    };
    // libjpeg refuses sides above 65500 while reading the header, so they fit in a u32.
    let (width, height) = (decompress.width() as u32, decompress.height() as u32);
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let reduction = shorter_side.map_or(1, |side| reduction(width, height, side));
    if (reduction == 1 && shorter_side.is_some())
        || !matches!(
            decompress.color_space(),
            J_COLOR_SPACE::JCS_YCbCr | J_COLOR_SPACE::JCS_GRAYSCALE | J_COLOR_SPACE::JCS_RGB
        )
    {
        return Ok(None);
    }
    let orientation = orientation(&decompress);
    // mozjpeg's scale is numerator / 8.
    decompress.scale((8 / reduction) as u8);
    let Ok(mut started) = decompress.rgb() else {
        return Ok(None);
    };
    let (w, h) = (started.width() as u32, started.height() as u32);
    // Reading from memory never suspends, so every row comes back or libjpeg unwinds.
    let Some(rgb) = started
        .read_scanlines::<u8>()
        .ok()
        .and_then(|pixels| RgbImage::from_raw(w, h, pixels))
    else {
        return Ok(None);
    };
    Ok(Some(Decoded {
        stored: rgb,
        orientation,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{decode, decode_at_least, DEFAULT_MAX_PIXELS};
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    fn encoded(pixels: &[u8], w: u32, h: u32, color: ColorType, sampling: SamplingFactor) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = Encoder::new(&mut bytes, 90);
        encoder.set_sampling_factor(sampling);
        encoder.encode(pixels, w as u16, h as u16, color).unwrap();
        bytes
    }

    /// Smooth gradients, so that a box filter and the DCT's reduction agree closely.
    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x + y) * 255 / (w + h)) as u8,
            ])
        })
    }

    /// The mean of each `d` x `d` block, which a 1/`d` reduction approximates.
    fn box_filtered(full: &RgbImage, d: u32) -> RgbImage {
        RgbImage::from_fn(full.width().div_ceil(d), full.height().div_ceil(d), |x, y| {
            let mut sum = [0u32; 3];
            let mut n = 0;
            for yy in y * d..((y + 1) * d).min(full.height()) {
                for xx in x * d..((x + 1) * d).min(full.width()) {
                    for (s, v) in sum.iter_mut().zip(full.get_pixel(xx, yy).0) {
                        *s += u32::from(v);
                    }
                    n += 1;
                }
            }
            image::Rgb(sum.map(|s| ((s + n / 2) / n) as u8))
        })
    }

    fn max_difference(a: &RgbImage, b: &RgbImage) -> u8 {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap()
    }

    #[test]
    fn the_reduction_keeps_the_shorter_side_at_least_the_target() {
        // (width, height, target) -> reduction; a phone photo is the same either way up.
        for (w, h, target, want) in [
            (4000, 3000, 512, 4),
            (3000, 4000, 512, 4),
            (3264, 2448, 512, 4),
            (2448, 3264, 512, 4),
            (4096, 4096, 512, 8),
            (4095, 6000, 512, 4),
            (2048, 1536, 512, 1),
            (2048, 1536, 256, 4),
            (1024, 768, 256, 1),
            (193, 130, 256, 1),
            (40, 30, 0, 8),
        ] {
            assert_eq!(reduction(w, h, target), want, "{w}x{h} for {target}");
        }
    }

    #[test]
    fn reduced_decodes_are_block_means_of_the_full_decode() {
        let img = gradient(200, 150);
        for sampling in [SamplingFactor::F_1_1, SamplingFactor::F_2_2] {
            let bytes = encoded(img.as_raw(), 200, 150, ColorType::Rgb, sampling);
            let full = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap();
            // Target -> reduction: 150 >= 8 * 18 and 4 * 37; from 38 on, none (never 2).
            for (target, d, size) in [(18, 8, (25, 19)), (37, 4, (50, 38))] {
                let reduced = decode_reduced(&bytes, DEFAULT_MAX_PIXELS, target)
                    .unwrap()
                    .expect("reduced")
                    .upright();
                assert_eq!(reduced.dimensions(), size, "1/{d}");
                let diff = max_difference(&reduced, &box_filtered(&full, d));
                assert!(diff <= 6, "1/{d} {sampling:?}: up to {diff} from the block means");
                assert_eq!(
                    decode_at_least(&bytes, DEFAULT_MAX_PIXELS, target).unwrap().upright(),
                    reduced
                );
            }
            // No reduction by 4 or 8 possible: the full decode's pixels, exactly.
            assert!(decode_reduced(&bytes, DEFAULT_MAX_PIXELS, 38).unwrap().is_none());
            assert_eq!(decode_at_least(&bytes, DEFAULT_MAX_PIXELS, 38).unwrap().upright(), full);
        }
    }

    #[test]
    fn grey_jpegs_come_out_as_rgb() {
        let grey: Vec<u8> = gradient(64, 48).pixels().map(|p| p.0[0]).collect();
        let bytes = encoded(&grey, 64, 48, ColorType::Luma, SamplingFactor::F_1_1);
        let reduced = decode_reduced(&bytes, DEFAULT_MAX_PIXELS, 6)
            .unwrap()
            .expect("reduced")
            .upright();
        assert_eq!(reduced.dimensions(), (8, 6));
        assert!(reduced.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        let full = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap();
        assert!(max_difference(&reduced, &box_filtered(&full, 8)) <= 4);
    }

    /// CMYK and YCCK are left to the full decode, which converts them as it always did.
    #[test]
    fn cmyk_and_ycck_jpegs_take_the_full_decode() {
        let cmyk = [0u8, 255, 255, 0].repeat(64 * 48);
        for color in [ColorType::Cmyk, ColorType::CmykAsYcck] {
            let bytes = encoded(&cmyk, 64, 48, color, SamplingFactor::F_1_1);
            assert!(decode_reduced(&bytes, DEFAULT_MAX_PIXELS, 6).unwrap().is_none());
            assert_eq!(
                decode_at_least(&bytes, DEFAULT_MAX_PIXELS, 6).unwrap().upright(),
                decode(&bytes, DEFAULT_MAX_PIXELS).unwrap()
            );
        }
    }

    #[test]
    fn the_pixel_limit_is_applied_from_the_header() {
        let bytes = encoded(gradient(64, 48).as_raw(), 64, 48, ColorType::Rgb, SamplingFactor::F_2_2);
        assert_eq!(decode_at_least(&bytes, 64 * 48, 6).unwrap().stored.dimensions(), (8, 6));
        let err = decode_at_least(&bytes, 64 * 48 - 1, 6).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::TooLarge {
                    width: 64,
                    height: 48,
                    ..
                }
            ),
            "{err}"
        );
        // A header that claims 30000 x 30000 (a decompression bomb) is refused before decoding.
        let mut bomb = bytes.clone();
        let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bomb[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
        let err = decode_reduced(&bomb, DEFAULT_MAX_PIXELS, 6).unwrap_err();
        assert!(matches!(err, PreprocessError::TooLarge { width: 30000, .. }), "{err}");
    }

    #[test]
    fn truncated_jpegs_are_refused_before_decoding() {
        let bytes = encoded(gradient(64, 48).as_raw(), 64, 48, ColorType::Rgb, SamplingFactor::F_2_2);
        let err = decode_at_least(&bytes[..bytes.len() * 7 / 10], DEFAULT_MAX_PIXELS, 6).unwrap_err();
        assert!(matches!(err, PreprocessError::TruncatedJpeg), "{err}");
    }

    /// A warning (entropy-coded data that ends before the last block) and an error (a precision
    /// this build cannot read) both hand the file to the full decode, which then decides as it
    /// did before: the result is the full decode's, pixels or error message alike, and the
    /// process is still here.
    #[test]
    fn libjpeg_warnings_and_errors_leave_the_file_to_the_full_decode() {
        let noisy = RgbImage::from_fn(128, 96, |x, y| {
            let n = (x * 7919 + y * 104_729) % 251;
            image::Rgb([n as u8, (n * 3 % 251) as u8, (255 - n) as u8])
        });
        let bytes = encoded(noisy.as_raw(), 128, 96, ColorType::Rgb, SamplingFactor::F_2_2);
        let scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        // The second half of the scan cut out, the end-of-image marker kept: libjpeg meets the
        // marker while blocks are still missing ("premature end of data segment").
        let end = bytes.len() - 2;
        let corrupt = [&bytes[..(scan + end) / 2], &bytes[end..]].concat();
        let mut twelve_bit = bytes.clone();
        let sof = twelve_bit.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        twelve_bit[sof + 4] = 12;
        for (name, file) in [("corrupt", &corrupt), ("12-bit", &twelve_bit)] {
            assert!(
                decode_reduced(file, DEFAULT_MAX_PIXELS, 6).unwrap().is_none(),
                "{name}: libjpeg did not complain"
            );
            let full = decode(file, DEFAULT_MAX_PIXELS).map_err(|e| e.to_string());
            let reduced = decode_at_least(file, DEFAULT_MAX_PIXELS, 6)
                .map(Decoded::upright)
                .map_err(|e| e.to_string());
            assert_eq!(reduced, full, "{name}");
        }
    }
}
