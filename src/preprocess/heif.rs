//! HEIC and AVIF: the HEIF container (ISO-BMFF boxes) around an HEVC or AV1 picture.
//!
//! Phone cameras save HEIC by default, so a folder of phone photos is often full of them. The
//! image crate decodes neither, and no pure-Rust HEVC decoder exists, so they are decoded by the
//! system's libheif (with libde265 for HEVC, dav1d or aom for AV1) behind the `heif` cargo
//! feature. Without it a HEIC or AVIF file is still recognised, from its bytes, and skipped with
//! a reason that names the feature, instead of the image crate's "format not supported".
//!
//! The bindings are libheif-sys 1.14.4, the last that links libheif 1.14-1.16 (Debian 12 ships
//! 1.15); Cargo.toml says why not its safe wrapper. The unsafe code is this file's [`decode`]:
//! one context, one image handle and one decoded image, each freed by a guard.
//!
//! libheif applies the `irot`, `imir` and `clap` boxes (rotation, mirror, crop) when it decodes,
//! which is where HEIF keeps the orientation: phones also write an EXIF orientation tag, but it
//! only repeats the boxes (the HEIF standard says to ignore it), so it is not applied again.

use super::PreprocessError;

/// An image format of the HEIF family, told from the `ftyp` box's brands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeifFormat {
    /// HEVC pictures (`heic`, `heix`, `hevc`, ... brands): phone photos.
    Heic,
    /// AV1 pictures (`avif`, `avis` brands).
    Avif,
    /// Only the generic `mif1`/`msf1` brands: HEIF with some other codec (JPEG, uncompressed).
    Heif,
}

impl HeifFormat {
    /// The format's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            HeifFormat::Heic => "HEIC",
            HeifFormat::Avif => "AVIF",
            HeifFormat::Heif => "HEIF",
        }
    }

    fn from_brand(brand: &[u8]) -> Option<HeifFormat> {
        match brand {
            b"avif" | b"avis" => Some(HeifFormat::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => Some(HeifFormat::Heic),
            b"mif1" | b"msf1" => Some(HeifFormat::Heif),
            _ => None,
        }
    }
}

/// The HEIF format of `bytes`, if they start with an `ftyp` box with a HEIF brand: the major
/// brand if it names a codec, else the first compatible brand that does (AVIF files often carry
/// `mif1` first), else the generic HEIF. MP4 and QuickTime files, which also start with `ftyp`,
/// have none of these brands.
pub fn sniff(bytes: &[u8]) -> Option<HeifFormat> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    // The box: size, "ftyp", major brand, minor version, compatible brands.
    let ftyp = &bytes[..size.clamp(16, bytes.len())];
    let brands = std::iter::once(&ftyp[8..12]).chain(ftyp[16..].chunks_exact(4));
    let formats: Vec<HeifFormat> = brands.filter_map(HeifFormat::from_brand).collect();
    let codec = formats.iter().copied().find(|&f| f != HeifFormat::Heif);
    codec.or(formats.first().copied())
}

/// Without the `heif` feature: every HEIF-family file is refused with
/// [`PreprocessError::NotInThisBuild`].
#[cfg(not(feature = "heif"))]
pub fn decode(_bytes: &[u8], format: HeifFormat, _max_pixels: u64) -> Result<image::RgbImage, PreprocessError> {
    Err(PreprocessError::NotInThisBuild { format: format.name() })
}

/// Decodes the primary image of a HEIF-family file to 8-bit RGB, upright (see the module
/// docs), alpha dropped and more than 8 bits rounded to 8 (as PIL's `convert("RGB")` does). Its
/// size is read first (after rotation and crop) and an image above `max_pixels` is refused
/// before anything is decoded. libheif's errors are [`PreprocessError::Decode`]s.
#[cfg(feature = "heif")]
pub fn decode(bytes: &[u8], format: HeifFormat, max_pixels: u64) -> Result<image::RgbImage, PreprocessError> {
    ffi::decode(bytes, format, max_pixels)
}

#[cfg(feature = "heif")]
mod ffi {
    use std::ffi::CStr;
    use std::ptr;

    use libheif_sys as lh;

    use super::{HeifFormat, PreprocessError};

    /// A libheif error as the image crate's decoding error, so that it reads like other formats'
    /// ("cannot decode: Format error decoding HEIC: ...").
    fn check(err: lh::heif_error, format: HeifFormat) -> Result<(), PreprocessError> {
        if err.code == lh::heif_error_code_heif_error_Ok {
            return Ok(());
        }
        let message = if err.message.is_null() {
            format!("libheif error {}.{}", err.code, err.subcode)
        } else {
            // SAFETY: libheif's messages are NUL-terminated strings that live at least as long as
            // the context that returned them, which is still alive here.
            unsafe { CStr::from_ptr(err.message) }.to_string_lossy().into_owned()
        };
        Err(failed(format, message))
    }

    fn failed(format: HeifFormat, message: String) -> PreprocessError {
        let hint = image::error::ImageFormatHint::Name(format.name().to_string());
        PreprocessError::Decode(image::ImageError::Decoding(image::error::DecodingError::new(
            hint, message,
        )))
    }

    /// Owns a pointer and frees it with `free` when dropped.
    struct Guard<T> {
        ptr: *mut T,
        free: unsafe extern "C" fn(*mut T),
    }

    impl<T> Drop for Guard<T> {
        fn drop(&mut self) {
            if !self.ptr.is_null() {
                // SAFETY: `ptr` came from the libheif call that `free` belongs to, and is freed
                // once, here.
                unsafe { (self.free)(self.ptr) }
            }
        }
    }

    unsafe extern "C" fn release_handle(handle: *mut lh::heif_image_handle) {
        lh::heif_image_handle_release(handle)
    }

