//! Big JPEGs are decoded reduced in the DCT domain (`preprocess::decode_at_least`), which filters
//! them a little differently from a full decode followed by the resize. This checks what that
//! does to the embeddings of the bundled default backbone: each photo embedded both ways (full
//! decode then crop and resize, against `preprocess`) must agree to a cosine of 0.995.
//!
//! No photo in ../shared/data is big enough to be reduced (the default backbone reduces from
//! 2048 pixels on the shorter side), so the photos are made here from hymenoptera and flowers5
//! ones as `benches/phone_photos.py --grain 6` makes its dense set: upscaled to 8 and 12
//! megapixels (Lanczos), with sensor-like grain, saved at quality 90 with 4:2:0 chroma, some
//! stored turned with an EXIF orientation tag. The grain is what the network sees most of in
//! these otherwise smooth upscales, which makes them the hardest case found. Fails, rather than
//! skips, when `CI` is set and the data is missing.

mod common;

use common::{exif_orientation, shared_data};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use headstart::backbone::{Backbone, BackboneChoice};
use headstart::preprocess::{crop_resize, decode, decode_at_least, normalise, preprocess, DEFAULT_MAX_PIXELS};
use image::imageops::{rotate180, rotate270, rotate90};
use image::RgbImage;

const MIN_COSINE: f64 = 0.995;

/// The photos: a source under ../shared/data, the camera size (landscape) and the EXIF
/// orientation it is stored with. The sources are the ones whose phone photos moved furthest
/// when decoded reduced to the resize target itself (down to a cosine of 0.975 here).
const MADE: [(&str, (u32, u32), u16); 10] = [
    ("flowers5/daisy/5876455546_32049e5585.jpg", (4000, 3000), 6),
    ("flowers5/dandelion/3954167682_128398bf79_m.jpg", (4000, 3000), 1),
    ("flowers5/tulip/14067476586_36bcddf111.jpg", (3264, 2448), 1),
    ("flowers5/rose/17090993740_fcc8b60b81.jpg", (4000, 3000), 1),
    ("hymenoptera/val/ants/1743840368_b5ccda82b7.jpg", (3264, 2448), 1),
    ("hymenoptera/val/bees/59798110_2b6a3c8031.jpg", (3264, 2448), 8),
    ("flowers5/daisy/34295444880_b4376b3a8b_n.jpg", (3264, 2448), 1),
    ("flowers5/daisy/14245834619_153624f836.jpg", (4000, 3000), 3),
    ("hymenoptera/train/ants/957233405_25c1d1187b.jpg", (4000, 3000), 6),
    ("hymenoptera/val/bees/224841383_d050f5f510.jpg", (3264, 2448), 1),
];

/// `source` centre-cropped to the aspect of `width` x `height` (turned to the source's own
/// orientation), upscaled with Lanczos, with grain of about 6/255 (the sum of four uniform
/// draws), stored turned by the inverse of `orientation` and tagged with it.
fn phone_photo(source: &RgbImage, (width, height): (u32, u32), orientation: u16, seed: u32) -> Vec<u8> {
    let (w, h) = source.dimensions();
    let (width, height) = if h > w { (height, width) } else { (width, height) };
    let scale = (f64::from(w) / f64::from(width)).min(f64::from(h) / f64::from(height));
    let (cw, ch) = (f64::from(width) * scale, f64::from(height) * scale);
    let src = ImageRef::new(w, h, source.as_raw(), PixelType::U8x3).unwrap();
    let mut big = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop((f64::from(w) - cw) / 2.0, (f64::from(h) - ch) / 2.0, cw, ch);
    Resizer::new().resize(&src, &mut big, &options).unwrap();
    let mut state = seed | 1;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        f64::from(state) / f64::from(u32::MAX) - 0.5
    };
    let pixels: Vec<u8> = big
        .into_vec()
        .into_iter()
        .map(|v| {
            // Four uniforms in [-0.5, 0.5] sum to variance 1/3; scaled to a deviation of 6.
            let grain = (uniform() + uniform() + uniform() + uniform()) * 6.0 * 3f64.sqrt();
            (f64::from(v) + grain).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    let upright = RgbImage::from_raw(width, height, pixels).unwrap();
    let stored = match orientation {
        1 => upright,
        3 => rotate180(&upright),
        6 => rotate270(&upright),
        8 => rotate90(&upright),
        _ => unreachable!("the orientations in MADE"),
    };
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    if orientation != 1 {
        encoder.add_app_segment(1, &exif_orientation(orientation)).unwrap();
    }
    let (sw, sh) = stored.dimensions();
    encoder
        .encode(stored.as_raw(), sw as u16, sh as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    bytes
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn reduced_jpeg_decodes_embed_like_full_decodes() {
    let (Some(hymenoptera), Some(_)) = (shared_data("hymenoptera"), shared_data("flowers5")) else {
        return;
    };
    let shared = hymenoptera.parent().unwrap();
    let mut photos = Vec::new();
    for (i, &(source, size, orientation)) in MADE.iter().enumerate() {
        let rgb = decode(&std::fs::read(shared.join(source)).unwrap(), DEFAULT_MAX_PIXELS).unwrap();
        let name = format!("{source} at {}x{}, orientation {orientation}", size.0, size.1);
        photos.push((name, phone_photo(&rgb, size, orientation, i as u32 + 1)));
    }

    let runtime = headstart::runtime::init(None).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut backbone = Backbone::open(&runtime, BackboneChoice::default().resolve().unwrap(), cores).unwrap();
    let spec = backbone.preprocessing;
    let mut resizer = Resizer::new();
    let (mut full, mut reduced) = (
        vec![0f32; photos.len() * spec.len()],
        vec![0f32; photos.len() * spec.len()],
    );
    for (i, (name, bytes)) in photos.iter().enumerate() {
        let whole = decode(bytes, DEFAULT_MAX_PIXELS).unwrap();
        let small = decode_at_least(bytes, DEFAULT_MAX_PIXELS, spec.decode_side())
            .unwrap()
            .upright();
        // Otherwise the comparison below would hold trivially.
        assert!(small.width() < whole.width(), "{name}: not decoded reduced");
        assert_eq!(
            small.width() > small.height(),
            whole.width() > whole.height(),
            "{name}: turned differently"
        );
        let range = i * spec.len()..(i + 1) * spec.len();
        normalise(
            &crop_resize(&whole, &spec, &mut resizer).unwrap(),
            &spec,
            &mut full[range.clone()],
        );
        preprocess(bytes, &spec, DEFAULT_MAX_PIXELS, &mut resizer, &mut reduced[range]).unwrap();
    }
    let (dim, a) = backbone.embed(&full, photos.len()).unwrap();
    let (_, b) = backbone.embed(&reduced, photos.len()).unwrap();
    let cosines: Vec<f64> = a
        .chunks_exact(dim)
        .zip(b.chunks_exact(dim))
        .map(|(x, y)| cosine(x, y))
        .collect();
    for ((name, _), c) in photos.iter().zip(&cosines) {
        eprintln!("{c:.5}  {name}");
    }
    let (worst, name) = cosines
        .iter()
        .zip(&photos)
        .map(|(c, (name, _))| (*c, name))
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .unwrap();
    assert!(worst >= MIN_COSINE, "{name}: cosine {worst:.5} < {MIN_COSINE}");
}
