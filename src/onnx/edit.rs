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
pub fn apply(model: &[u8], edit: &ModelEdit) -> Result<Vec<u8>, SpliceError> {
    let model_fields = fields(model)?;
    let graph_bytes = joined_graph(&model_fields)?;
    let graph = super::Graph::decode(&*graph_bytes).map_err(malformed)?;
    let existing: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();

    let mut graph_out = Vec::with_capacity(graph_bytes.len() + 64);
    let mut replaced = HashSet::new();
    for field in fields(&graph_bytes)? {
        if field.number == GRAPH_INITIALIZER && !edit.weights.is_empty() {
            let tensor = InitializerName::decode(field.payload).map_err(malformed)?;
            if let Some(values) = edit.weights.get(&tensor.name) {
                let count: i64 = tensor.dims.iter().product();
                if tensor.data_type != FLOAT || usize::try_from(count) != Ok(values.len()) {
                    return Err(SpliceError::Layer {
                        layer: 0,
                        problem: format!(
                            "weight `{}` of the backbone is {:?} of element type {}, but {} float values were given for it: the fine-tuned weights do not belong to this backbone",
                            tensor.name,
                            tensor.dims,
                            tensor.data_type,
                            values.len()
                        ),
                    });
                }
                let mut tail = GraphTail::default();
                tail.initializer.push(TensorProto {
                    dims: tensor.dims.clone(),
                    data_type: FLOAT,
                    name: tensor.name.clone(),
                    raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..TensorProto::default()
                });
                tail.encode(&mut graph_out).expect("a Vec grows as needed");
                replaced.insert(tensor.name);
                continue;
            }
        }
        graph_out.extend_from_slice(field.raw);
    }
    if let Some(missing) = edit.weights.keys().find(|name| !replaced.contains(*name)) {
        return Err(SpliceError::Layer {
            layer: 0,
            problem: format!(
                "the backbone has no weight `{missing}`: the fine-tuned weights belong to another backbone"
            ),
        });
    }
    let mut tail = GraphTail::default();
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

#[cfg(test)]
mod tests {
    use super::*;

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
