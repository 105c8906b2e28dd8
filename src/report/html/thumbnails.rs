//! Small JPEG thumbnails as data URIs, so the page needs no image files beside it.
//!
//! A page must stay small enough to open and mail (about 5 MB for 1,000 images), so the number
//! of thumbnails is capped and so are their bytes; the images asked for first (the mistakes,
//! the audit's findings) are the ones that get one.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use rayon::prelude::*;

use super::page::esc;
use crate::preprocess::decode_at_least;

/// Longest side of a thumbnail, in pixels: big enough to recognise a photo at a glance.
pub const SIDE: u32 = 96;
/// JPEG quality of a thumbnail: at 96 px, lower shows blocks and higher mostly adds bytes.
const QUALITY: u8 = 70;
/// Most thumbnails on one page.
pub const MAX_COUNT: usize = 1_000;
/// Most bytes of data URIs on one page: with the text around them the page stays near 5 MB.
pub const MAX_BYTES: usize = 4_500_000;

/// The thumbnails of one page, by image path (relative to the data folder).
#[derive(Debug, Default)]
pub struct Thumbnails {
    uris: HashMap<String, String>,
    /// Images asked for that got none because of the caps.
    pub capped: usize,
    /// Images asked for that could not be read or decoded (the data folder moved, say).
    pub unreadable: usize,
}

impl Thumbnails {
    /// Thumbnails of `wanted` (paths relative to `root`, most important first; repeats are
    /// ignored), as many as the caps allow. Without a `root` there are none.
    pub fn make(root: Option<&Path>, wanted: &[&str], max_pixels: u64) -> Thumbnails {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&str> = wanted.iter().copied().filter(|p| seen.insert(*p)).collect();
        let Some(root) = root else {
            return Thumbnails {
                unreadable: unique.len(),
                ..Thumbnails::default()
            };
        };
        let tried = unique.len().min(MAX_COUNT);
        let encoded: Vec<Option<String>> = unique[..tried]
            .par_iter()
            .map(|path| thumbnail(&root.join(path), max_pixels).map(|jpeg| data_uri(&jpeg)))
            .collect();
        let mut thumbnails = Thumbnails {
            capped: unique.len() - tried,
            ..Thumbnails::default()
        };
        let mut bytes = 0;
        for (path, uri) in unique.iter().zip(encoded) {
            match uri {
                None => thumbnails.unreadable += 1,
                Some(uri) if bytes + uri.len() > MAX_BYTES => thumbnails.capped += 1,
                Some(uri) => {
                    bytes += uri.len();
                    thumbnails.uris.insert(path.to_string(), uri);
                }
            }
        }
        thumbnails
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.uris.len()
    }

    /// The image's `<img>`, or a placeholder of the same size that says there is none.
    pub fn img(&self, path: &str) -> String {
        match self.uris.get(path) {
            Some(uri) => format!("<img src=\"{uri}\" alt=\"{}\">", esc(path)),
            None => "<span class=\"noimg\" role=\"img\" aria-label=\"no thumbnail\">no thumbnail</span>".to_owned(),
        }
    }

    /// A sentence for the page when some images have no thumbnail, else nothing.
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        if self.capped > 0 {
            parts.push(format!(
                "{} images have no thumbnail: a page shows at most {MAX_COUNT} thumbnails ({:.1} MB), the mistakes and the audit's findings first",
                self.capped,
                MAX_BYTES as f64 / 1e6
            ));
        }
        if self.unreadable > 0 {
            parts.push(format!(
                "{} images could not be read from the data folder (moved or changed since extract?)",
                self.unreadable
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("<p class=\"note\">{}.</p>", esc(&parts.join("; ")))
        }
    }
}

/// The image at `path` shrunk to [`SIDE`] and JPEG-encoded; `None` if it cannot be read or
/// decoded (the page then shows a placeholder: a missing picture is no reason to fail).
fn thumbnail(path: &Path, max_pixels: u64) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    // A big JPEG is decoded already reduced: a thumbnail needs few of its pixels.
    let img = decode_at_least(&bytes, max_pixels, SIDE).ok()?.upright();
    let (w, h) = img.dimensions();
    let scale = (SIDE as f32 / w.max(h) as f32).min(1.0);
    let size = |side: u32| ((side as f32 * scale).round() as u32).max(1);
    let small = if scale < 1.0 {
        image::imageops::resize(&img, size(w), size(h), FilterType::Triangle)
    } else {
        img
    };
    let mut jpeg = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
        .encode_image(&small)
        .ok()?;
    Some(jpeg.into_inner())
}

fn data_uri(jpeg: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn shrinks_keeps_aspect_and_survives_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_fn(400, 200, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]))
            .save(dir.path().join("wide.png"))
            .unwrap();
        std::fs::write(dir.path().join("broken.jpg"), b"not an image").unwrap();
        let t = Thumbnails::make(
            Some(dir.path()),
            &["wide.png", "broken.jpg", "gone.png", "wide.png"],
            1 << 30,
        );
        assert_eq!((t.len(), t.unreadable, t.capped), (1, 2, 0));
        let jpeg = thumbnail(&dir.path().join("wide.png"), 1 << 30).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (SIDE, SIDE / 2));
        assert!(t.img("wide.png").starts_with("<img src=\"data:image/jpeg;base64,"));
        assert!(t.img("broken.jpg").contains("no thumbnail"));
        assert!(t.note().contains("2 images could not be read"), "{}", t.note());
    }
}
