//! headstart: transfer learning on images with a frozen ONNX backbone.
//!
//! Data flows one way through the stages, one module each:
//! [`dataset`] (which files) -> [`preprocess`] (pixels) -> [`backbone`] (features, run in
//! batches by [`embed`]) -> [`cache`] (embeddings on disk) -> [`head`] / [`baseline`]
//! (classifiers, behind the [`classifier::Classifier`] trait, saved and loaded by [`artifact`])
//! -> [`metrics`] -> [`report`]. The commands orchestrate them: [`extract`], [`train`],
//! [`evaluate`], [`predict`] and [`export`] (which splices through [`onnx`]); no command uses
//! another. [`runtime`] finds and loads ONNX Runtime; [`settings`] holds how the commands that
//! open a backbone run it; [`bundled`] carries the default backbone and the demo images inside
//! the binary and unpacks them into [`home`]; [`atomic`] writes every file; [`runs`]
//! records each `train-head` and `eval`, and [`folds`] splits the training files for
//! cross-validation.

pub mod artifact;
pub mod atomic;
pub mod backbone;
pub mod baseline;
pub mod bundled;
pub mod cache;
pub mod classifier;
pub mod dataset;
pub mod embed;
pub mod evaluate;
pub mod export;
pub mod extract;
pub mod folds;
pub mod head;
pub mod home;
pub mod metrics;
pub mod onnx;
pub mod predict;
pub mod preprocess;
pub mod report;
pub mod runs;
pub mod runtime;
pub mod settings;
pub mod train;
