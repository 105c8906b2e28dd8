//! The [`Top`] of a backbone after a cut, rebuilt from its ONNX nodes with the backbone's
//! weights as the starting point.

use std::collections::HashMap;
use std::path::Path;

use super::{Geometry, Op, Param, Top};
use crate::backbone::BackboneError;
use crate::cache::maps::{CutRecord, MapStore};
use crate::cache::{CacheError, Manifest, Store};
use crate::onnx::subgraph::{after_cut, CutError, Node, Subgraph};

/// Why the part after a cut cannot be trained.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The part after the cut could not be found.
    #[error(transparent)]
    Cut(#[from] CutError),
    /// A node is of an op, or has settings, that the trainer does not implement.
    #[error("node `{node}` after the cut is {op}{detail}, which the fine-tuning trainer does not implement: it trains Conv (1x1, depthwise kxk, dense kxk, stride 1), Relu, Clip, Add, BatchNormalization, GlobalAveragePool/ReduceMean, Flatten/Reshape/Squeeze; cut at a later tensor")]
    Unsupported {
        /// The node.
        node: String,
        /// Its op.
        op: String,
        /// What about it is not supported, starting with a space or empty.
        detail: String,
    },
    /// A node reads a tensor that is neither computed after the cut nor a float weight.
    #[error("node `{node}` reads `{tensor}`, which is not a float weight or a map computed after the cut")]
    Input {
        /// The node.
        node: String,
        /// The tensor.
        tensor: String,
    },
    /// The features are still a spatial map.
    #[error(
        "the feature output `{0}` is not pooled to one value per channel after the cut, so the head cannot take it"
    )]
    NotPooled(String),
}

/// The top after `record`'s cut as the backbone of `manifest` has it, and the store of the maps
/// `extract --cut` cached there: what a fine-tune starts from.
pub fn cached_top<E>(workspace: &Path, manifest: &Manifest, record: &CutRecord) -> Result<(Top, MapStore), E>
where
    E: From<BackboneError> + From<BuildError> + From<CacheError>,
{
    let info = manifest.backbone.resolve()?;
    let bytes = std::fs::read(&info.path).map_err(|source| BackboneError::Io {
        path: info.path.clone(),
        source,
    })?;
    let top = build(&bytes, &record.tensor, record.shape, &manifest.backbone.output)?;
    let dir = Store::dir_for(workspace, &manifest.backbone.key).join(&record.dir);
    Ok((top, MapStore::read(&dir)?))
}

/// The trainable top of the backbone `model` from tensor `cut`, whose maps are `input`, to
/// the feature output `output`.
pub fn build(model: &[u8], cut: &str, input: Geometry, output: &str) -> Result<Top, BuildError> {
    let sub = after_cut(model, cut, output)?;
    let mut top = Builder::new(&sub, cut, input).run(output)?;
    top.cut = cut.to_string();
    Ok(top)
}

struct Builder<'s> {
    sub: &'s Subgraph,
    slot_of: HashMap<String, usize>,
    slots: Vec<Geometry>,
    params: Vec<Param>,
    ops: Vec<Op>,
}

impl<'s> Builder<'s> {
    fn new(sub: &'s Subgraph, cut: &str, input: Geometry) -> Self {
        Builder {
            sub,
            slot_of: HashMap::from([(cut.to_string(), 0)]),
            slots: vec![input],
            params: Vec::new(),
            ops: Vec::new(),
        }
    }

    fn run(mut self, output: &str) -> Result<Top, BuildError> {
        for node in &self.sub.nodes {
            self.node(node)?;
        }
        let out = self.slot_of[output];
        if self.slots[out].pixels() != 1 || self.ops.is_empty() {
            return Err(BuildError::NotPooled(output.to_string()));
        }
        Ok(Top {
            cut: String::new(),
            slots: self.slots,
            ops: self.ops,
            params: self.params,
            output: out,
        })
    }

    fn map(&self, node: &Node, i: usize) -> Result<usize, BuildError> {
        let name = node.inputs.get(i).map(String::as_str).unwrap_or("");
        self.slot_of.get(name).copied().ok_or_else(|| BuildError::Input {
            node: node.name.clone(),
            tensor: name.to_string(),
        })
    }

    fn param(&mut self, node: &Node, i: usize) -> Result<Option<usize>, BuildError> {
        let Some(name) = node.inputs.get(i).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        if let Some(p) = self.params.iter().position(|p| &p.name == name) {
            return Ok(Some(p));
        }
        let weight = self.sub.weights.get(name).ok_or_else(|| BuildError::Input {
            node: node.name.clone(),
            tensor: name.clone(),
        })?;
        self.params.push(Param {
            name: name.clone(),
            dims: weight.dims.clone(),
            values: weight.values.clone(),
        });
        Ok(Some(self.params.len() - 1))
    }

    fn scalar(&self, node: &Node, i: usize, attribute: &str) -> Option<f32> {
        match node.inputs.get(i).filter(|n| !n.is_empty()) {
            Some(name) => self.sub.weights.get(name).and_then(|w| w.values.first().copied()),
            None => node.floats.get(attribute).and_then(|v| v.first().copied()),
        }
    }

    fn new_slot(&mut self, node: &Node, geometry: Geometry) -> usize {
        self.slots.push(geometry);
        let slot = self.slots.len() - 1;
        if let Some(name) = node.outputs.first() {
            self.slot_of.insert(name.clone(), slot);
        }
        slot
    }

