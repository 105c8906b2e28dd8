//! TIFFs that `image`'s TIFF decoder refuses or gets wrong, decoded with the tiff crate directly
//! and converted to RGB as PIL converts them.
//!
//! Why: `image` 0.25 maps only some of the tiff crate's colour types to its own, and refuses
//! the rest: palette images, grey with alpha, grey of 2, 4 or 32 bits (integer or float),
//! YCbCr (raw or JPEG-compressed), CMYK in separate planes, CIE L*a*b*. All of them are found
//! in scanned and exported photo folders, and PIL decodes them all. Worse, it reads RGBA with associated
//! (premultiplied) alpha as if it were unassociated, so dropping the alpha leaves colours
//! darkened by it: a wrong decode, with nothing said. The tiff crate reads all their samples;
//! only the conversion to RGB is done here.
//!
//! What stays with `image`: every other TIFF (grey of 1, 8 or 16 bits, RGB and RGBA with
//! unassociated alpha of 8, 16 or 32-bit float samples, contiguous CMYK), so their pixels and
//! messages do not change. `tests/decode_coverage.rs` compares both paths with PIL.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageFormat, RgbImage};
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::{ExtraSamples, PhotometricInterpretation, PlanarConfiguration, Tag};
use tiff::ColorType;

use super::{Decoded, PreprocessError};

/// How this module turns the samples of one pixel into RGB.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conversion {
    /// Indices into the ColorMap tag.
    Palette,
    /// One grey sample, maybe followed by alpha and others (ignored); `invert` for WhiteIsZero.
    Grey { invert: bool },
    /// Y, Cb, Cr as JPEG defines them (ITU-R BT.601, full range), which PIL's conversion uses.
    YCbCr,
    /// C, M, Y, K, converted as PIL does: `(255 - c) * (255 - k) / 255`.
    Cmyk,
    /// R, G, B premultiplied by the alpha that follows them.
    AssociatedRgba,
    /// CIE L*a*b* (D50) with signed a*, b* (PhotometricInterpretation 8), converted to sRGB by
    /// LittleCMS as PIL converts its "LAB" images.
    Lab,
}

fn decoding_error(e: tiff::TiffError) -> PreprocessError {
    PreprocessError::Decode(image::ImageError::Decoding(image::error::DecodingError::new(
        ImageFormat::Tiff.into(),
        e,
    )))
}

/// Decodes a TIFF that `image` would refuse or decode wrongly (see the module documentation),
/// as RGB8 with its orientation beside it. `Ok(None)` leaves the file to `image`: every TIFF it decodes right, and
/// files whose header the tiff crate cannot read (so that `image` gives its usual message). A
/// header that claims more than `max_pixels` pixels is refused before any pixel is read.
pub(super) fn decode(bytes: &[u8], max_pixels: u64) -> Result<Option<Decoded>, PreprocessError> {
    let Ok(mut decoder) = Decoder::new(Cursor::new(bytes)) else {
        return Ok(None);
    };
    let Some(conversion) = conversion(&mut decoder) else {
        return Ok(None);
    };
    let (width, height) = decoder.dimensions().map_err(decoding_error)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let color = decoder.colortype().map_err(decoding_error)?;
    let bits = color.bit_depth();
    let samples = decoder
        .find_tag_unsigned::<u16>(Tag::SamplesPerPixel)
        .map_err(decoding_error)?
        .unwrap_or(1)
        .max(1) as usize;
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(decoding_error)?
        == Some(PlanarConfiguration::Planar.to_u16());
    let colormap = if conversion == Conversion::Palette {
        decoder.get_tag_u16_vec(Tag::ColorMap).map_err(decoding_error)?
    } else {
        Vec::new()
    };
    let orientation = decoder
        .find_tag_unsigned::<u16>(Tag::Orientation)
        .ok()
        .flatten()
        .and_then(|v| Orientation::from_exif(v.min(255) as u8))
        .unwrap_or(Orientation::NoTransforms);

    let mut result = DecodingResult::U8(Vec::new());
    let layout = decoder.read_image_to_buffer(&mut result).map_err(decoding_error)?;
    if planar && layout.planes < samples {
        return Err(decoding_error(tiff::TiffError::LimitsExceeded));
    }
    let plane_stride = layout.plane_stride.map_or(0, |n| n.get());
    let w = width as usize;
    let values = Samples {
        result: &result,
        bits,
        plane_stride,
        row_samples: if planar { w } else { w * samples },
    };
    let sample = |x: usize, y: usize, s: usize| -> f64 {
        if planar {
            values.get(s, y, x)
        } else {
            values.get(0, y, x * samples + s)
        }
    };
    let max = match result {
        DecodingResult::F32(_) | DecodingResult::F64(_) | DecodingResult::F16(_) => 1.0,
        _ => ((1u64 << bits.min(63)) - 1) as f64,
    };
    // 0..=1 scaled to 0..=255, rounded, as headstart's reference (PIL's samples) is.
    let to8 = |v: f64| -> u8 { ((v / max).clamp(0.0, 1.0) * 255.0 + 0.5) as u8 };

    let entries = colormap.len() / 3;
    let mut rgb = RgbImage::new(width, height);
    for (x, y, pixel) in rgb.enumerate_pixels_mut() {
        let (x, y) = (x as usize, y as usize);
        pixel.0 = match conversion {
            Conversion::Palette => {
                let index = (sample(x, y, 0) as usize).min(entries.saturating_sub(1));
                // PIL keeps the high byte of each 16-bit colour map entry.
                [0, 1, 2].map(|c| colormap.get(c * entries + index).map_or(0, |v| (v >> 8) as u8))
            }
            Conversion::Grey { invert } => {
                let v = to8(sample(x, y, 0));
                let v = if invert { 255 - v } else { v };
                [v, v, v]
            }
            Conversion::YCbCr => ycbcr_to_rgb([0, 1, 2].map(|s| to8(sample(x, y, s)))),
            Conversion::Cmyk => cmyk_to_rgb([0, 1, 2, 3].map(|s| to8(sample(x, y, s)))),
            Conversion::AssociatedRgba => {
                let [r, g, b, a] = [0, 1, 2, 3].map(|s| to8(sample(x, y, s)));
                unpremultiply([r, g, b], a)
            }
            // Signed a*, b* to the offset encoding LittleCMS reads (a* + 128), for below.
            Conversion::Lab => {
                let [l, a, b] = [0, 1, 2].map(|s| to8(sample(x, y, s)));
                [l, a ^ 0x80, b ^ 0x80]
            }
        };
    }
    if conversion == Conversion::Lab {
        lab_to_srgb(&mut rgb)?;
    }
    Ok(Some(Decoded {
        stored: rgb,
        orientation,
    }))
}

