//! The part of a backbone after a cut: the nodes that turn the tensor at the cut into the
//! feature output, with their attributes and float weights, for the fine-tuning trainer
//! ([`crate::finetune`]) to rebuild as trainable layers.

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::{fields, joined_graph, malformed, NodeProto, SpliceError, TensorProto, ValueInfo, DATA_EXTERNAL, FLOAT};

/// One node of the part after the cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name, or `#i` (its position in the graph) when it has none.
    pub name: String,
    /// Its operator, e.g. `Conv`.
    pub op: String,
    /// Input tensor names; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    /// Output tensor names.
    pub outputs: Vec<String>,
    /// Integer and integer-list attributes, by name.
    pub ints: HashMap<String, Vec<i64>>,
    /// Float and float-list attributes, by name.
    pub floats: HashMap<String, Vec<f32>>,
}

/// A float weight of the graph: an initializer or a `Constant` node's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// Its shape.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// The nodes from a cut to the feature output, in an order that computes every input before
/// it is used, and the float weights they read.
#[derive(Debug, Clone)]
pub struct Subgraph {
    /// The nodes, in graph order.
    pub nodes: Vec<Node>,
    /// Float weights by name. Non-float weights (a `Reshape`'s shape) are listed in
    /// `constants` only.
    pub weights: HashMap<String, Weight>,
    /// Names of every weight, float or not.
    pub constants: HashSet<String>,
}

/// Why the part after a cut could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The model could not be read.
    #[error(transparent)]
    Model(#[from] SpliceError),
    /// No node produces the tensor, and no graph input has its name.
    #[error("the backbone has no tensor `{0}`: give a named cut or the name of a tensor a node produces (list them with `python3 -c \"import onnx, sys; [print(o) for n in onnx.load(sys.argv[1]).graph.node for o in n.output]\" MODEL.onnx`)")]
    NotFound(String),
    /// The features do not depend on the cut.
    #[error("the feature output `{output}` does not depend on tensor `{cut}`: cut at a tensor before it")]
    NotBefore {
        /// The cut.
        cut: String,
        /// The feature output.
        output: String,
    },
    /// A node after the cut also reads a tensor computed before it.
    #[error("node `{node}` after the cut at `{cut}` also reads `{tensor}`, computed before the cut, so the cut does not separate the network: cut at a tensor that every later node reaches through")]
    NotSeparating {
        /// The cut.
        cut: String,
        /// The node.
        node: String,
        /// The tensor computed before the cut.
        tensor: String,
    },
    /// A weight keeps its data in an external file.
    #[error("weight `{0}` keeps its data in an external file: load the model with onnx and save it with save_as_external_data=False")]
    External(String),
}

