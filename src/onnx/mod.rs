//! Splicing a classifier onto the backbone: one ONNX file that holds the frozen backbone and the trained head, image tensor in,
//! class probabilities out, so a classifier runs wherever ONNX Runtime runs, without headstart.
//!
//! # How the file is put together
//! The backbone is never decoded and encoded again as a whole: a decoder that knows only part of
//! the ONNX schema drops what it does not know, and one that knows all of it still rewrites
//! field order and packing. Instead the model is spliced at the protobuf wire level, which is
//! well defined because a message is just the concatenation of its fields and repeated fields
//! keep the order in which they appear. Every field of the backbone's `ModelProto` is copied byte
//! for byte except:
//! - `graph` (field 7) is rebuilt in place from the backbone graph's own fields, minus its
//!   `output` entries (field 12), followed by the head's nodes, weights and single output. A
//!   graph split over several occurrences of field 7 (legal: they merge) is joined into one.
//! - `metadata_props` (field 14) entries whose key the caller sets are dropped, because the ONNX
//!   checker rejects duplicate keys; the caller's entries are appended at the end.
//!
//! The head is Flatten(axis=1) → per layer Gemm (+ Relu) → Softmax(axis=1). Flatten is always
//! added: it turns `[N, D]`, `[N, C, 1, 1]` and any intermediate `[N, ...]` tensor into the
//! `[N, D]` that Gemm needs, and it is only a reshape. Gemm keeps one node per layer and
//! needs opset 7 or later to broadcast the bias, which ONNX Runtime requires anyway.
//!
//! # Why prost
//! prost 0.14's derive gives small message structs for the few parts read (names, types, shapes)
//! and the parts written (nodes, initializers, the output), with no build script and no vendored
//! `onnx.proto`. The `protobuf` crate with code generated from `onnx.proto` would need a build
//! script, the schema in the tree and a larger runtime, only to decode what is copied anyway; the
//! published ONNX message crates (`onnx-pb`, `onnx-protobuf`) are unmaintained and would
//! still drop or reorder what they decode. The field scanner below, which only finds where each
//! field starts and ends, is written here: prost's `encoding` module has such helpers but is
//! `#[doc(hidden)]` and documented as internal to prost-derive, so it carries no semver promise.

pub mod edit;
pub mod subgraph;

use std::borrow::Cow;
use std::collections::HashSet;

use prost::Message;

use crate::classifier::{Activation, DenseChain, DenseLayer};

/// Why a backbone and head could not be put together; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The backbone bytes do not decode as an ONNX model.
    #[error("the backbone is not a readable ONNX model ({0}): pass the .onnx file the embeddings were made with")]
    Malformed(String),
    /// The model has no graph.
    #[error("the backbone model has no graph: pass an ONNX model file with a graph, not a function library or training artifact")]
    NoGraph,
    /// The model imports no operator set of the default ONNX domain.
    #[error("the backbone imports no standard ONNX operator set (only custom domains), so the head's Gemm and Softmax cannot be added: export the backbone with an ONNX opset import")]
    NoOpset,
    /// The model's default-domain opset is older than 7.
    #[error(
        "the backbone imports ONNX opset {0}; the head needs opset 7 or later: convert it with onnx.version_converter"
    )]
    OldOpset(i64),
    /// An initializer of the backbone keeps its data in an external file.
    #[error("backbone initializer `{0}` keeps its data in an external file, which a single exported file cannot carry: load the model with onnx and save it with save_as_external_data=False")]
    ExternalData(String),
    /// No output or node output of the backbone graph has the feature tensor's name.
    #[error("the backbone graph has no tensor `{name}` (its outputs: {outputs}): pass one of those, or the name of a tensor one of its nodes produces")]
    FeatureNotFound {
        /// The tensor asked for.
        name: String,
        /// The graph's outputs, as a list for the message.
        outputs: String,
    },
    /// The feature tensor is not float32.
    #[error("feature tensor `{name}` holds {found}; the head takes float32 features: export from a float32 backbone or pick a float32 tensor")]
    FeatureType {
        /// The tensor.
        name: String,
        /// Its element type.
        found: String,
    },
    /// The feature tensor has no batch axis (rank below 2).
    #[error("feature tensor `{name}` has shape {shape}; the head needs a batch axis first, [batch, D] or [batch, C, H, W]: pick another tensor")]
    FeatureRank {
        /// The tensor.
        name: String,
        /// Its shape, written out.
        shape: String,
    },
    /// The feature tensor's values per image differ from the head's input width.
    #[error("feature tensor `{name}` has shape {shape}, {width} values per image, but the head's first layer takes {expected}: the head was trained on another feature output or backbone; export with the one it was trained on")]
    FeatureWidth {
        /// The tensor.
        name: String,
        /// Its shape, written out.
        shape: String,
        /// Values per image (product of the non-batch axes).
        width: i64,
        /// Inputs of the head's first layer.
        expected: usize,
    },
    /// The head to splice has no layers.
    #[error("the head has no layers: train a head before exporting")]
    NoLayers,
    /// A head layer is inconsistent (mismatched sizes or a bias of the wrong length).
    #[error("head layer {layer}: {problem}")]
    Layer {
        /// The layer's 0-based position.
        layer: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The probabilities output's name is already a tensor of the backbone.
    #[error("the backbone already has a tensor named `{0}`: choose another name for the probabilities output")]
    NameTaken(String),
    /// A metadata key to write is given twice.
    #[error("metadata key `{0}` is given twice: give each key once")]
    DuplicateMetadata(String),
}

