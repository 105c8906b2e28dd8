//! headstart: transfer learning on images with a frozen ONNX backbone.
//!
//! Data flows one way through the stages, one module each:
//! [`dataset`] (which files) -> [`preprocess`] (pixels) -> [`backbone`] (features) ->
//! [`cache`] (embeddings on disk), orchestrated by [`extract`]. [`runtime`] finds ONNX Runtime.

pub mod backbone;
pub mod cache;
pub mod dataset;
pub mod extract;
pub mod preprocess;
pub mod runtime;