/// The files this module decodes, and how; `None` for those left to `image`.
fn conversion(decoder: &mut Decoder<Cursor<&[u8]>>) -> Option<Conversion> {
    let color = decoder.colortype().ok()?;
    let photometric = decoder
        .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
        .ok()
        .flatten()
        .and_then(PhotometricInterpretation::from_u16)?;
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .ok()
        .flatten()
        == Some(PlanarConfiguration::Planar.to_u16());
    let extra: Vec<u16> = decoder
        .find_tag_unsigned_vec(Tag::ExtraSamples)
        .ok()
        .flatten()
        .unwrap_or_default();
    let associated = extra.first() == Some(&ExtraSamples::AssociatedAlpha.to_u16());
    let invert = photometric == PhotometricInterpretation::WhiteIsZero;
    match color {
        ColorType::Palette(1..=16) => Some(Conversion::Palette),
        // `image` reads grey of 1, 8 and 16 bits (and WhiteIsZero, inverting it) itself.
        ColorType::Gray(1 | 8 | 16) => None,
        ColorType::Gray(2 | 4 | 32 | 64) => Some(Conversion::Grey { invert }),
        // Grey with alpha (the tiff crate calls two grey samples "multiband").
        ColorType::Multiband { .. } | ColorType::GrayA(_)
            if matches!(
                photometric,
                PhotometricInterpretation::BlackIsZero | PhotometricInterpretation::WhiteIsZero
            ) =>
        {
            Some(Conversion::Grey { invert })
        }
        ColorType::YCbCr(8) => Some(Conversion::YCbCr),
        ColorType::CMYK(8 | 16) if planar => Some(Conversion::Cmyk),
        ColorType::CMYKA(8 | 16) => Some(Conversion::Cmyk),
        ColorType::RGBA(8 | 16) if associated => Some(Conversion::AssociatedRgba),
        ColorType::Lab(8) if photometric == PhotometricInterpretation::CIELab => Some(Conversion::Lab),
        _ => None,
    }
}

/// The samples the tiff crate read, by plane, row and position in the row: whole-byte samples
/// as they are, narrower ones unpacked from rows that each start on a byte.
struct Samples<'a> {
    result: &'a DecodingResult,
    bits: u8,
    /// Bytes from one plane to the next (separate planes only).
    plane_stride: usize,
    /// Samples in one row of one plane.
    row_samples: usize,
}