    unsafe extern "C" fn release_image(image: *mut lh::heif_image) {
        lh::heif_image_release(image)
    }

    pub(super) fn decode(
        bytes: &[u8],
        format: HeifFormat,
        max_pixels: u64,
    ) -> Result<image::RgbImage, PreprocessError> {
        // libheif asks for one `heif_init` before use; it is never undone, since the plugins it
        // registers serve every later image.
        static INIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: a null parameter block is allowed; `Once` makes it a single call.
        INIT.call_once(|| unsafe {
            lh::heif_init(ptr::null_mut());
        });

        // SAFETY: every pointer passed below is either checked non-null or was just filled by
        // libheif after it reported success; the guards free each object once, the image and
        // handle before the context they came from (drop order is the reverse of declaration).
        // `bytes` outlives the context that reads it without a copy.
        unsafe {
            let context = Guard {
                ptr: lh::heif_context_alloc(),
                free: lh::heif_context_free,
            };
            if context.ptr.is_null() {
                return Err(failed(format, "libheif could not allocate a context".into()));
            }
            // Tiles (a phone photo is a grid of 512x512 tiles) are decoded on this thread:
            // `extract` already decodes one image per core.
            lh::heif_context_set_max_decoding_threads(context.ptr, 0);
            check(
                lh::heif_context_read_from_memory_without_copy(
                    context.ptr,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    ptr::null(),
                ),
                format,
            )?;
            let mut handle = Guard {
                ptr: ptr::null_mut(),
                free: release_handle,
            };
            check(
                lh::heif_context_get_primary_image_handle(context.ptr, &mut handle.ptr),
                format,
            )?;

            // The size after rotation and crop: what the decoded image will have.
            let width = lh::heif_image_handle_get_width(handle.ptr).max(0) as u32;
            let height = lh::heif_image_handle_get_height(handle.ptr).max(0) as u32;
            if width as u64 * height as u64 > max_pixels {
                return Err(PreprocessError::TooLarge {
                    width,
                    height,
                    limit: max_pixels,
                });
            }

            // Null options: libheif's defaults, which apply the transformation boxes.
            let mut decoded = Guard {
                ptr: ptr::null_mut(),
                free: release_image,
            };
            check(
                lh::heif_decode_image(
                    handle.ptr,
                    &mut decoded.ptr,
                    lh::heif_colorspace_heif_colorspace_RGB,
                    lh::heif_chroma_heif_chroma_interleaved_RGB,
                    ptr::null(),
                ),
                format,
            )?;
            let channel = lh::heif_channel_heif_channel_interleaved;
            let bits = lh::heif_image_get_bits_per_pixel_range(decoded.ptr, channel);
            let w = lh::heif_image_get_width(decoded.ptr, channel);
            let h = lh::heif_image_get_height(decoded.ptr, channel);
            let mut stride = 0;
            let plane = lh::heif_image_get_plane_readonly(decoded.ptr, channel, &mut stride);
            let row = 3 * w.max(0) as usize;
            if plane.is_null() || bits != 8 || w <= 0 || h <= 0 || (stride as usize) < row {
                return Err(failed(
                    format,
                    format!("libheif gave an unexpected image ({w}x{h}, {bits} bits, stride {stride})"),
                ));
            }
            let mut rgb = Vec::with_capacity(row * h as usize);
            for y in 0..h as usize {
                rgb.extend_from_slice(std::slice::from_raw_parts(plane.add(y * stride as usize), row));
            }
            Ok(image::RgbImage::from_raw(w as u32, h as u32, rgb).expect("the buffer holds w x h RGB pixels"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + 4 * compatible.len()) as u32).to_be_bytes());
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(major);
        b.extend_from_slice(&[0; 4]);
        for c in compatible {
            b.extend_from_slice(*c);
        }
        // The next box, whose bytes must not be read as brands.
        b.extend_from_slice(b"\0\0\0\x10metaavif\0\0\0\0");
        b
    }

    #[test]
    fn brands_tell_heic_from_avif() {
        // An iPhone photo, a Samsung one, Pillow's AVIF, libavif's, a JPEG-coded HEIF.
        assert_eq!(sniff(&ftyp(b"heic", &[b"mif1", b"heic"])), Some(HeifFormat::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])), Some(HeifFormat::Heic));
        assert_eq!(
            sniff(&ftyp(b"avif", &[b"avif", b"mif1", b"miaf", b"MA1B"])),
            Some(HeifFormat::Avif)
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"avif", b"mif1", b"miaf"])),
            Some(HeifFormat::Avif)
        );
        assert_eq!(sniff(&ftyp(b"avis", &[])), Some(HeifFormat::Avif));
        assert_eq!(sniff(&ftyp(b"heix", &[])), Some(HeifFormat::Heic));
        assert_eq!(sniff(&ftyp(b"msf1", &[b"hevc"])), Some(HeifFormat::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"miaf"])), Some(HeifFormat::Heif));
    }

    #[test]
    fn other_files_are_not_heif() {
        // MP4 and QuickTime also start with `ftyp`; `avif` in the next box is not a brand.
        assert_eq!(sniff(&ftyp(b"isom", &[b"isom", b"iso2", b"mp41"])), None);
        assert_eq!(sniff(&ftyp(b"qt  ", &[])), None);
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0 a JPEG, say"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\0\0\0\x18ftypheic"), None, "cut short before the minor version");
        // A size that points past the end, or below the box's fixed part, is clamped.
        let mut huge = ftyp(b"heic", &[]);
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(sniff(&huge), Some(HeifFormat::Heic));
        let mut tiny = ftyp(b"avif", &[]);
        tiny[..4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(sniff(&tiny), Some(HeifFormat::Avif));
    }
}
