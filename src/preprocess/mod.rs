//! Image bytes to the backbone's input tensor.
//!
//! The geometry is the classic evaluation crop: scale the shorter side to `resize`, take the
//! centred `size` x `size` square. It is done in one resampling pass by resizing a centred crop
//! box of the original, which is what PIL's `resize(box=...)` does, so a Python reference can
//! reproduce the pixels. The normalisation presets are the ones the pretrained weights expect.
//! Big JPEGs are decoded already reduced (`jpeg.rs`), since the crop needs only a fraction of
//! their pixels. HEIC and AVIF go to libheif when the `heif` feature is on (`heif.rs`).

mod heif;
mod jpeg;
mod tiff;

use std::cell::Cell;
use std::io::Cursor;
use std::panic::UnwindSafe;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};

/// How pixel values in 0..=255 become network inputs. The names and their aliases are written
/// once, in the `ValueEnum` attributes, which [`FromStr`](std::str::FromStr) and the CLI's
/// choices (listed in `--help`) read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// TF-Lite models such as EfficientNet-Lite: `(x - 127) / 128`.
    Tflite,
    /// Inception / MobileNet style: `x / 127.5 - 1`, values in [-1, 1].
    #[value(alias = "tf")]
    Inception,
    /// Keras ResNet50 `caffe` mode: RGB to BGR, minus the ImageNet BGR means, no scaling.
    #[serde(alias = "keras-caffe")]
    #[value(alias = "keras-caffe")]
    Caffe,
    /// torchvision: `x / 255`, then ImageNet mean and standard deviation.
    #[serde(alias = "torchvision")]
    #[value(alias = "torchvision")]
    Torch,
}

impl Preset {
    /// The preset names, as `--preset` takes them, for messages and help.
    pub const NAMES: &'static str = "tflite, inception, caffe, torch";

    /// The preset's name, as `--preset` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tflite => "tflite",
            Preset::Inception => "inception",
            Preset::Caffe => "caffe",
            Preset::Torch => "torch",
        }
    }

    /// Per output channel (in the order the network sees them): the source RGB channel, scale
    /// and offset, so that `value = pixel[source] * scale + offset`.
    fn channels(self) -> [(usize, f32, f32); 3] {
        match self {
            Preset::Tflite => [0, 1, 2].map(|c| (c, 1.0 / 128.0, -127.0 / 128.0)),
            Preset::Inception => [0, 1, 2].map(|c| (c, 1.0 / 127.5, -1.0)),
            Preset::Caffe => [(2, 1.0, -103.939), (1, 1.0, -116.779), (0, 1.0, -123.68)],
            Preset::Torch => {
                const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
                const STD: [f32; 3] = [0.229, 0.224, 0.225];
                [0, 1, 2].map(|c| (c, 1.0 / (255.0 * STD[c]), -MEAN[c] / STD[c]))
            }
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Preset as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown preset `{s}`: use one of {}", Preset::NAMES))
    }
}

/// Memory order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Channels first: `[N, 3, H, W]`.
    Nchw,
    /// Channels last: `[N, H, W, 3]`.
    Nhwc,
}

/// Everything that decides the pixels a backbone sees; part of the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Preprocessing {
    /// How pixel values are scaled, normalised and channel-ordered.
    pub preset: Preset,
    /// The shorter side is scaled to this before the centre crop.
    pub resize: u32,
    /// Side of the square crop fed to the network.
    pub size: u32,
    /// Memory order of the input tensor, read from the model's input shape.
    pub layout: Layout,
}