/// The nodes of `model` that lead from tensor `cut` to tensor `output`.
pub fn after_cut(model: &[u8], cut: &str, output: &str) -> Result<Subgraph, CutError> {
    let model_fields = fields(model)?;
    let graph = FullGraph::decode(&*joined_graph(&model_fields)?).map_err(malformed)?;

    let mut weights = HashMap::new();
    let mut constants = HashSet::new();
    for tensor in &graph.initializer {
        constants.insert(tensor.name.clone());
        if let Some(weight) = tensor.float_weight()? {
            weights.insert(tensor.name.clone(), weight);
        }
    }
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref());
        for name in &node.output {
            constants.insert(name.clone());
            if let Some(weight) = value.map(TensorProto::float_weight).transpose()?.flatten() {
                weights.insert(name.clone(), weight);
            }
        }
    }

    // Exporters that fold equal initializers into one (torch.onnx does, for the zero biases of
    // a randomly initialised ResNet-50) hand it to each node through an Identity node: such an
    // alias is read as the weight itself. Nodes come in computing order, so chains resolve.
    for (source, alias) in identity_aliases(&graph.node, &constants) {
        constants.insert(alias.clone());
        if let Some(weight) = weights.get(&source).cloned() {
            weights.insert(alias, weight);
        }
    }

    let produced = graph.node.iter().flat_map(|n| &n.output).any(|o| o == cut);
    if !produced && !graph.input.iter().any(|i| i.name == cut) {
        return Err(CutError::NotFound(cut.to_string()));
    }
    let mut live: HashSet<&str> = HashSet::from([cut]);
    let mut nodes = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type == "Constant" || !node.input.iter().any(|t| live.contains(t.as_str())) {
            continue;
        }
        let name = if node.name.is_empty() {
            format!("#{i}")
        } else {
            node.name.clone()
        };
        if let Some(tensor) = node
            .input
            .iter()
            .find(|t| !t.is_empty() && !live.contains(t.as_str()) && !constants.contains(t.as_str()))
        {
            return Err(CutError::NotSeparating {
                cut: cut.to_string(),
                node: name,
                tensor: tensor.clone(),
            });
        }
        live.extend(node.output.iter().map(String::as_str));
        nodes.push(read_node(node, name));
    }
    if !live.contains(output) {
        return Err(CutError::NotBefore {
            cut: cut.to_string(),
            output: output.to_string(),
        });
    }
    // Only what the features need: a branch after the cut that leads elsewhere is dropped.
    let mut needed: HashSet<String> = HashSet::from([output.to_string()]);
    let mut kept: Vec<Node> = Vec::new();
    for node in nodes.into_iter().rev() {
        if node.outputs.iter().any(|o| needed.contains(o)) {
            needed.extend(node.inputs.iter().cloned());
            kept.push(node);
        }
    }
    kept.reverse();
    weights.retain(|name, _| needed.contains(name));
    Ok(Subgraph {
        nodes: kept,
        weights,
        constants,
    })
}

/// `(source, alias)` for every Identity node that passes on a weight: an initializer or
/// `Constant` among `constants`, or the alias of one, in node order.
pub(super) fn identity_aliases(nodes: &[NodeProto], constants: &HashSet<String>) -> Vec<(String, String)> {
    let mut known: HashSet<&str> = constants.iter().map(String::as_str).collect();
    let mut aliases = Vec::new();
    for node in nodes.iter().filter(|n| n.op_type == "Identity") {
        if let ([source], [alias]) = (node.input.as_slice(), node.output.as_slice()) {
            if known.contains(source.as_str()) {
                known.insert(alias);
                aliases.push((source.clone(), alias.clone()));
            }
        }
    }
    aliases
}

/// `GraphProto` with what the trainer reads: nodes with their attributes, and weights.

#[derive(Clone, PartialEq, Message)]
struct FullGraph {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
}

/// A node's attributes read into [`Node`]'s maps.
fn read_node(node: &NodeProto, name: String) -> Node {
    let mut ints = HashMap::new();
    let mut floats = HashMap::new();
    for a in &node.attribute {
        if let Some(i) = a.i {
            ints.insert(a.name.clone(), vec![i]);
        } else if !a.ints.is_empty() {
            ints.insert(a.name.clone(), a.ints.clone());
        }
        if let Some(f) = a.f {
            floats.insert(a.name.clone(), vec![f]);
        } else if !a.floats.is_empty() {
            floats.insert(a.name.clone(), a.floats.clone());
        }
    }
    Node {
        name,
        op: node.op_type.clone(),
        inputs: node.input.clone(),
        outputs: node.output.clone(),
        ints,
        floats,
    }
}

impl TensorProto {
    /// The values of a float tensor; `None` for other element types.
    fn float_weight(&self) -> Result<Option<Weight>, CutError> {
        if self.data_location == DATA_EXTERNAL {
            return Err(CutError::External(self.name.clone()));
        }
        if self.data_type != FLOAT {
            return Ok(None);
        }
        let values = if self.raw_data.is_empty() {
            self.float_data.clone()
        } else {
            self.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let dims: Vec<usize> = self.dims.iter().map(|&d| d.max(0) as usize).collect();
        if dims.iter().product::<usize>() != values.len() {
            return Err(SpliceError::Malformed(format!(
                "weight `{}` has shape {dims:?} but {} values",
                self.name,
                values.len()
            ))
            .into());
        }
        Ok(Some(Weight { dims, values }))
    }
}
