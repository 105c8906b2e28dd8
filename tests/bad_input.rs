//! The bad-input corpus: every kind of broken, odd or hostile file a scraped or synced photo
//! folder holds, generated here. Each is either decoded correctly (checked on its pixels) or
//! skipped and named with its reason, and the run goes on; the exit status and the summary say
//! how many were skipped. Also: models and heads that do not fit, each a clear error.

mod common;

use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::{exif_orientation, headstart, json, tiny_model};
use headstart::preprocess::{decode, decode_at_least, DEFAULT_MAX_PIXELS};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use predicates::prelude::*;
use predicates::str::contains;

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(rgb)))
}

fn jpeg(
    pixels: &[u8],
    w: u16,
    h: u16,
    color: jpeg_encoder::ColorType,
    setup: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 95);
    setup(&mut encoder);
    encoder.encode(pixels, w, h, color).unwrap();
    bytes
}

/// A PNG whose IHDR claims `side` x `side` pixels (with a valid CRC), followed by the data of a
/// 1x1 image: the shape of a decompression bomb without its gigabytes.
fn png_claiming(side: u32) -> Vec<u8> {
    let mut bytes = encode(&solid(1, 1, [9, 9, 9]), ImageFormat::Png);
    // Signature (8), IHDR length (4), "IHDR" at 12..16, width 16..20, height 20..24.
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// A JPEG whose frame header (SOF0) claims `side` x `side` pixels.
fn jpeg_claiming(side: u16) -> Vec<u8> {
    let mut bytes = jpeg(&[128; 16 * 16 * 3], 16, 16, jpeg_encoder::ColorType::Rgb, |_| {});
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    bytes
}

/// A palette PNG: index 0 is red and fully transparent, index 1 green and opaque.
fn palette_png_with_transparency() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 4, 4);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(vec![255, 0, 0, 0, 255, 0]);
    encoder.set_trns(vec![0, 255]);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..16).map(|i| u8::from(i >= 8)).collect();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    bytes
}

fn animated_gif() -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut bytes);
        let frames = [[250u8, 0, 0, 255], [0, 0, 250, 255]]
            .map(|c| image::Frame::new(image::RgbaImage::from_pixel(8, 8, image::Rgba(c))));
        encoder.encode_frames(frames).unwrap();
    }
    bytes
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

/// Size of the planar tiled TIFF: 20 rows are one full row of 16-pixel tiles and one with 12
/// rows of padding, where the tiff crate's panic lies.
const PLANAR_SIZE: (u32, u32) = (24, 20);

/// Pixel (x, y) of the planar tiled TIFF, 16 bits a channel: multiples of 257, so that scaled to
/// 8 bits (`v / 257`) they are exact.
fn planar_pixel(x: u32, y: u32) -> [u16; 3] {
    [x * 10, y * 12, 255 - 3 * (x + y)].map(|v| v as u16 * 257)
}

