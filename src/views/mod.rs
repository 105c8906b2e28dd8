//! Extra views of an image, embedded once and cached beside its plain vector: augmented views
//! of the train split (`extract --augment K`) and the mirrored view of val and test for
//! test-time augmentation (`extract --tta`).
//!
//! A view's vector is cached under a key derived from the image's content key and the view's
//! index, in a store folder of its own inside the backbone's, named by the view settings:
//! `embeddings/<backbone key>/views-<settings hash>/`. So the backbone and its preprocessing
//! (input size included) keep views apart as they keep plain vectors apart, other settings get
//! another folder, and raising K finds views 0..K-1 already cached.

pub mod augment;

use fast_image_resize::Resizer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::ContentKey;
use crate::preprocess::{resize_crop, Decoded, PreprocessError, Preprocessing};
use augment::{flip_horizontally, jitter_colour, AugmentSettings, Draw};

/// Which extra views a view store holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewKind {
    /// Randomly augmented views of training images, drawn with these settings.
    Augmented(AugmentSettings),
    /// The plain centre crop mirrored left to right, for test-time augmentation.
    Mirrored,
}

impl ViewKind {
    /// The view store's folder name inside the backbone's store folder.
    pub fn dir_name(&self) -> String {
        let json = serde_json::to_string(self).expect("plain data");
        format!("views-{}", crate::runtime::hex(&Sha256::digest(json.as_bytes())[..8]))
    }
}

/// The cache key of view `index` of the image with content key `content`.
pub fn view_key(content: &ContentKey, index: u32) -> ContentKey {
    let mut hasher = Sha256::new();
    hasher.update(b"headstart-view");
    hasher.update(content);
    hasher.update(index.to_le_bytes());
    hasher.finalize().into()
}

/// The views cached by the last `extract`, as its manifest records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewsRecord {
    /// How the views were made.
    pub kind: ViewKind,
    /// Views per image: K for augmented views, 1 for the mirrored one.
    pub count: u32,
    /// The store file, inside the view store's folder ([`ViewKind::dir_name`]).
    pub store: String,
}

/// One input the network is run on for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// The plain evaluation crop: resize, centre crop.
    Centre,
    /// The plain crop mirrored.
    Mirrored,
    /// Augmented view number `n`.
    Augmented(u32),
}

/// Makes the network input's RGB bytes (`size * size * 3`) for `render` of a decoded image whose
/// file has content key `key`. `augment` must be given for [`Render::Augmented`].
pub fn render(
    decoded: &Decoded,
    key: &ContentKey,
    what: Render,
    augment: Option<&AugmentSettings>,
    spec: &Preprocessing,
    resizer: &mut Resizer,
) -> Result<Vec<u8>, PreprocessError> {
    match (what, augment) {
        (Render::Centre, _) => decoded.crop_resize(spec, resizer),
        (Render::Mirrored, _) => {
            let mut pixels = decoded.crop_resize(spec, resizer)?;
            flip_horizontally(&mut pixels, spec.size as usize);
            Ok(pixels)
        }
        (Render::Augmented(n), Some(settings)) => {
            let upright = decoded.upright_view();
            let draw = Draw::new(settings, key, n, upright.width(), upright.height());
            let mut pixels = resize_crop(&upright, draw.crop, spec.size, resizer)?;
            if draw.flip {
                flip_horizontally(&mut pixels, spec.size as usize);
            }
            jitter_colour(&mut pixels, draw.colour);
            Ok(pixels)
        }
        (Render::Augmented(_), None) => Err(PreprocessError::Resize(
            "an augmented view was asked for without augmentation settings".into(),
        )),
    }
}

/// Test-time augmentation's answer: the mean of the probabilities a classifier gave the plain
/// crop and its mirror image (rows in the same order).
pub fn mean_of_views(plain: ndarray::Array2<f32>, mirrored: ndarray::Array2<f32>) -> ndarray::Array2<f32> {
    (plain + mirrored) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_view_index_give_distinct_keys_and_folders() {
        let content = [3u8; 32];
        assert_ne!(view_key(&content, 0), view_key(&content, 1));
        assert_ne!(view_key(&content, 0), content);
        let a = ViewKind::Augmented(AugmentSettings::default());
        let b = ViewKind::Augmented(AugmentSettings {
            seed: 1,
            ..AugmentSettings::default()
        });
        assert_ne!(a.dir_name(), b.dir_name());
        assert_ne!(a.dir_name(), ViewKind::Mirrored.dir_name());
        assert_eq!(a.dir_name(), a.dir_name());
        assert!(a.dir_name().starts_with("views-") && a.dir_name().len() == 6 + 16);
    }
}