impl Preprocessing {
    /// Floats per image in the input tensor.
    pub fn len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Whether the crop is empty (`size` 0), so an image gives no floats.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The shorter side that a big JPEG is decoded down to at the least (see
    /// [`decode_at_least`]): twice `resize`, so that the bilinear pass still shrinks by 2x or
    /// more. Down to `resize` itself would decode 8-12 MP phone photos faster (at 1/8 instead of
    /// 1/4), but their embeddings then fell to a cosine of 0.990 from a full decode's: the
    /// reduced image is rounded to 8 bits and filtered differently, and the network notices.
    /// Twice keeps them at 0.996 or more (BENCHMARKS.md, "Phone photos").
    pub fn decode_side(&self) -> u32 {
        2 * self.resize
    }
}

/// Above this many pixels an image is refused before it is decoded: a small file can claim a
/// huge canvas (a decompression bomb) and would take gigabytes. 100 megapixels is beyond any
/// camera photo in common use.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Why one image could not be turned into network input; the image is skipped.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The image header claims more pixels than the `--max-pixels` limit.
    #[error("the image is {width}x{height} pixels, above the limit of {limit} pixels; it was not decoded (raise --max-pixels to include it)")]
    TooLarge {
        /// Width in pixels from the header.
        width: u32,
        /// Height in pixels from the header.
        height: u32,
        /// The limit, in pixels.
        limit: u64,
    },
    /// The file is not a decodable image of a supported format.
    #[error("cannot decode: {0}")]
    Decode(#[from] image::ImageError),
    /// The file could not be read.
    #[error("cannot decode: {0}")]
    Io(#[from] std::io::Error),
    /// Resizing failed; holds the resizer's message.
    #[error("cannot resize: {0}")]
    Resize(String),
    /// A JPEG file ends before its end marker (a partial download or copy).
    #[error("cannot decode: the JPEG data is cut short (no end marker after its last scan); copy or download the file again")]
    TruncatedJpeg,
    /// The decoder panicked on this file: a bug in the decoder, which [`decode`] turns into a
    /// skipped file so that one odd file cannot end a run. Holds the panic message.
    #[error("decoder failed: {0}")]
    DecoderPanicked(String),
    /// A HEIC or AVIF file (told from its bytes) in a build without the `heif` cargo feature,
    /// which decodes them with the system's libheif. Holds the format's name.
    #[error("{format} image: this build cannot decode {format}; rebuild with the `heif` feature: `cargo install --path . --locked --features heif` (needs libheif-dev)")]
    NotInThisBuild {
        /// "HEIC", "AVIF" or "HEIF".
        format: &'static str,
    },
}

thread_local! {
    /// Whether this thread is inside [`isolated`], so that the hook of
    /// [`silence_caught_decoder_panics`] can tell a panic that becomes a skipped file from one
    /// that ends the program.
    static IN_DECODER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decoder` on user bytes so that a panic in it becomes [`PreprocessError::DecoderPanicked`]
/// instead of unwinding through the rayon pool and ending the whole run (exit 101). `UnwindSafe`
/// lets the compiler check that `decoder` shares nothing mutable that a panic could leave
/// half-changed: it reads the bytes, and what it builds is dropped while unwinding.
fn isolated<T>(decoder: impl FnOnce() -> Result<T, PreprocessError> + UnwindSafe) -> Result<T, PreprocessError> {
    let outer = IN_DECODER.replace(true);
    let result = std::panic::catch_unwind(decoder);
    IN_DECODER.set(outer);
    result.unwrap_or_else(|payload| {
        // `panic!` with a literal carries a `&str`, with format arguments a `String`.
        let message = match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => match payload.downcast_ref::<&str>() {
                Some(message) => message.to_string(),
                None => "the panic carried no message".to_string(),
            },
        };
        Err(PreprocessError::DecoderPanicked(message))
    })
}

/// Keeps the panic hook quiet for the decoder panics that [`decode`] catches. Each of them is
/// already one line in the skipped-file report, and the default hook would add a "thread
/// panicked at …" message and a backtrace note to stderr for it, as if the run had crashed.
/// Every other panic still goes to the hook installed before. For binaries: call it once, early;
/// later calls do nothing.
pub fn silence_caught_decoder_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while the thread's locals are being torn down must still be shown.
            if !IN_DECODER.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

/// Decoded pixels in the order the file stores them, with the EXIF orientation that turns them
/// upright still to apply. [`preprocess`] turns only the small crop it keeps: turning a whole
/// 6 MP photo took longer than decoding it (BENCHMARKS.md, section 7), and phones store most
/// portrait photos turned.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels as stored, 8-bit RGB.
    pub stored: image::RgbImage,
    /// What turns `stored` upright.
    pub orientation: Orientation,
}

impl Decoded {
    /// The image turned upright.
    pub fn upright(self) -> image::RgbImage {
        if self.orientation == Orientation::NoTransforms {
            return self.stored;
        }
        let mut img = DynamicImage::ImageRgb8(self.stored);
        img.apply_orientation(self.orientation);
        img.into_rgb8()
    }

    /// The image turned upright, borrowed when it is stored upright.
    pub fn upright_view(&self) -> std::borrow::Cow<'_, image::RgbImage> {
        if self.orientation == Orientation::NoTransforms {
            return std::borrow::Cow::Borrowed(&self.stored);
        }
        let mut img = DynamicImage::ImageRgb8(self.stored.clone());
        img.apply_orientation(self.orientation);
        std::borrow::Cow::Owned(img.into_rgb8())
    }

    /// What [`crop_resize`] gives for the upright image, `size * size * 3` RGB bytes, computed on
    /// the stored pixels and turned afterwards. The centred square on the shorter side covers the
    /// same pixels whichever way the image is turned, and the bilinear filter is symmetric, so
    /// the two orders agree up to the rounding of the intermediate rows (at most 1 in 255;
    /// `turning_after_the_resize_matches_turning_before`).
    pub fn crop_resize(&self, spec: &Preprocessing, resizer: &mut Resizer) -> Result<Vec<u8>, PreprocessError> {
        let pixels = crop_resize(&self.stored, spec, resizer)?;
        if self.orientation == Orientation::NoTransforms {
            return Ok(pixels);
        }
        let square = image::RgbImage::from_raw(spec.size, spec.size, pixels)
            .ok_or_else(|| PreprocessError::Resize("the resizer returned a wrong number of pixels".to_string()))?;
        Ok(Decoded {
            stored: square,
            orientation: self.orientation,
        }
        .upright()
        .into_raw())
    }
}

/// Decodes an image file's bytes to 8-bit RGB, upright.
///
/// The format is sniffed from the bytes, not the extension, since misnamed files are common.
/// EXIF orientation is applied; grey, alpha (dropped, as PIL's `convert("RGB")` does), CMYK and
/// 16-bit images all end up as RGB8. Images of more than `max_pixels` pixels are refused from
/// their header, before anything is allocated for them. A panic in the decoder is returned as
/// [`PreprocessError::DecoderPanicked`]. HEIC and AVIF need the `heif` feature; without it they
/// are [`PreprocessError::NotInThisBuild`].
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<image::RgbImage, PreprocessError> {
    isolated(|| decode_stored(bytes, max_pixels)).map(Decoded::upright)
}

/// Decodes as [`decode`] does, except that a big JPEG may come out smaller and that the pixels
/// come as stored, with their orientation beside them. A big JPEG is reduced by 4 or 8 in the
/// DCT domain, as much as keeps its shorter side at least `shorter_side` (PIL's `draft`,
/// without its reduction by 2). [`preprocess`] passes [`Preprocessing::decode_side`]. Pixels
/// differ a little from a full decode (see `jpeg.rs`); every other image, and any JPEG the
/// reduced decoder cannot read as the full one would, goes through [`decode`]'s path.
pub fn decode_at_least(bytes: &[u8], max_pixels: u64, shorter_side: u32) -> Result<Decoded, PreprocessError> {
    isolated(|| {
        if image::guess_format(bytes).ok() == Some(image::ImageFormat::Jpeg) {
            if !jpeg_is_complete(bytes) {
                return Err(PreprocessError::TruncatedJpeg);
            }
            if let Some(decoded) = jpeg::decode_reduced(bytes, max_pixels, shorter_side)? {
                return Ok(decoded);
            }
        }
        decode_stored(bytes, max_pixels)
    })
}

fn decode_stored(bytes: &[u8], max_pixels: u64) -> Result<Decoded, PreprocessError> {
    // libheif applies the container's rotation and mirroring itself.
    if let Some(format) = heif::sniff(bytes) {
        return heif::decode(bytes, format, max_pixels).map(|stored| Decoded {
            stored,
            orientation: Orientation::NoTransforms,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    // The image crate's own allocation limit (512 MiB by default) would refuse some images
    // below `max_pixels` with a less helpful message; 8 bytes a pixel fits 16-bit RGBA.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(PreprocessError::TruncatedJpeg);
    }
    // TIFFs that `image` refuses or reads wrong (palette, grey with alpha, YCbCr, associated
    // alpha, ...) are converted as PIL does; the others go on to `image` (see `tiff.rs`).
    if reader.format() == Some(image::ImageFormat::Tiff) {
        if let Some(decoded) = tiff::decode(bytes, max_pixels)? {
            return Ok(decoded);
        }
    }
    let is_jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    match decode_with_image(reader, max_pixels) {
        // A JPEG that zune-jpeg refuses may still be one libjpeg reads (see `jpeg.rs`).
        Err(PreprocessError::Decode(refused)) if is_jpeg => {
            jpeg::decode_full(bytes, max_pixels)?.ok_or(PreprocessError::Decode(refused))
        }
        result => result,
    }
}

fn decode_with_image(reader: ImageReader<Cursor<&[u8]>>, max_pixels: u64) -> Result<Decoded, PreprocessError> {
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > max_pixels {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let orientation = decoder.orientation()?;
    let stored = DynamicImage::from_decoder(decoder)?.into_rgb8();
    Ok(Decoded { stored, orientation })
}

/// zune-jpeg decodes a JPEG that was cut short (a failed download or copy) without an error and
/// fills the missing part grey. Such a file must be skipped, as PIL does, not embedded half grey:
/// a complete JPEG has an end-of-image marker after its last start-of-scan. Entropy-coded data
/// never holds these two bytes unescaped, and an EXIF thumbnail's markers come before the main
/// image's scans, so looking from the end is enough (and cheap: the marker is at the end).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    match bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]) {
        Some(end) => !bytes[end..].windows(2).any(|w| w == [0xFF, 0xDA]),
        None => false,
    }
}

/// Decodes `bytes` and writes one normalised input into `out` (`spec.len()` floats).
pub fn preprocess(
    bytes: &[u8],
    spec: &Preprocessing,
    max_pixels: u64,
    resizer: &mut Resizer,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    let decoded = decode_at_least(bytes, max_pixels, spec.decode_side())?;
    let pixels = decoded.crop_resize(spec, resizer)?;
    normalise(&pixels, spec, out);
    Ok(())
}

/// Centre crop and resize in one pass, returning `size * size * 3` RGB bytes.
pub fn crop_resize(
    rgb: &image::RgbImage,
    spec: &Preprocessing,
    resizer: &mut Resizer,
) -> Result<Vec<u8>, PreprocessError> {
    let (w, h) = rgb.dimensions();
    let side = w.min(h) as f64 * spec.size as f64 / spec.resize as f64;
    let (left, top) = ((w as f64 - side) / 2.0, (h as f64 - side) / 2.0);
    let crop = Crop {
        left: left.max(0.0),
        top: top.max(0.0),
        width: side.min(w as f64),
        height: side.min(h as f64),
    };
    resize_crop(rgb, crop, spec.size, resizer)
}

/// A rectangle of an image in pixels, fractional edges allowed (the resampling filter weighs
/// the partial pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    /// Distance of the left edge from the image's left edge.
    pub left: f64,
    /// Distance of the top edge from the image's top edge.
    pub top: f64,
    /// Width, > 0.
    pub width: f64,
    /// Height, > 0.
    pub height: f64,
}

/// Resizes the rectangle `crop` of `rgb` to a `size` x `size` square in one bilinear pass,
/// returning its RGB bytes; [`crop_resize`]'s centre crop and the augmented views' random crops
/// both go through it.
pub fn resize_crop(
    rgb: &image::RgbImage,
    crop: Crop,
    size: u32,
    resizer: &mut Resizer,
) -> Result<Vec<u8>, PreprocessError> {
    resize_crop_with(rgb, crop, size, FilterType::Bilinear, resizer)
}

/// [`resize_crop`] with another resampling filter.
pub fn resize_crop_with(
    rgb: &image::RgbImage,
    crop: Crop,
    size: u32,
    filter: FilterType,
    resizer: &mut Resizer,
) -> Result<Vec<u8>, PreprocessError> {
    let (w, h) = rgb.dimensions();
    let src = ImageRef::new(w, h, rgb.as_raw(), PixelType::U8x3).map_err(|e| PreprocessError::Resize(e.to_string()))?;
    let mut dst = Image::new(size, size, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)).crop(
        crop.left,
        crop.top,
        crop.width,
        crop.height,
    );
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| PreprocessError::Resize(e.to_string()))?;
    Ok(dst.into_vec())
}

/// Scales RGB bytes into the network's value range and memory layout.
pub fn normalise(pixels: &[u8], spec: &Preprocessing, out: &mut [f32]) {
    let plane = spec.size as usize * spec.size as usize;
    assert_eq!(pixels.len(), plane * 3, "pixels must be size x size RGB");
    assert_eq!(out.len(), plane * 3, "output must hold one image");
    let channels = spec.preset.channels();
    match spec.layout {
        Layout::Nchw => {
            for (c, &(src, scale, offset)) in channels.iter().enumerate() {
                let dst = &mut out[c * plane..(c + 1) * plane];
                for (d, px) in dst.iter_mut().zip(pixels.chunks_exact(3)) {
                    *d = px[src] as f32 * scale + offset;
                }
            }
        }
        Layout::Nhwc => {
            for (d, px) in out.chunks_exact_mut(3).zip(pixels.chunks_exact(3)) {
                for (c, &(src, scale, offset)) in channels.iter().enumerate() {
                    d[c] = px[src] as f32 * scale + offset;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(preset: Preset, layout: Layout) -> Preprocessing {
        Preprocessing {
            preset,
            resize: 2,
            size: 2,
            layout,
        }
    }

    /// `name`, `NAMES` and the parsed names (the CLI's choices) must not drift apart.
    #[test]
    fn preset_names_agree() {
        let all = <Preset as clap::ValueEnum>::value_variants();
        let names: Vec<&str> = all.iter().map(|p| p.name()).collect();
        assert_eq!(names.join(", "), Preset::NAMES);
        for &p in all {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
            assert_eq!(p.name().to_uppercase().parse::<Preset>(), Ok(p));
        }
        assert_eq!("torchvision".parse::<Preset>(), Ok(Preset::Torch));
        assert!("nope".parse::<Preset>().unwrap_err().contains(Preset::NAMES));
    }

    // Four pixels: (0,10,20) (255,128,127) (1,2,3) (100,150,200).
    const PIXELS: [u8; 12] = [0, 10, 20, 255, 128, 127, 1, 2, 3, 100, 150, 200];

    #[test]
    fn tflite_preset_values() {
        let mut out = [0.0; 12];
        normalise(&PIXELS, &spec(Preset::Tflite, Layout::Nchw), &mut out);
        // (x - 127) / 128, red plane first.
        assert_eq!(out[0], -127.0 / 128.0);
        assert_eq!(out[1], 1.0);
        assert_eq!(out[4], (10.0 - 127.0) / 128.0);
        assert_eq!(out[5], (128.0 - 127.0) / 128.0);
        assert_eq!(out[9], 0.0);
    }

    #[test]
    fn inception_preset_values() {
        let mut out = [0.0; 12];
        normalise(&PIXELS, &spec(Preset::Inception, Layout::Nhwc), &mut out);
        // x / 127.5 - 1, pixels interleaved.
        assert_eq!(out[0], -1.0);
        assert_eq!(out[3], 1.0);
        assert!((out[4] - (128.0 / 127.5 - 1.0)).abs() < 1e-7);
    }

    #[test]
    fn caffe_preset_is_bgr_minus_mean() {
        let mut out = [0.0; 12];
        normalise(&PIXELS, &spec(Preset::Caffe, Layout::Nchw), &mut out);
        // Channel 0 is blue: pixel 0 has blue 20, pixel 1 blue 127.
        assert!((out[0] - (20.0 - 103.939)).abs() < 1e-5);
        assert!((out[1] - (127.0 - 103.939)).abs() < 1e-5);
        // Channel 1 is green, channel 2 red.
        assert!((out[4] - (10.0 - 116.779)).abs() < 1e-5);
        assert!((out[8] - (0.0 - 123.68)).abs() < 1e-5);
        assert!((out[9] - (255.0 - 123.68)).abs() < 1e-5);
    }

    #[test]
    fn torch_preset_uses_imagenet_mean_std() {
        let mut out = [0.0; 12];
        normalise(&PIXELS, &spec(Preset::Torch, Layout::Nhwc), &mut out);
        // Pixel 3 = (100, 150, 200): ((x / 255) - mean) / std per channel.
        let want = [
            (100.0 / 255.0 - 0.485) / 0.229,
            (150.0 / 255.0 - 0.456) / 0.224,
            (200.0 / 255.0 - 0.406) / 0.225,
        ];
        for c in 0..3 {
            assert!(
                (out[9 + c] - want[c]).abs() < 1e-5,
                "channel {c}: {} vs {}",
                out[9 + c],
                want[c]
            );
        }
    }

    #[test]
    fn crop_keeps_the_centre_of_a_wide_image() {
        // 6x2 image: a red 2x2 block in the middle, blue elsewhere. resize 2 / size 2 crops the
        // centred 2x2 square exactly, so every output pixel is pure red.
        let mut img = image::RgbImage::from_pixel(6, 2, image::Rgb([0, 0, 255]));
        for x in 2..4 {
            for y in 0..2 {
                img.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        let s = Preprocessing {
            preset: Preset::Tflite,
            resize: 2,
            size: 2,
            layout: Layout::Nchw,
        };
        let px = crop_resize(&img, &s, &mut Resizer::new()).unwrap();
        assert_eq!(px, vec![255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0]);
    }

    #[test]
    fn turning_after_the_resize_matches_turning_before() {
        // Odd sides, a crop that starts between pixels, and detail at every scale.
        let stored = image::RgbImage::from_fn(37, 23, |x, y| {
            let noise = (x * 7919 + y * 104_729) % 61;
            image::Rgb([(x * 6 + noise) as u8, (y * 11) as u8, (x * y + noise) as u8])
        });
        let spec = Preprocessing {
            preset: Preset::Tflite,
            resize: 16,
            size: 11,
            layout: Layout::Nchw,
        };
        let mut resizer = Resizer::new();
        for exif in 1..=8 {
            let orientation = Orientation::from_exif(exif).unwrap();
            let decoded = || Decoded {
                stored: stored.clone(),
                orientation,
            };
            let want = crop_resize(&decoded().upright(), &spec, &mut resizer).unwrap();
            let got = decoded().crop_resize(&spec, &mut resizer).unwrap();
            let worst = want.iter().zip(&got).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 1, "orientation {exif}: up to {worst} apart");
            if exif > 1 {
                assert_ne!(
                    got,
                    crop_resize(&stored, &spec, &mut resizer).unwrap(),
                    "orientation {exif} not applied"
                );
            }
        }
    }

    #[test]
    fn decodes_grey_alpha_and_sixteen_bit_to_rgb() {
        let mut cases = Vec::new();
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(3, 2, image::Rgba([1, 2, 3, 0])));
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(3, 2, image::Rgb([65535u16, 0, 257])));
        for (img, want) in [(grey, [77, 77, 77]), (rgba, [1, 2, 3]), (deep, [255, 0, 1])] {
            let mut bytes = Vec::new();
            img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
                .unwrap();
            cases.push((bytes, want));
        }
        for (bytes, want) in cases {
            let rgb = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!(rgb.dimensions(), (3, 2));
            assert_eq!(rgb.get_pixel(1, 1).0, want);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"definitely not an image", DEFAULT_MAX_PIXELS).is_err());
        let mut png = Vec::new();
        DynamicImage::new_rgb8(4, 4)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode(&png[..png.len() / 2], DEFAULT_MAX_PIXELS).is_err());
    }

    /// A closure that panics stands for a decoder bug such as the tiff crate's assertion on
    /// planar tiled files (`tests/bad_input.rs` has the real one).
    #[test]
    fn a_panicking_decoder_is_an_error_with_its_message() {
        let formatted = isolated(|| -> Result<(), PreprocessError> { panic!("row stride {} too small", 48) });
        assert_eq!(
            formatted.unwrap_err().to_string(),
            "decoder failed: row stride 48 too small"
        );
        let literal = isolated(|| -> Result<(), PreprocessError> { panic!("a literal message") });
        assert_eq!(literal.unwrap_err().to_string(), "decoder failed: a literal message");
        let opaque = isolated(|| -> Result<(), PreprocessError> { std::panic::panic_any(7u8) });
        assert_eq!(
            opaque.unwrap_err().to_string(),
            "decoder failed: the panic carried no message"
        );
        // The flag that silences the hook is back off, also after a panic inside a nested call,
        // so a later panic outside a decoder on this thread is still shown.
        let nested = isolated(|| {
            let inner = isolated(|| -> Result<(), PreprocessError> { panic!("inner") });
            assert!(IN_DECODER.get(), "the outer call is still a decoder");
            inner
        });
        assert_eq!(nested.unwrap_err().to_string(), "decoder failed: inner");
        assert!(!IN_DECODER.get());
        // Results, good or bad, pass through untouched.
        assert_eq!(isolated(|| Ok(5)).unwrap(), 5);
        let truncated = isolated(|| Err::<(), _>(PreprocessError::TruncatedJpeg));
        assert!(matches!(truncated, Err(PreprocessError::TruncatedJpeg)));
    }

    #[test]
    fn images_above_the_pixel_limit_are_refused_from_their_header() {
        let mut png = Vec::new();
        DynamicImage::new_rgb8(3, 2)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode(&png, 6).is_ok());
        let err = decode(&png, 5).unwrap_err();
        assert!(matches!(
            err,
            PreprocessError::TooLarge {
                width: 3,
                height: 2,
                limit: 5
            }
        ));
        assert!(err.to_string().contains("--max-pixels"), "{err}");
    }
}