/// Appends the classifier `chain` to the backbone at tensor `feature_output`.
///
/// The result's only output is `probabilities_name`, float32 `[batch, classes]`, where batch is
/// the feature tensor's first dimension when the backbone declares it, else the image input's.
/// `metadata` (labels, preset, ...) goes into the model's `metadata_props`, replacing entries
/// with the same key. The feature width is checked against the first layer when the backbone
/// declares the feature tensor's shape; an intermediate tensor often has none, and then a
/// mismatch shows only when the model is run.
pub fn compose(
    backbone_onnx: &[u8],
    feature_output: &str,
    chain: &DenseChain,
    probabilities_name: &str,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, SpliceError> {
    let layers = &chain.layers;
    check_layers(layers)?;
    let mut keys = HashSet::new();
    if let Some((key, _)) = metadata.iter().find(|(key, _)| !keys.insert(key.as_str())) {
        return Err(SpliceError::DuplicateMetadata(key.clone()));
    }

    let model_fields = fields(backbone_onnx)?;
    let header = ModelHeader::decode(backbone_onnx).map_err(malformed)?;
    let opset = header
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or(SpliceError::NoOpset)?;
    if opset < 7 {
        return Err(SpliceError::OldOpset(opset));
    }

    let graph_bytes = joined_graph(&model_fields)?;
    let graph = Graph::decode(&*graph_bytes).map_err(malformed)?;
    let mut names = Names::default();
    names.collect(&graph)?;

    let feature = find_feature(&graph, feature_output)?;
    if let Some(info) = &feature {
        check_feature(feature_output, info, layers[0].weight.nrows())?;
    }
    if names.tensors.contains(probabilities_name) {
        return Err(SpliceError::NameTaken(probabilities_name.to_string()));
    }

    let batch = feature
        .and_then(|t| t.shape.as_ref()?.dim.first()?.value.clone())
        .or_else(|| image_batch(&graph))
        .unwrap_or_else(|| DimValue::Param("batch".to_string()));
    // IR versions before 4 require every initializer to be listed among the graph inputs too.
    let list_weights_as_inputs = header.ir_version < 4;
    let tail = head_graph(
        &names.free_prefix(),
        feature_output,
        chain,
        probabilities_name,
        batch,
        list_weights_as_inputs,
    )
    .encode_to_vec();

    let mut graph: Vec<u8> = Vec::with_capacity(graph_bytes.len() + tail.len());
    for field in fields(&graph_bytes)? {
        if field.number != GRAPH_OUTPUT {
            graph.extend_from_slice(field.raw);
        }
    }
    graph.extend_from_slice(&tail);
    let mut out = with_graph(&model_fields, &graph, &keys)?;
    let entries = metadata
        .iter()
        .map(|(key, value)| StringStringEntry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    ModelMetadata {
        metadata_props: entries,
    }
    .encode(&mut out)
    .expect("a Vec grows as needed");
    Ok(out)
}

/// The model's graph as one message: a graph split over several occurrences of field 7 (legal:
/// they merge) is joined.
fn joined_graph<'a>(model_fields: &[Field<'a>]) -> Result<Cow<'a, [u8]>, SpliceError> {
    let parts: Vec<&[u8]> = model_fields
        .iter()
        .filter(|f| f.number == MODEL_GRAPH)
        .map(|f| f.payload)
        .collect();
    match parts.as_slice() {
        [] => Err(SpliceError::NoGraph),
        [one] => Ok(Cow::Borrowed(one)),
        many => Ok(Cow::Owned(many.concat())),
    }
}