    fn node(&mut self, node: &Node) -> Result<(), BuildError> {
        let unsupported = |detail: String| BuildError::Unsupported {
            node: node.name.clone(),
            op: node.op.clone(),
            detail,
        };
        match node.op.as_str() {
            "Conv" => {
                let x = self.map(node, 0)?;
                let weight = self
                    .param(node, 1)?
                    .ok_or_else(|| unsupported(" without a weight".into()))?;
                let bias = self.param(node, 2)?;
                let dims = self.params[weight].dims.clone();
                let g = self.slots[x];
                let ints = |name: &str| node.ints.get(name).cloned().unwrap_or_default();
                let group = ints("group").first().copied().unwrap_or(1) as usize;
                if ints("strides").iter().chain(&ints("dilations")).any(|&v| v != 1) {
                    return Err(unsupported(" with a stride or dilation other than 1".into()));
                }
                let [out, per_group, kh, kw] = dims[..] else {
                    return Err(unsupported(format!(" with a {}-d weight", dims.len())));
                };
                let pads = ints("pads");
                let pad = pads.first().copied().unwrap_or(0) as usize;
                if kh != kw || kh % 2 == 0 || pads.iter().any(|&p| p as usize != pad) || 2 * pad + 1 != kh {
                    return Err(unsupported(format!(
                        " with a {kh}x{kw} kernel and pads {pads:?}; only odd square kernels padded to keep the map's size are"
                    )));
                }
                if per_group * group != g.channels {
                    return Err(unsupported(format!(
                        " whose weight takes {} channels, but its input has {}",
                        per_group * group,
                        g.channels
                    )));
                }
                let op_geometry = Geometry { channels: out, ..g };
                let y = self.new_slot(node, op_geometry);
                let op = match (group, kh) {
                    (1, 1) => Op::Pointwise { x, y, weight, bias },
                    (1, k) => Op::Conv {
                        x,
                        y,
                        weight,
                        bias,
                        kernel: k,
                        pad,
                    },
                    (g_, k) if g_ == g.channels && out == g.channels => Op::Depthwise {
                        x,
                        y,
                        weight,
                        bias,
                        kernel: k,
                        pad,
                    },
                    (g_, _) => return Err(unsupported(format!(" grouped in {g_} groups"))),
                };
                self.ops.push(op);
            }
            "Relu" | "Clip" => {
                let x = self.map(node, 0)?;
                let (min, max) = match node.op.as_str() {
                    "Relu" => (0.0, None),
                    _ => (
                        self.scalar(node, 1, "min").unwrap_or(f32::NEG_INFINITY),
                        self.scalar(node, 2, "max"),
                    ),
                };
                let y = self.new_slot(node, self.slots[x]);
                self.ops.push(Op::Clip { x, y, min, max });
            }
            "Add" => {
                let (a, b) = (self.map(node, 0)?, self.map(node, 1)?);
                if self.slots[a] != self.slots[b] {
                    return Err(unsupported(" of two maps of different sizes".into()));
                }
                let y = self.new_slot(node, self.slots[a]);
                self.ops.push(Op::Add { a, b, y });
            }
            "BatchNormalization" => {
                let x = self.map(node, 0)?;
                let scale = self.param(node, 1)?;
                let shift = self.param(node, 2)?;
                let stat = |i: usize| {
                    node.inputs
                        .get(i)
                        .and_then(|n| self.sub.weights.get(n))
                        .map(|w| w.values.clone())
                };
                let (Some(scale), Some(shift), Some(mean), Some(var)) = (scale, shift, stat(3), stat(4)) else {
                    return Err(unsupported(" without its four weights".into()));
                };
                let float = |name: &str, default: f32| {
                    node.floats
                        .get(name)
                        .and_then(|v| v.first().copied())
                        .unwrap_or(default)
                };
                let stats = [node.inputs[3].clone(), node.inputs[4].clone()];
                let y = self.new_slot(node, self.slots[x]);
                self.ops.push(Op::BatchNorm {
                    x,
                    y,
                    scale,
                    shift,
                    mean,
                    var,
                    epsilon: float("epsilon", 1e-5),
                    momentum: float("momentum", 0.9),
                    stats: Some(stats),
                });
            }
            "GlobalAveragePool" | "ReduceMean" => {
                let x = self.map(node, 0)?;
                if node.op == "ReduceMean" {
                    let axes = node.ints.get("axes").cloned().unwrap_or_default();
                    if !matches!(axes[..], [2, 3] | [-2, -1] | [3, 2] | [-1, -2]) {
                        return Err(unsupported(format!(
                            " over axes {axes:?} rather than the two spatial ones"
                        )));
                    }
                }
                let g = self.slots[x];
                let y = self.new_slot(
                    node,
                    Geometry {
                        height: 1,
                        width: 1,
                        ..g
                    },
                );
                self.ops.push(Op::Pool { x, y });
            }
            "Flatten" | "Reshape" | "Squeeze" => {
                let x = self.map(node, 0)?;
                if self.slots[x].pixels() != 1 {
                    return Err(unsupported(" of a map that is not pooled yet".into()));
                }
                if let Some(name) = node.outputs.first() {
                    self.slot_of.insert(name.clone(), x);
                }
            }
            _ => return Err(unsupported(String::new())),
        }
        Ok(())
    }
}
