//! Small edits of a backbone that keep everything else byte for byte (see the module docs of
//! [`crate::onnx`] for why at the wire level): extra graph outputs, so that ONNX Runtime also
//! returns a feature map inside the network (`extract --cut`), and weights replaced by trained
//! ones, so that a fine-tuned backbone is again one ONNX file (`export`, `predict`).

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::{
    fields, joined_graph, malformed, value_info, with_graph, GraphTail, InitializerName, SpliceError, TensorProto,
    FLOAT,
};

const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;

/// What to change in a model.
#[derive(Debug, Clone, Default)]
pub struct ModelEdit {
    /// Tensors to add to the graph's outputs, as float32 of undeclared shape.
    pub outputs: Vec<String>,
    /// Initializers to replace, by name: the new values, row-major, with the same shape.
    pub weights: HashMap<String, Vec<f32>>,
}

/// `model` with `edit` applied. An output that already is one is left as it is; a weight that
/// is not an initializer of the graph, or whose value count differs, is an error.
///
/// A weight that a node reads through an Identity alias of an initializer (see
/// [`super::subgraph::after_cut`]) becomes an initializer of its own under the alias's name,
/// and the Identity node goes: the initializer may be shared with layers that were not
/// trained, which must keep its values.
pub fn apply(model: &[u8], edit: &ModelEdit) -> Result<Vec<u8>, SpliceError> {
    let model_fields = fields(model)?;
    let graph_bytes = joined_graph(&model_fields)?;
    let graph = super::Graph::decode(&*graph_bytes).map_err(malformed)?;
    let existing: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let initializers: HashMap<&str, &InitializerName> =
        graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let names: HashSet<String> = initializers.keys().map(|n| n.to_string()).collect();
    let mut root_of: HashMap<String, String> = HashMap::new();
    for (source, alias) in super::subgraph::identity_aliases(&graph.node, &names) {
        let root = root_of.get(&source).cloned().unwrap_or(source);
        root_of.insert(alias, root);
    }
    let split: HashMap<&str, &InitializerName> = edit
        .weights
        .keys()
        .filter(|name| !initializers.contains_key(name.as_str()))
        .filter_map(|name| Some((name.as_str(), *initializers.get(root_of.get(name)?.as_str())?)))
        .collect();

    let mut graph_out = Vec::with_capacity(graph_bytes.len() + 64);
    let mut replaced = HashSet::new();
    for field in fields(&graph_bytes)? {
        if field.number == GRAPH_NODE && !split.is_empty() {
            let node = super::NodeProto::decode(field.payload).map_err(malformed)?;
            let aliased = node.op_type == "Identity" && node.output.iter().any(|o| split.contains_key(o.as_str()));
            if aliased {
                continue;
            }
        }
        if field.number == GRAPH_INITIALIZER && !edit.weights.is_empty() {
            let tensor = InitializerName::decode(field.payload).map_err(malformed)?;
            if let Some(values) = edit.weights.get(&tensor.name) {
                let mut tail = GraphTail::default();
                tail.initializer.push(trained(&tensor, &tensor.name, values)?);
                tail.encode(&mut graph_out).expect("a Vec grows as needed");
                replaced.insert(tensor.name);
                continue;
            }
        }
        graph_out.extend_from_slice(field.raw);
    }
    let mut tail = GraphTail::default();
    for (alias, source) in &split {
        tail.initializer.push(trained(source, alias, &edit.weights[*alias])?);
        replaced.insert(alias.to_string());
    }
    if let Some(missing) = edit.weights.keys().find(|name| !replaced.contains(*name)) {
        return Err(SpliceError::Layer {
            layer: 0,
            problem: format!(
                "the backbone has no weight `{missing}`: the fine-tuned weights belong to another backbone"
            ),
        });
    }
    for name in edit.outputs.iter().filter(|name| !existing.contains(name.as_str())) {
        super::find_feature(&graph, name)?;
        let mut info = value_info(name, Vec::new());
        if let Some(tensor) = info.r#type.as_mut().and_then(|t| t.tensor_type.as_mut()) {
            tensor.shape = None;
        }
        tail.output.push(info);
    }
    tail.encode(&mut graph_out).expect("a Vec grows as needed");
    with_graph(&model_fields, &graph_out, &HashSet::new())
}

/// The initializer `name` with `values`, in the shape of `like` (itself, or the initializer an
/// alias passes on), which must be float and hold as many values.
fn trained(like: &InitializerName, name: &str, values: &[f32]) -> Result<TensorProto, SpliceError> {
    let count: i64 = like.dims.iter().product();
    if like.data_type != FLOAT || usize::try_from(count) != Ok(values.len()) {
        return Err(SpliceError::Layer {
            layer: 0,
            problem: format!(
                "weight `{name}` of the backbone is {:?} of element type {}, but {} float values were given for it: the fine-tuned weights do not belong to this backbone",
                like.dims,
                like.data_type,
                values.len()
            ),
        });
    }
    Ok(TensorProto {
        dims: like.dims.clone(),
        data_type: FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::subgraph::after_cut;

    /// `tiny_shared_bias`: `shared.b` reaches the stem (before the cut) as `stem.b` and the
    /// conv after it as `conv.b`, each through an Identity node.
    #[test]
    fn a_weight_read_through_an_identity_alias_becomes_its_own_initializer() {
        let model = std::fs::read("tests/models/tiny_shared_bias.onnx").unwrap();
        let bias = |model: &[u8], cut: &str, output: &str, name: &str| {
            after_cut(model, cut, output).unwrap().weights[name].values.clone()
        };
        let shared = bias(&model, "cut", "features", "conv.b");
        assert_eq!(bias(&model, "pixels", "stem", "stem.b"), shared);
        let trained: Vec<f32> = shared.iter().map(|v| v + 1.0).collect();
        let edit = ModelEdit {
            weights: HashMap::from([("conv.b".to_string(), trained.clone())]),
            ..Default::default()
        };
        let edited = apply(&model, &edit).unwrap();
        assert_eq!(bias(&edited, "cut", "features", "conv.b"), trained);
        // The layer before the cut keeps the shared values.
        assert_eq!(bias(&edited, "pixels", "stem", "stem.b"), shared);
        let graph = crate::onnx::Graph::decode(&*joined_graph(&fields(&edited).unwrap()).unwrap()).unwrap();
        let producers = graph
            .node
            .iter()
            .filter(|n| n.output.iter().any(|o| o == "conv.b"))
            .count();
        assert_eq!(producers, 0, "the Identity node that made `conv.b` is gone");
        assert!(graph.initializer.iter().any(|t| t.name == "conv.b"));
        assert!(graph.node.iter().any(|n| n.name == "stem_bias"));
    }

    #[test]
    fn unknown_weights_and_outputs_are_named() {
        let model = std::fs::read("models/efficientnet_lite0.onnx").unwrap();
        let edit = ModelEdit {
            outputs: vec!["no such tensor".into()],
            ..Default::default()
        };
        let err = apply(&model, &edit).unwrap_err().to_string();
        assert!(err.contains("no such tensor"), "{err}");
        let edit = ModelEdit {
            weights: HashMap::from([("no such weight".to_string(), vec![1.0])]),
            ..Default::default()
        };
        let err = apply(&model, &edit).unwrap_err().to_string();
        assert!(err.contains("no such weight"), "{err}");
    }
}