/// The model's fields byte for byte, with `graph` for its graph and without the metadata
/// entries whose key is in `dropped_metadata`.
fn with_graph(model_fields: &[Field], graph: &[u8], dropped_metadata: &HashSet<&str>) -> Result<Vec<u8>, SpliceError> {
    let size = model_fields.iter().map(|f| f.raw.len()).sum::<usize>() + graph.len() + 64;
    let mut out = Vec::with_capacity(size);
    let mut graph_written = false;
    for field in model_fields {
        match field.number {
            MODEL_GRAPH if !graph_written => {
                graph_written = true;
                out.push(MODEL_GRAPH_KEY);
                prost::encode_length_delimiter(graph.len(), &mut out).expect("a Vec grows as needed");
                out.extend_from_slice(graph);
            }
            MODEL_GRAPH => {}
            MODEL_METADATA if !dropped_metadata.is_empty() => {
                let entry = StringStringEntry::decode(field.payload).map_err(malformed)?;
                if !dropped_metadata.contains(entry.key.as_str()) {
                    out.extend_from_slice(field.raw);
                }
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    Ok(out)
}

const MODEL_GRAPH: u32 = 7;
const MODEL_METADATA: u32 = 14;
/// The key of a length-delimited field 7: `(number << 3) | wire type 2`.
const MODEL_GRAPH_KEY: u8 = (MODEL_GRAPH as u8) << 3 | 2;
const GRAPH_OUTPUT: u32 = 12;
const FLOAT: i32 = 1;
const ATTRIBUTE_INT: i32 = 2;
const DATA_EXTERNAL: i32 = 1;

fn malformed(e: impl std::fmt::Display) -> SpliceError {
    SpliceError::Malformed(e.to_string())
}

fn check_layers(layers: &[DenseLayer]) -> Result<(), SpliceError> {
    if layers.is_empty() {
        return Err(SpliceError::NoLayers);
    }
    let problem = |layer, problem: String| Err(SpliceError::Layer { layer, problem });
    for (i, layer) in layers.iter().enumerate() {
        let (inputs, outputs) = layer.weight.dim();
        if inputs == 0 || outputs == 0 {
            return problem(
                i,
                format!("its weight is {inputs}x{outputs}; a layer needs at least one input and one output"),
            );
        }
        if layer.bias.len() != outputs {
            return problem(i, format!("its weight is {inputs}x{outputs} ([in, out]) but its bias has {} values; they must match the {outputs} outputs", layer.bias.len()));
        }
        if let Some(previous) = i.checked_sub(1).map(|p| layers[p].weight.ncols()) {
            if previous != inputs {
                return problem(
                    i,
                    format!(
                        "it takes {inputs} inputs but layer {} gives {previous}: the layers do not chain",
                        i - 1
                    ),
                );
            }
        }
        if !layer.weight.iter().chain(&layer.bias).all(|v| v.is_finite()) {
            return problem(
                i,
                "it has NaN or infinite weights: training diverged; retrain, e.g. with a lower learning rate"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// The feature tensor's declared type and shape, if the graph declares them; an error if no
/// tensor of that name exists in the main graph (subgraph tensors are out of its reach).
fn find_feature<'g>(graph: &'g Graph, name: &str) -> Result<Option<&'g TensorType>, SpliceError> {
    let exists = graph.input.iter().any(|v| v.name == name)
        || graph.initializer.iter().any(|t| t.name == name)
        || graph.node.iter().any(|n| n.output.iter().any(|o| o == name));
    if !exists {
        let outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
        return Err(SpliceError::FeatureNotFound {
            name: name.to_string(),
            outputs: outputs.join(", "),
        });
    }
    Ok(graph
        .value_info
        .iter()
        .chain(&graph.output)
        .chain(&graph.input)
        .find(|v| v.name == name)
        .and_then(|v| v.r#type.as_ref()?.tensor_type.as_ref()))
}

fn check_feature(name: &str, info: &TensorType, expected: usize) -> Result<(), SpliceError> {
    if info.elem_type != 0 && info.elem_type != FLOAT {
        let found = match info.elem_type {
            10 => "float16".to_string(),
            11 => "float64".to_string(),
            16 => "bfloat16".to_string(),
            other => format!("ONNX element type {other}"),
        };
        return Err(SpliceError::FeatureType {
            name: name.to_string(),
            found,
        });
    }
    let Some(shape) = &info.shape else {
        return Ok(());
    };
    let shown = shape_text(shape);
    if shape.dim.len() < 2 {
        return Err(SpliceError::FeatureRank {
            name: name.to_string(),
            shape: shown,
        });
    }
    let width: Option<i64> = shape.dim[1..]
        .iter()
        .map(|d| match d.value {
            Some(DimValue::Value(v)) => Some(v),
            _ => None,
        })
        .product();
    match width {
        Some(width) if usize::try_from(width) != Ok(expected) => Err(SpliceError::FeatureWidth {
            name: name.to_string(),
            shape: shown,
            width,
            expected,
        }),
        _ => Ok(()),
    }
}

fn shape_text(shape: &Shape) -> String {
    let dims: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::Value(v)) => v.to_string(),
            Some(DimValue::Param(p)) => p.clone(),
            None => "?".to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The first dimension of the first real graph input (old models also list weights as inputs),
/// standing in for the batch when the feature tensor's shape is not declared.
fn image_batch(graph: &Graph) -> Option<DimValue> {
    let weights: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input = graph.input.iter().find(|v| !weights.contains(v.name.as_str()))?;
    let tensor = input.r#type.as_ref()?.tensor_type.as_ref()?;
    tensor.shape.as_ref()?.dim.first()?.value.clone()
}

/// Every tensor and node name in the graph and its subgraphs, so that the head's names collide
/// with none, not even one that a subgraph would shadow.
#[derive(Default)]
struct Names<'g> {
    tensors: HashSet<&'g str>,
    nodes: HashSet<&'g str>,
}

impl<'g> Names<'g> {
    fn collect(&mut self, graph: &'g Graph) -> Result<(), SpliceError> {
        for info in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
            self.tensors.insert(&info.name);
        }
        for tensor in &graph.initializer {
            if tensor.data_location == DATA_EXTERNAL {
                return Err(SpliceError::ExternalData(tensor.name.clone()));
            }
            self.tensors.insert(&tensor.name);
        }
        for node in &graph.node {
            self.nodes.insert(&node.name);
            self.tensors.extend(node.output.iter().map(String::as_str));
            for attribute in &node.attribute {
                for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                    self.collect(subgraph)?;
                }
            }
        }
        Ok(())
    }

    /// `headstart`, or `headstart_2`, ... when a model that already went through export is
    /// composed again.
    fn free_prefix(&self) -> String {
        (1..)
            .map(|i| {
                if i == 1 {
                    "headstart".to_string()
                } else {
                    format!("headstart_{i}")
                }
            })
            .find(|prefix| {
                let taken = format!("{prefix}/");
                !self.tensors.iter().chain(&self.nodes).any(|n| n.starts_with(&taken))
            })
            .expect("some prefix is free")
    }
}

fn head_graph(
    prefix: &str,
    feature: &str,
    chain: &DenseChain,
    probabilities: &str,
    batch: DimValue,
    list_weights_as_inputs: bool,
) -> GraphTail {
    let node = |op: &str, name: String, input: Vec<String>, output: String, axis: Option<i64>| NodeProto {
        input,
        output: vec![output],
        name,
        op_type: op.to_string(),
        attribute: axis
            .map(|i| AttributeProto {
                name: "axis".to_string(),
                r#type: ATTRIBUTE_INT,
                i: Some(i),
                ..Default::default()
            })
            .into_iter()
            .collect(),
    };
    let mut tail = GraphTail::default();
    let mut current = format!("{prefix}/flatten");
    tail.node.push(node(
        "Flatten",
        current.clone(),
        vec![feature.to_string()],
        current.clone(),
        Some(1),
    ));
    let layers = &chain.layers;
    for (i, layer) in layers.iter().enumerate() {
        let (inputs, outputs) = layer.weight.dim();
        let weight = TensorProto {
            dims: vec![inputs as i64, outputs as i64],
            data_type: FLOAT,
            name: format!("{prefix}/dense{i}/weight"),
            raw_data: layer.weight.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let bias = TensorProto {
            dims: vec![outputs as i64],
            data_type: FLOAT,
            name: format!("{prefix}/dense{i}/bias"),
            raw_data: layer.bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let gemm = format!("{prefix}/dense{i}");
        tail.node.push(node(
            "Gemm",
            gemm.clone(),
            vec![current, weight.name.clone(), bias.name.clone()],
            gemm.clone(),
            None,
        ));
        current = gemm;
        if layer.relu {
            let relu = format!("{prefix}/dense{i}/relu");
            tail.node
                .push(node("Relu", relu.clone(), vec![current], relu.clone(), None));
            current = relu;
        }
        if list_weights_as_inputs {
            for tensor in [&weight, &bias] {
                let dims = tensor.dims.iter().map(|&d| DimValue::Value(d)).collect();
                tail.input.push(value_info(&tensor.name, dims));
            }
        }
        tail.initializer.extend([weight, bias]);
    }
    let classes = layers[layers.len() - 1].weight.ncols() as i64;
    let (op, name, axis) = match chain.activation {
        Activation::Softmax => ("Softmax", format!("{prefix}/softmax"), Some(1)),
        Activation::Sigmoid => ("Sigmoid", format!("{prefix}/sigmoid"), None),
    };
    tail.node
        .push(node(op, name, vec![current], probabilities.to_string(), axis));
    tail.output
        .push(value_info(probabilities, vec![batch, DimValue::Value(classes)]));
    tail
}

fn value_info(name: &str, dims: Vec<DimValue>) -> ValueInfo {
    let dim = dims.into_iter().map(|d| Dimension { value: Some(d) }).collect();
    ValueInfo {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: FLOAT,
                shape: Some(Shape { dim }),
            }),
        }),
    }
}

/// One field of a serialized message: its number, its bytes as they stand (key included), and
/// for a length-delimited field its payload.
struct Field<'a> {
    number: u32,
    raw: &'a [u8],
    payload: &'a [u8],
}

fn fields(message: &[u8]) -> Result<Vec<Field<'_>>, SpliceError> {
    let mut rest = message;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let start = rest;
        let key = varint(&mut rest)?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| malformed(format!("invalid field key {key}")))?;
        let payload = match key & 7 {
            0 => varint(&mut rest).map(|_| &rest[..0])?,
            1 => take(&mut rest, 8)?,
            2 => {
                let len = varint(&mut rest)?;
                take(&mut rest, usize::try_from(len).unwrap_or(usize::MAX))?
            }
            5 => take(&mut rest, 4)?,
            wire => {
                return Err(malformed(format!(
                    "field {number} has wire type {wire}, which ONNX never uses"
                )))
            }
        };
        out.push(Field {
            number,
            raw: &start[..start.len() - rest.len()],
            payload,
        });
    }
    Ok(out)
}

