//! A fine-tuned top and its head as one classifier: a cached map in, class probabilities out.
//! Its file holds the top's weights as `top/<initializer>` and the head's as `head/<name>`
//! tensors, and the top's layers as JSON under [`TOP_KEY`] in the metadata.

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::{Geometry, Op, Param, Top};
use crate::classifier::{Classifier, DenseChain, Tensor};
use crate::head::Head;

/// The format marker of a fine-tuned classifier's file.
pub const FORMAT_VALUE: &str = "finetuned/1";
/// The metadata key of the top's layers.
pub const TOP_KEY: &str = "headstart_top";

const TOP_PREFIX: &str = "top/";
const HEAD_PREFIX: &str = "head/";

/// A fine-tuned top with the head trained on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finetuned {
    /// The layers after the cut.
    pub top: Top,
    /// The head on the top's features.
    pub head: Head,
}

/// The top without its weights, as stored in the metadata.
#[derive(Serialize, Deserialize)]
struct Layout {
    cut: String,
    slots: Vec<Geometry>,
    ops: Vec<Op>,
    params: Vec<(String, Vec<usize>)>,
    output: usize,
}

impl Finetuned {
    /// The pair.
    pub fn new(top: Top, head: Head) -> Self {
        Finetuned { top, head }
    }

    /// Rebuilds the classifier from its file's tensors and the layout JSON under [`TOP_KEY`].
    pub fn from_parts(tensors: Vec<Tensor>, layout: Option<&str>) -> Result<Finetuned, String> {
        let layout: Layout =
            serde_json::from_str(layout.ok_or_else(|| format!("its metadata has no {TOP_KEY:?} entry"))?)
                .map_err(|e| format!("its {TOP_KEY:?} entry is unreadable: {e}"))?;
        let mut top_tensors: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
        let mut head_tensors = Vec::new();
        for (name, dims, values) in tensors {
            if let Some(rest) = name.strip_prefix(TOP_PREFIX) {
                top_tensors.insert(rest.to_string(), (dims, values));
            } else if let Some(rest) = name.strip_prefix(HEAD_PREFIX) {
                head_tensors.push((rest.to_string(), dims, values));
            } else {
                return Err(format!("tensor `{name}` is neither the top's nor the head's"));
            }
        }
        let mut params = Vec::with_capacity(layout.params.len());
        for (name, dims) in layout.params {
            let (found, values) = top_tensors
                .remove(&name)
                .ok_or_else(|| format!("the top's weight `{name}` is missing"))?;
            if found != dims || !values.iter().all(|v| v.is_finite()) {
                return Err(format!(
                    "the top's weight `{name}` is {found:?}, expected {dims:?} of finite values"
                ));
            }
            params.push(Param { name, dims, values });
        }
        let slots = layout.slots.len();
        let bad_op = layout.ops.iter().any(|op| {
            let (ins, outs) = op_slots(op);
            ins.iter().chain(&outs).any(|&s| s >= slots) || op.params().iter().any(|&p| p >= params.len())
        });
        if bad_op || layout.output >= slots || layout.ops.is_empty() {
            return Err("the top's layers refer to maps or weights it does not have".into());
        }
        let top = Top {
            cut: layout.cut,
            slots: layout.slots,
            ops: layout.ops,
            params,
            output: layout.output,
        };
        let head = Head::from_tensors(head_tensors).map_err(|e| e.to_string())?;
        if head.n_features() != top.n_features() {
            return Err(format!(
                "the head takes {} features but the top gives {}",
                head.n_features(),
                top.n_features()
            ));
        }
        Ok(Finetuned { top, head })
    }

    /// The layout JSON stored under [`TOP_KEY`].
    pub fn layout(&self) -> String {
        let layout = Layout {
            cut: self.top.cut.clone(),
            slots: self.top.slots.clone(),
            ops: self.top.ops.clone(),
            params: self
                .top
                .params
                .iter()
                .map(|p| (p.name.clone(), p.dims.clone()))
                .collect(),
            output: self.top.output,
        };
        serde_json::to_string(&layout).expect("plain data")
    }
}

/// The slots an op reads and writes.
fn op_slots(op: &Op) -> (Vec<usize>, Vec<usize>) {
    match *op {
        Op::Pointwise { x, y, .. }
        | Op::Depthwise { x, y, .. }
        | Op::Conv { x, y, .. }
        | Op::Clip { x, y, .. }
        | Op::BatchNorm { x, y, .. }
        | Op::Pool { x, y } => (vec![x], vec![y]),
        Op::Add { a, b, y } => (vec![a, b], vec![y]),
    }
}

impl Classifier for Finetuned {
    /// Values of one cached map, NCHW.
    fn n_features(&self) -> usize {
        self.top.input().len()
    }

    fn n_classes(&self) -> usize {
        self.head.n_classes()
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(x.ncols(), self.n_features(), "one cached map per row");
        let maps = x.as_standard_layout();
        let features = self
            .top
            .features_nchw(maps.as_slice().expect("standard layout"), x.nrows());
        let features = ArrayView2::from_shape((x.nrows(), self.top.n_features()), &features).expect("one row per map");
        self.head.predict_proba(features)
    }

    fn dense_chain(&self) -> Option<DenseChain> {
        Classifier::dense_chain(&self.head)
    }

    fn format(&self) -> Option<&'static str> {
        Some(FORMAT_VALUE)
    }

    fn tensors(&self) -> Vec<Tensor> {
        let top = self
            .top
            .params
            .iter()
            .map(|p| (format!("{TOP_PREFIX}{}", p.name), p.dims.clone(), p.values.clone()));
        let head = self
            .head
            .tensors()
            .into_iter()
            .map(|(name, dims, values)| (format!("{HEAD_PREFIX}{name}"), dims, values));
        top.chain(head).collect()
    }

    fn structure(&self) -> Option<(&'static str, String)> {
        Some((TOP_KEY, self.layout()))
    }

    fn cut(&self) -> Option<(&str, Geometry)> {
        Some((&self.top.cut, self.top.input()))
    }

    fn on_features(&self) -> &dyn Classifier {
        &self.head
    }

    /// The trained weights, and every batch norm's moving statistics, which training mode
    /// changes (frozen, they are written back unchanged).
    fn backbone_weights(&self) -> Vec<(String, Vec<f32>)> {
        let weights = self.top.params.iter().map(|p| (p.name.clone(), p.values.clone()));
        let stats = self.top.ops.iter().flat_map(|op| match op {
            Op::BatchNorm {
                mean,
                var,
                stats: Some([mean_name, var_name]),
                ..
            } => vec![(mean_name.clone(), mean.clone()), (var_name.clone(), var.clone())],
            _ => Vec::new(),
        });
        weights.chain(stats).collect()
    }
}
