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
use ndarray::Array2;
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
        format!("views-{}", crate::fetch::hex(&Sha256::digest(json.as_bytes())[..8]))
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
pub fn mean_of_views(plain: Array2<f32>, mirrored: Array2<f32>) -> Array2<f32> {
    (plain + mirrored) * 0.5
}

/// How `train-head` uses the augmented views `extract --augment K` cached. Each epoch the head
/// sees every training image once, as one view drawn uniformly from its pool. The baseline
/// always fits the plain vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ViewPolicy {
    /// The pool is the plain crop and the K views: the un-augmented image takes part in every
    /// epoch's draw.
    #[default]
    WithPlain,
    /// The pool is the K views only.
    ViewsOnly,
    /// Ignore the views: train on the plain vectors.
    Off,
}

impl ViewPolicy {
    /// The setting as the `--augment` flag and the JSON files spell it.
    pub fn name(self) -> &'static str {
        match self {
            ViewPolicy::WithPlain => "with-plain",
            ViewPolicy::ViewsOnly => "views-only",
            ViewPolicy::Off => "off",
        }
    }
}

/// The training rows with the views appended, and each image's pool of rows to draw from.
pub struct WithViews {
    /// The plain rows, then every view's row.
    pub x: Array2<f32>,
    /// Each row's class.
    pub y: Vec<usize>,
    /// Multi-label data: each row's label set.
    pub targets: Option<Array2<f32>>,
    /// For each image (plain row), the rows to draw from.
    pub pools: Vec<Vec<usize>>,
}

/// Appends every image's cached views after the plain rows, labelled as their image. An image
/// without any view (the network failed on them) keeps its plain vector as its only row, whatever
/// the policy, so no image drops out of training.
pub fn with_views(
    x: &Array2<f32>,
    y: &[usize],
    targets: Option<&Array2<f32>>,
    vectors: Vec<Vec<Vec<f32>>>,
    policy: ViewPolicy,
) -> WithViews {
    let n = x.nrows();
    let extra: usize = vectors.iter().map(Vec::len).sum();
    let mut all = Array2::zeros((n + extra, x.ncols()));
    all.slice_mut(ndarray::s![..n, ..]).assign(x);
    let mut rows_y = y.to_vec();
    let mut source = (0..n).collect::<Vec<usize>>();
    let mut pools = Vec::with_capacity(n);
    let mut next = n;
    for (image, views) in vectors.into_iter().enumerate() {
        let mut pool = match (policy, views.is_empty()) {
            (ViewPolicy::ViewsOnly, false) => Vec::new(),
            _ => vec![image],
        };
        for v in views {
            all.row_mut(next).assign(&ndarray::ArrayView1::from(&v[..]));
            rows_y.push(y[image]);
            source.push(image);
            pool.push(next);
            next += 1;
        }
        pools.push(pool);
    }
    let targets = targets.map(|t| t.select(ndarray::Axis(0), &source));
    WithViews {
        x: all,
        y: rows_y,
        targets,
        pools,
    }
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