/// A valid TIFF of the kind that ended `extract` on a public corpus, written by hand: tiled
/// (16x16), planar (PlanarConfiguration 2: all red tiles, then all green, then all blue), 16-bit
/// RGB, uncompressed, little-endian, one IFD. Checked valid with tifffile 2026.3.3: it reads
/// back [`planar_pixel`], and its own writer gives the same tile bytes for those pixels. (Pillow
/// has no 16-bit RGB mode and libtiff's tiffcp does not copy 16-bit planar tiles right, for
/// tifffile's file too, so neither can check it.)
fn planar_tiled_tiff() -> Vec<u8> {
    const TILE: u32 = 16;
    let (width, height) = PLANAR_SIZE;
    let (across, down) = (width.div_ceil(TILE), height.div_ceil(TILE));
    let mut tiles = Vec::new();
    for channel in 0..3 {
        for (ty, tx) in (0..down).flat_map(|ty| (0..across).map(move |tx| (ty, tx))) {
            for (y, x) in (ty * TILE..(ty + 1) * TILE).flat_map(|y| (tx * TILE..(tx + 1) * TILE).map(move |x| (y, x))) {
                // Tiles past the right and bottom edges are padded to full size.
                let value = if x < width && y < height {
                    planar_pixel(x, y)[channel]
                } else {
                    0
                };
                tiles.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    // More than one tile, so the offsets and byte counts do not fit in their entries.
    let (count, tile_bytes) = (3 * across * down, TILE * TILE * 2);
    let bits_at = 8 + tiles.len() as u32;
    let offsets_at = bits_at + 6;
    let counts_at = offsets_at + 4 * count;
    let ifd_at = counts_at + 4 * count;
    let mut bytes = b"II*\0".to_vec();
    bytes.extend_from_slice(&ifd_at.to_le_bytes());
    bytes.extend_from_slice(&tiles);
    bytes.extend_from_slice(&[16u8, 0].repeat(3));
    for i in 0..count {
        bytes.extend_from_slice(&(8 + i * tile_bytes).to_le_bytes());
    }
    bytes.extend_from_slice(&tile_bytes.to_le_bytes().repeat(count as usize));
    // (tag, type, count, value or offset), in tag order. Type 3 is SHORT, 4 is LONG; a SHORT
    // value sits in the first two bytes of its four, which little-endian u32 bytes give.
    let (short, long) = (3u16, 4u16);
    let entries = [
        (256u16, long, 1, width),       // ImageWidth
        (257, long, 1, height),         // ImageLength
        (258, short, 3, bits_at),       // BitsPerSample: 16, 16, 16
        (259, short, 1, 1),             // Compression: none
        (262, short, 1, 2),             // PhotometricInterpretation: RGB
        (277, short, 1, 3),             // SamplesPerPixel
        (284, short, 1, 2),             // PlanarConfiguration: separate planes
        (322, long, 1, TILE),           // TileWidth
        (323, long, 1, TILE),           // TileLength
        (324, long, count, offsets_at), // TileOffsets
        (325, long, count, counts_at),  // TileByteCounts
    ];
    bytes.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    bytes
}

/// Files that decode, each with the check its pixels must pass.
type Check = fn(&image::RgbImage) -> bool;

fn decodable() -> Vec<(&'static str, Vec<u8>, Check)> {
    let sixteen = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(6, 4, Rgb([65535u16, 0, 257])));
    // Upright this is 8 wide and 16 tall, top half red and bottom half blue; it is stored
    // turned a quarter (left red, right blue) with EXIF orientation 6 (rotate 90° clockwise).
    let stored = RgbImage::from_fn(
        16,
        8,
        |x, _| if x < 8 { Rgb([230, 20, 20]) } else { Rgb([20, 20, 230]) },
    );
    vec![
        (
            "one_pixel.png",
            encode(&solid(1, 1, [10, 200, 30]), ImageFormat::Png),
            |i| i.dimensions() == (1, 1) && i.get_pixel(0, 0).0 == [10, 200, 30],
        ),
        ("sixteen_bit.png", encode(&sixteen, ImageFormat::Png), |i| {
            i.get_pixel(2, 2).0 == [255, 0, 1]
        }),
        (
            "cmyk.jpg",
            // C=0 M=255 Y=255 K=0 is red, in the plain (not Adobe-inverted) convention.
            jpeg(
                &[0, 255, 255, 0].repeat(64),
                8,
                8,
                jpeg_encoder::ColorType::Cmyk,
                |_| {},
            ),
            |i| close(i.get_pixel(4, 4).0, [255, 0, 0], 12),
        ),
        (
            "progressive.jpg",
            jpeg(&[40, 90, 160].repeat(256), 16, 16, jpeg_encoder::ColorType::Rgb, |e| {
                e.set_progressive(true)
            }),
            |i| close(i.get_pixel(8, 8).0, [40, 90, 160], 6),
        ),
        ("animated.gif", animated_gif(), |i| {
            close(i.get_pixel(3, 3).0, [250, 0, 0], 8)
        }),
        ("palette_alpha.png", palette_png_with_transparency(), |i| {
            // Alpha is dropped and the palette colour kept, as PIL's convert("RGB") does.
            i.get_pixel(0, 0).0 == [255, 0, 0] && i.get_pixel(0, 3).0 == [0, 255, 0]
        }),
        (
            "exif_rotated.jpg",
            jpeg(stored.as_raw(), 16, 8, jpeg_encoder::ColorType::Rgb, |e| {
                e.add_app_segment(1, &exif_orientation(6)).unwrap()
            }),
            |i| {
                i.dimensions() == (8, 16)
                    && close(i.get_pixel(4, 2).0, [230, 20, 20], 30)
                    && close(i.get_pixel(4, 13).0, [20, 20, 230], 30)
            },
        ),
    ]
}

/// Files that must be skipped, each with a word its reason must contain.
/// The one-dimensional group 3 fax TIFF of the coverage corpus, made two-dimensional by
/// renumbering its PlanarConfiguration entry (SHORT 1, the last entry) to Group3Options (292):
/// bit 0 set, 2-D coding, which the group 3 reader does not decode and must not misread.
fn two_dimensional_group3() -> Vec<u8> {
    let mut bytes = std::fs::read("tests/data/coverage/tiff/tiff_bilevel_pil_group3.tif").unwrap();
    let entry = 134;
    assert_eq!(
        &bytes[entry..entry + 2],
        &284u16.to_le_bytes(),
        "the file's PlanarConfiguration entry"
    );
    bytes[entry..entry + 2].copy_from_slice(&292u16.to_le_bytes());
    bytes
}

fn undecodable() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // A photo-like JPEG cut at 70%, as a failed download or copy leaves it.
    let noisy = encode(
        &DynamicImage::ImageRgb8(common::class_image(2, 5, 64)),
        ImageFormat::Jpeg,
    );
    let mut bad_crc = encode(&solid(8, 8, [1, 2, 3]), ImageFormat::Png);
    // Only the checksum of the image data is wrong; the data itself is intact.
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(bad_crc[idat - 4..idat].try_into().unwrap()) as usize;
    bad_crc[idat + 4 + len] ^= 0xFF;
    let mut random = vec![0u8; 4096];
    let mut state = 0x2545F491u32;
    for b in &mut random {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *b = state as u8;
    }
    vec![
        ("truncated.jpg", noisy[..noisy.len() * 7 / 10].to_vec(), "cut short"),
        ("zero_bytes.jpg", Vec::new(), "decode"),
        ("random_bytes.jpg", random, "decode"),
        (
            "saved_page.jpg",
            b"<!DOCTYPE html><html><head><title>404</title></head><body>Not found</body></html>".to_vec(),
            "decode",
        ),
        ("bad_crc.png", bad_crc, "decode"),
        ("bomb.png", png_claiming(30_000), "above the limit"),
        ("bomb.jpg", jpeg_claiming(30_000), "above the limit"),
        ("fax_2d.tif", two_dimensional_group3(), "Fax3 is unsupported"),
    ]
}

#[test]
fn decodable_oddities_give_the_right_pixels() {
    for (name, bytes, check) in decodable() {
        let rgb = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(check(&rgb), "{name}: wrong pixels, {:?} at (0,0)", rgb.get_pixel(0, 0));
    }
    for (name, bytes, reason) in undecodable() {
        let err = match decode(&bytes, DEFAULT_MAX_PIXELS) {
            Ok(rgb) => panic!("{name} decoded to a {:?} image instead of failing", rgb.dimensions()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(reason), "{name}: {err}");
    }
}

/// The public-corpus crash, reproduced: a valid planar tiled 16-bit TIFF decodes to the pixels
/// written.
///
/// With the published tiff 0.11.3 it is the error, "decoder failed: assertion failed: buf.len() >=
/// layout.row_stride * (data_dims.1 as usize - 1) + data_row_bytes". The crate finds a tile's
/// padding from its index as if there were one plane, so the tiles of the second and third
/// planes get none: each bottom tile is read as 16 full rows, which spill into the next plane
/// and, in the last plane, past the end of the buffer, where the assertion stops it. The same
/// file 32 rows high, with no partial tiles, decodes right. With `vendor/tiff` (the one-line fix,
/// vendor/tiff/PATCH.md) it decodes, and this test fails without the fix.
#[test]
fn a_planar_tiled_tiff_decodes_right() {
    let rgb = decode(&planar_tiled_tiff(), DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rgb.dimensions(), PLANAR_SIZE);
    for (x, y, got) in rgb.enumerate_pixels() {
        let want = planar_pixel(x, y).map(|v| (v / 257) as u8);
        assert_eq!(got.0, want, "pixel ({x}, {y})");
    }
}

/// Creates the whole corpus under `data`: class `good` with ordinary images (so the run has
/// something to embed), class `odd` with every decodable and undecodable case and the file
/// system oddities, and an empty class folder. Returns the paths expected to be skipped.
fn make_corpus(data: &Path) -> Vec<String> {
    let (good, odd) = (data.join("good"), data.join("odd"));
    std::fs::create_dir_all(&good).unwrap();
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::create_dir_all(data.join("empty")).unwrap();
    for i in 0..6 {
        common::class_image(0, i, 40)
            .save(good.join(format!("img{i}.png")))
            .unwrap();
    }
    for (name, bytes, _) in decodable() {
        std::fs::write(odd.join(name), bytes).unwrap();
    }
    let mut skipped = Vec::new();
    for (name, bytes, _) in undecodable() {
        std::fs::write(odd.join(name), bytes).unwrap();
        skipped.push(format!("odd/{name}"));
    }
    // Hidden files are left out silently, as every file tool does.
    std::fs::write(odd.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    common::class_image(1, 0, 40).save(odd.join(".hidden.png")).unwrap();
    // A folder that looks like an image is a folder: what it holds is of the class, and a
    // file in it without an image extension is listed as ignored.
    std::fs::create_dir_all(odd.join("folder.jpg")).unwrap();
    common::class_image(1, 2, 40)
        .save(odd.join("folder.jpg/inside.png"))
        .unwrap();
    std::fs::write(odd.join("folder.jpg/notes.txt"), b"not an image").unwrap();
    // A link to itself.
    std::os::unix::fs::symlink("loop.jpg", odd.join("loop.jpg")).unwrap();
    skipped.push("odd/loop.jpg".into());
    // A link to nowhere.
    std::os::unix::fs::symlink("gone.jpg", odd.join("dangling.jpg")).unwrap();
    skipped.push("odd/dangling.jpg".into());
    // A named pipe: reading it would block forever.
    let fifo = std::ffi::CString::new(odd.join("pipe.jpg").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    skipped.push("odd/pipe.jpg".into());
    // A file the process may not read. Root reads any file whatever its mode, so there the
    // file is a link to /proc/self/mem, whose first page no process can read (EIO).
    let unreadable = odd.join("unreadable.jpg");
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::symlink("/proc/self/mem", &unreadable).unwrap();
    } else {
        std::fs::write(&unreadable, encode(&solid(4, 4, [1, 1, 1]), ImageFormat::Png)).unwrap();
        std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    }
    skipped.push("odd/unreadable.jpg".into());
    // A name that is not UTF-8 (Latin-1 "café.jpg").
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.jpg");
    common::class_image(1, 1, 40).save(odd.join(latin1)).unwrap();
    skipped.push("odd/caf\u{FFFD}.jpg".into());
    skipped.sort();
    skipped
}

#[test]
fn the_bad_input_corpus_is_decoded_or_skipped_with_reasons_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    let expected_skips = make_corpus(&data);
    let out = headstart(&ws)
        .args([
            "--json",
            "extract",
            "--model",
            &tiny_model("tiny_nchw"),
            "--batch-size",
            "4",
            "--data",
        ])
        .arg(&data)
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(3)
        .stderr(contains("class folder `empty` has no images"))
        .get_output()
        .clone();
    let s = json(&out.stdout);

    let skipped: Vec<String> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped, expected_skips);
    let reason_of = |path: &str| -> String {
        s["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["reason"].as_str().unwrap().to_string())
            .unwrap()
    };
    for (name, _, word) in undecodable() {
        let reason = reason_of(&format!("odd/{name}"));
        assert!(reason.contains(word), "{name}: {reason}");
    }
    assert!(reason_of("odd/loop.jpg").contains("symbolic links"));
    assert!(reason_of("odd/dangling.jpg").contains("No such file"));
    assert!(reason_of("odd/pipe.jpg").contains("not a regular file"));
    assert!(reason_of("odd/unreadable.jpg").contains("cannot read"));
    assert!(reason_of("odd/caf\u{FFFD}.jpg").contains("UTF-8"));

    // Every decodable oddity and every good image was embedded.
    assert_eq!(s["images"], 6 + decodable().len() + 1);
    assert_eq!(s["classes"], serde_json::json!(["good", "odd"]));
    assert_eq!(s["empty_classes"], serde_json::json!(["empty"]));
    let ignored = s["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0], "odd/folder.jpg/notes.txt");
    let manifest = headstart::cache::Manifest::load(&ws).unwrap();
    assert!(manifest.entries.iter().all(|e| !e.sample.path.contains(".hidden")));
    assert_eq!(manifest.skipped.len(), expected_skips.len());

    // The human summary says the same.
    let text = headstart(&ws)
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("{} files skipped", expected_skips.len())),
        "{text}"
    );
    assert!(text.contains("odd/bomb.png: the image is 30000x30000 pixels"), "{text}");
}

#[test]
fn the_pixel_limit_is_a_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    for c in 0..2 {
        let dir = data.join(format!("c{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        solid(40, 40, [10, 20, 30]).save(dir.join("small.png")).unwrap();
        solid(100, 100, [10, 20, 30]).save(dir.join("big.png")).unwrap();
    }
    let out = headstart(&ws)
        .args([
            "--json",
            "--max-pixels",
            "2000",
            "extract",
            "--model",
            &tiny_model("tiny_nchw"),
            "--data",
        ])
        .arg(&data)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(s["images"], 2);
    assert!(s["skipped"][0]["reason"].as_str().unwrap().contains("100x100"));
    headstart(&ws)
        .args(["--max-pixels", "0", "extract", "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains("--max-pixels"));
}

#[test]
fn a_single_class_extracts_but_train_head_says_why_it_cannot_train() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    common::make_dataset(&data, 2, 12);
    std::fs::remove_dir_all(data.join("class1")).unwrap();
    std::fs::remove_file(data.join("class0/notes.txt")).unwrap();
    headstart(&ws)
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .assert()
        .success()
        .stderr(contains("only one class"));
    headstart(&ws)
        .args(["train-head"])
        .assert()
        .code(1)
        .stderr(contains("at least 2 classes"));
}

#[test]
fn models_that_do_not_fit_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    common::make_dataset(&data, 2, 4);
    let not_onnx = tmp.path().join("weights.onnx");
    std::fs::write(&not_onnx, b"PK\x03\x04 a zip, not a protobuf").unwrap();
    headstart(&ws)
        .args(["extract", "--preset", "inception", "--model"])
        .arg(&not_onnx)
        .arg("--data")
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains(not_onnx.to_string_lossy()).and(contains("ONNX")));
    headstart(&ws)
        .args(["extract", "--model", &tiny_model("tiny_rank2"), "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(
            contains("tiny_rank2.onnx")
                .and(contains("flat_pixels"))
                .and(contains("[N,3,H,W]")),
        );
}

#[test]
fn a_head_is_refused_with_another_backbone_or_preset() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    common::make_dataset(&data, 2, 8);
    let extract = |extra: &[&str]| {
        headstart(&ws)
            .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
            .arg(&data)
            .args(extra)
            .assert()
            .code(3);
    };
    extract(&[]);
    headstart(&ws).args(["train-head", "--epochs", "1"]).assert().success();
    // The same network with another preset gives other vectors: the head must not be used on them.
    extract(&["--preset", "tflite"]);
    headstart(&ws)
        .args(["eval", "--split", "train"])
        .assert()
        .code(1)
        .stderr(contains("head.safetensors").and(contains("re-run train-head")));
    // Back on the head's own embeddings it works again.
    extract(&[]);
    headstart(&ws).args(["eval", "--split", "train"]).assert().success();
}

/// All eight EXIF orientations come out upright, from the full decode and from the reduced one
/// (`decode_at_least`, here at 1/8: 6 x 4, where orientations 5 to 8 store 4 x 6). The upright
/// image is 48 wide and 32 tall with a colour per quadrant; each file stores it turned by the
/// inverse of what its orientation tag says to do for display (EXIF 2.32, tag 0x0112: 2 mirror
/// left-right, 3 turn 180°, 4 mirror top-bottom, 5 transpose, 6 turn 90° clockwise, 7
/// transverse, 8 turn 90° anticlockwise).
#[test]
fn all_eight_exif_orientations_come_out_upright() {
    use image::imageops::{flip_horizontal, flip_vertical, rotate180, rotate270, rotate90};
    let quadrants = [[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 230]];
    let upright = RgbImage::from_fn(48, 32, |x, y| {
        Rgb(quadrants[usize::from(x >= 24) + 2 * usize::from(y >= 16)])
    });
    for orientation in 1..=8u16 {
        let stored = match orientation {
            1 => upright.clone(),
            2 => flip_horizontal(&upright),
            3 => rotate180(&upright),
            4 => flip_vertical(&upright),
            // transpose: (x, y) -> (y, x); its own inverse
            5 => flip_horizontal(&rotate90(&upright)),
            6 => rotate270(&upright),
            // transverse: (x, y) -> (h - 1 - y, w - 1 - x); its own inverse
            7 => flip_vertical(&rotate90(&upright)),
            _ => rotate90(&upright),
        };
        let (w, h) = stored.dimensions();
        let file = jpeg(stored.as_raw(), w as u16, h as u16, jpeg_encoder::ColorType::Rgb, |e| {
            e.add_app_segment(1, &exif_orientation(orientation)).unwrap()
        });
        let full = decode(&file, DEFAULT_MAX_PIXELS).unwrap();
        let reduced = decode_at_least(&file, DEFAULT_MAX_PIXELS, 4).unwrap().upright();
        for (decoded, size) in [(full, (48, 32)), (reduced, (6, 4))] {
            assert_eq!(decoded.dimensions(), size, "orientation {orientation}");
            // The quadrants' centres: (12, 8), (36, 8), (12, 24), (36, 24) at full size.
            for (i, (fx, fy)) in [(1, 1), (3, 1), (1, 3), (3, 3)].into_iter().enumerate() {
                let (x, y) = (size.0 * fx / 4, size.1 * fy / 4);
                let got = decoded.get_pixel(x, y).0;
                assert!(
                    close(got, quadrants[i], 30),
                    "orientation {orientation}, {size:?}: ({x}, {y}) is {got:?}, expected {:?}",
                    quadrants[i]
                );
            }
        }
    }
}