impl Samples<'_> {
    fn get(&self, plane: usize, row: usize, index: usize) -> f64 {
        let bits = usize::from(self.bits);
        if bits < 8 {
            let DecodingResult::U8(bytes) = self.result else {
                return 0.0;
            };
            let row_bytes = (self.row_samples * bits).div_ceil(8);
            let bit = index * bits;
            let byte = bytes
                .get(plane * self.plane_stride + row * row_bytes + bit / 8)
                .copied()
                .unwrap_or(0);
            return f64::from((byte >> (8 - bits - bit % 8)) & ((1u8 << bits) - 1));
        }
        fn at<T: Copy + Into<f64>>(v: &[T], plane_stride: usize, plane: usize, i: usize) -> f64 {
            let offset = plane * plane_stride / std::mem::size_of::<T>();
            v.get(offset + i).copied().map_or(0.0, Into::into)
        }
        let i = row * self.row_samples + index;
        match self.result {
            DecodingResult::U8(v) => at(v, self.plane_stride, plane, i),
            DecodingResult::U16(v) => at(v, self.plane_stride, plane, i),
            DecodingResult::U32(v) => at(v, self.plane_stride, plane, i),
            DecodingResult::F32(v) => at(v, self.plane_stride, plane, i),
            DecodingResult::F64(v) => at(v, self.plane_stride, plane, i),
            DecodingResult::U64(v) => {
                let offset = plane * self.plane_stride / 8;
                v.get(offset + i).map_or(0.0, |&x| x as f64)
            }
            _ => 0.0,
        }
    }
}

/// 8-bit CIE L*a*b* (a*, b* offset by 128) to sRGB in place, as PIL's `convert("RGB")` of a
/// "LAB" image does it: LittleCMS from its built-in v2 Lab profile (D50) to its built-in sRGB,
/// perceptual intent, 8-bit v2 Lab in. Hand-written formulas agree in gamut but not where a
/// colour falls outside sRGB, which LittleCMS's gamut handling and interpolation decide.
fn lab_to_srgb(pixels: &mut RgbImage) -> Result<(), PreprocessError> {
    let failed = |what: &str, e: lcms2::Error| {
        PreprocessError::Decode(image::ImageError::Decoding(image::error::DecodingError::new(
            ImageFormat::Tiff.into(),
            format!("LittleCMS could not {what}: {e}"),
        )))
    };
    let d50 = lcms2::XYZ2xyY(&lcms2::CIEXYZ {
        X: 0.9642,
        Y: 1.0,
        Z: 0.8249,
    });
    let lab = lcms2::Profile::new_lab2_context(lcms2::GlobalContext::new(), &d50)
        .map_err(|e| failed("make a Lab profile", e))?;
    let srgb = lcms2::Profile::new_srgb();
    let transform = lcms2::Transform::<u8, u8>::new(
        &lab,
        lcms2::PixelFormat::LabV2_8,
        &srgb,
        lcms2::PixelFormat::RGB_8,
        lcms2::Intent::Perceptual,
    )
    .map_err(|e| failed("convert Lab to sRGB", e))?;
    // Lab and RGB pixels are both 3 bytes, so LittleCMS can convert the buffer where it lies.
    transform.transform_in_place(pixels);
    Ok(())
}

/// PIL's YCbCr to RGB (`ImagingConvertYCbCr2RGB`): ITU-R BT.601 full range, rounded.
fn ycbcr_to_rgb([y, cb, cr]: [u8; 3]) -> [u8; 3] {
    let (y, cb, cr) = (f64::from(y), f64::from(cb) - 128.0, f64::from(cr) - 128.0);
    [y + 1.402 * cr, y - 0.344_136 * cb - 0.714_136 * cr, y + 1.772 * cb].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// PIL's CMYK to RGB (`cmyk2rgb`): `(255 - k) - c * (255 - k) / 255`, rounded, per channel.
fn cmyk_to_rgb([c, m, y, k]: [u8; 4]) -> [u8; 3] {
    let nk = 255 - u32::from(k);
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    [c, m, y].map(|v| (nk - muldiv255(u32::from(v), nk)) as u8)
}

/// PIL's premultiplied RGBA to RGB (`rgba2rgbA`, then alpha dropped): each colour divided by
/// the alpha, truncated and clipped; alpha 0 and 255 leave the colour as it is.
fn unpremultiply(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    if alpha == 0 || alpha == 255 {
        return rgb;
    }
    rgb.map(|v| (255 * u32::from(v) / u32::from(alpha)).min(255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from PIL 13: `Image.new("CMYK", (1, 1), c).convert("RGB")` and the same for
    /// "YCbCr" and "RGBa". PIL converts YCbCr with fixed-point tables, so within 1 there.
    #[test]
    fn conversions_give_pils_values() {
        assert_eq!(cmyk_to_rgb([0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb([255, 255, 255, 255]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb([10, 100, 200, 50]), [197, 125, 44]);
        assert_eq!(ycbcr_to_rgb([128, 128, 128]), [128, 128, 128]);
        let got = ycbcr_to_rgb([100, 30, 220]);
        for (g, want) in got.iter().zip([228u8, 68, 0]) {
            assert!(g.abs_diff(want) <= 1, "{got:?}");
        }
        assert_eq!(unpremultiply([10, 20, 30], 40), [63, 127, 191]);
        assert_eq!(unpremultiply([10, 20, 30], 0), [10, 20, 30]);
    }
}