fn varint(buf: &mut &[u8]) -> Result<u64, SpliceError> {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| malformed("message ends inside a number"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("a number runs past 10 bytes"))
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], SpliceError> {
    if len > buf.len() {
        return Err(malformed("a field runs past the end of its message"));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

// The ONNX messages below name only the fields read or written here; prost skips the rest when
// decoding, which is why they are only ever used to read, never to re-encode the backbone.

/// `ModelProto`, for the IR version and operator sets.
#[derive(Clone, PartialEq, Message)]
struct ModelHeader {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetId>,
}

/// `ModelProto` holding only metadata entries, encoded after the copied fields.
#[derive(Clone, PartialEq, Message)]
struct ModelMetadata {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntry>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetId {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// `GraphProto` as read: names, declared types, and where initializers keep their data.
#[derive(Clone, PartialEq, Message)]
struct Graph {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<InitializerName>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "13")]
    value_info: Vec<ValueInfo>,
}

/// `GraphProto` fields appended to the copied graph: the head.
#[derive(Clone, PartialEq, Message)]
struct GraphTail {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, optional, tag = "2")]
    f: Option<f32>,
    /// Optional so that a zero is still written: ONNX reads a missing value as no value.
    #[prost(int64, optional, tag = "3")]
    i: Option<i64>,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    g: Option<Graph>,
    #[prost(float, repeated, tag = "7")]
    floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<Graph>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

/// `TensorProto` as read: the weights themselves are skipped.
#[derive(Clone, PartialEq, Message)]
struct InitializerName {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

/// `TensorProto` as written (little-endian floats in `raw_data`, as ONNX prescribes) and as the
/// fine-tuning trainer reads weights ([`subgraph`]), which other writers may keep in
/// `float_data`.
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfo {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorType>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorType {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<Shape>,
}

#[derive(Clone, PartialEq, Message)]
struct Shape {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(oneof = "DimValue", tags = "1, 2")]
    value: Option<DimValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum DimValue {
    #[prost(int64, tag = "1")]
    Value(i64),
    #[prost(string, tag = "2")]
    Param(String),
}

#[cfg(test)]
mod tests;
