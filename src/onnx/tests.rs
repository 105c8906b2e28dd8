//! A tiny backbone is built here rather than shipped: image [batch, 3, 2, 2] → Relu (`act`,
//! undeclared) → GlobalAveragePool (`pooled`, [N, 3, 1, 1]) → Flatten (`features`, [N, 3])
//! → Gemm (`logits`, [N, 2]), so that every kind of feature tensor is there and the expected
//! probabilities are easy to work out by hand. Running exported models through ONNX Runtime,
//! from Rust and from Python, is tested end to end in `tests/classify.rs`.

use super::*;
use ndarray::{Array1, Array2};

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetId>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntry>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "13")]
    value_info: Vec<ValueInfo>,
}

/// A `ModelProto` carrying only graph initializers given as name and data location.
#[derive(Clone, PartialEq, Message)]
struct ModelWithInitializers {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphInitializers>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphInitializers {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<InitializerName>,
}

fn param(name: &str) -> DimValue {
    DimValue::Param(name.to_string())
}

fn tensor(name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        name: name.to_string(),
        raw_data: values.flat_map(f32::to_le_bytes).collect(),
        ..Default::default()
    }
}

fn node(op: &str, input: &[&str], output: &str, axis: Option<i64>) -> NodeProto {
    let axis = axis.map(|i| AttributeProto {
        name: "axis".to_string(),
        r#type: ATTRIBUTE_INT,
        i: Some(i),
        ..Default::default()
    });
    NodeProto {
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: format!("{op}_{output}"),
        op_type: op.to_string(),
        attribute: axis.into_iter().collect(),
    }
}

/// Weights that differ from layer to layer and within a layer, positive and negative.
fn layer(inputs: usize, outputs: usize, relu: bool) -> DenseLayer {
    let seed = (inputs * 31 + outputs) as f32;
    DenseLayer {
        weight: Array2::from_shape_fn((inputs, outputs), |(i, j)| {
            ((i * outputs + j) as f32 * 0.7 + seed).sin()
        }),
        bias: Array1::from_shape_fn(outputs, |j| (j as f32 + seed).cos() * 0.5),
        relu,
    }
}

fn chain(layers: &[DenseLayer]) -> DenseChain {
    DenseChain {
        layers: layers.to_vec(),
        activation: Activation::Softmax,
    }
}

fn head(width: usize) -> Vec<DenseLayer> {
    vec![layer(width, 4, true), layer(4, 3, false)]
}

fn backbone(ir_version: i64, opset: i64) -> ModelProto {
    let classifier = [
        tensor("classifier.weight", &[3, 2], (0..6).map(|i| i as f32 * 0.25 - 0.5)),
        tensor("classifier.bias", &[2], [0.1, -0.1].into_iter()),
    ];
    let mut input = vec![value_info(
        "image",
        vec![
            param("batch"),
            DimValue::Value(3),
            DimValue::Value(2),
            DimValue::Value(2),
        ],
    )];
    if ir_version < 4 {
        input.extend(
            classifier
                .iter()
                .map(|t| value_info(&t.name, t.dims.iter().map(|&d| DimValue::Value(d)).collect())),
        );
    }
    ModelProto {
        ir_version,
        producer_name: "export tests".to_string(),
        graph: Some(GraphProto {
            node: vec![
                node("Relu", &["image"], "act", None),
                node("GlobalAveragePool", &["act"], "pooled", None),
                node("Flatten", &["pooled"], "features", Some(1)),
                node(
                    "Gemm",
                    &["features", "classifier.weight", "classifier.bias"],
                    "logits",
                    None,
                ),
            ],
            name: "tiny".to_string(),
            initializer: classifier.to_vec(),
            input,
            output: vec![
                value_info(
                    "pooled",
                    vec![param("N"), DimValue::Value(3), DimValue::Value(1), DimValue::Value(1)],
                ),
                value_info("features", vec![param("N"), DimValue::Value(3)]),
                value_info("logits", vec![param("N"), DimValue::Value(2)]),
            ],
            value_info: vec![],
        }),
        opset_import: vec![OperatorSetId {
            domain: String::new(),
            version: opset,
        }],
        metadata_props: vec![entry("source", "made in tests"), entry("labels", "old")],
    }
}

fn entry(key: &str, value: &str) -> StringStringEntry {
    StringStringEntry {
        key: key.to_string(),
        value: value.to_string(),
    }
}

fn metadata() -> Vec<(String, String)> {
    vec![
        ("labels".to_string(), "cat\ndog\nfish".to_string()),
        ("preset".to_string(), "imagenet".to_string()),
    ]
}

/// Checks what every composed model must satisfy.
fn check_composed(backbone: &[u8], composed: &[u8], layers: &[DenseLayer], batch: DimValue) {
    let before = ModelProto::decode(backbone).unwrap();
    let after = ModelProto::decode(composed).unwrap();
    let (old, new) = (before.graph.as_ref().unwrap(), after.graph.as_ref().unwrap());

    let classes = layers.last().unwrap().weight.ncols() as i64;
    assert_eq!(
        new.output,
        vec![value_info("probabilities", vec![batch, DimValue::Value(classes)])]
    );
    let mut head_ops = vec!["Flatten"];
    for layer in layers {
        head_ops.push("Gemm");
        if layer.relu {
            head_ops.push("Relu");
        }
    }
    head_ops.push("Softmax");
    let added: Vec<&str> = new.node[old.node.len()..].iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(added, head_ops);
    assert_eq!(new.node[..old.node.len()], old.node[..]);
    assert_eq!(new.initializer[..old.initializer.len()], old.initializer[..]);
    assert_eq!(new.initializer.len(), old.initializer.len() + 2 * layers.len());
    assert_eq!(new.value_info, old.value_info);

    // Byte for byte: the model's other fields, then the graph's fields other than outputs.
    let others = |model| -> Vec<&[u8]> {
        let kept = fields(model)
            .unwrap()
            .into_iter()
            .filter(|f| f.number != MODEL_GRAPH && f.number != MODEL_METADATA);
        kept.map(|f| f.raw).collect()
    };
    assert_eq!(others(composed), others(backbone));
    let graph_payloads = |model| -> Vec<&[u8]> {
        fields(model)
            .unwrap()
            .into_iter()
            .filter(|f| f.number == MODEL_GRAPH)
            .map(|f| f.payload)
            .collect()
    };
    let old_graph = graph_payloads(backbone).concat();
    let kept: Vec<&[u8]> = fields(&old_graph)
        .unwrap()
        .into_iter()
        .filter(|f| f.number != GRAPH_OUTPUT)
        .map(|f| f.raw)
        .collect();
    let new_graph = graph_payloads(composed);
    assert_eq!(new_graph.len(), 1);
    assert!(new_graph[0].starts_with(&kept.concat()));

    let expected_metadata = vec![
        entry("source", "made in tests"),
        entry("labels", "cat\ndog\nfish"),
        entry("preset", "imagenet"),
    ];
    assert_eq!(after.metadata_props, expected_metadata);
}

fn compose_case(model: &ModelProto, feature: &str, width: usize, batch: DimValue) -> Vec<u8> {
    let backbone = model.encode_to_vec();
    let layers = head(width);
    let composed = compose(&backbone, feature, &chain(&layers), "probabilities", &metadata()).unwrap();
    check_composed(&backbone, &composed, &layers, batch);
    composed
}

#[test]
fn composes_on_a_features_output() {
    compose_case(&backbone(8, 13), "features", 3, param("N"));
}

#[test]
fn composes_on_an_nchw_embedding_output() {
    compose_case(&backbone(8, 13), "pooled", 3, param("N"));
}

#[test]
fn composes_on_an_undeclared_intermediate_tensor_with_the_image_batch() {
    compose_case(&backbone(8, 13), "act", 12, param("batch"));
}

#[test]
fn lists_weights_as_inputs_for_ir_version_3() {
    let composed = compose_case(&backbone(3, 9), "features", 3, param("N"));
    let graph = ModelProto::decode(&*composed).unwrap().graph.unwrap();
    let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    assert!(graph.initializer.iter().all(|t| inputs.contains(t.name.as_str())));
}

#[test]
fn keeps_the_batch_size_a_backbone_fixes() {
    let mut model = backbone(8, 13);
    let graph = model.graph.as_mut().unwrap();
    graph.output[1] = value_info("features", vec![DimValue::Value(1), DimValue::Value(3)]);
    let backbone = model.encode_to_vec();
    let layers = head(3);
    let composed = compose(&backbone, "features", &chain(&layers), "probabilities", &metadata()).unwrap();
    check_composed(&backbone, &composed, &layers, DimValue::Value(1));
}

#[test]
fn joins_a_graph_split_over_several_fields() {
    let mut model = backbone(8, 13);
    let initializer = std::mem::take(&mut model.graph.as_mut().unwrap().initializer);
    let second = ModelProto {
        graph: Some(GraphProto {
            initializer,
            ..Default::default()
        }),
        ..Default::default()
    };
    let backbone = [model.encode_to_vec(), second.encode_to_vec()].concat();
    assert_eq!(
        fields(&backbone)
            .unwrap()
            .iter()
            .filter(|f| f.number == MODEL_GRAPH)
            .count(),
        2
    );
    let layers = head(3);
    let composed = compose(&backbone, "features", &chain(&layers), "probabilities", &metadata()).unwrap();
    check_composed(&backbone, &composed, &layers, param("N"));
}

#[test]
fn composes_again_on_an_exported_model_under_a_new_prefix() {
    let first = compose_case(&backbone(8, 13), "features", 3, param("N"));
    let layers = vec![layer(4, 2, false)];
    let again = compose(&first, "headstart/dense0/relu", &chain(&layers), "species", &[]).unwrap();
    let graph = ModelProto::decode(&*again).unwrap().graph.unwrap();
    assert_eq!(
        graph.output.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["species"]
    );
    assert!(graph
        .node
        .iter()
        .rev()
        .take(3)
        .all(|n| n.name.starts_with("headstart_2/")));
    assert_eq!(graph.node.len(), 4 + 5 + 3);
}

#[test]
fn avoids_names_taken_inside_subgraphs() {
    let inner = Graph {
        node: vec![node("Relu", &["x"], "headstart/flatten", None)],
        ..Default::default()
    };
    let attribute = AttributeProto {
        name: "then_branch".to_string(),
        g: Some(inner),
        ..Default::default()
    };
    let mut outer = node("If", &["cond"], "y", None);
    outer.attribute = vec![attribute];
    let graph = Graph {
        node: vec![outer],
        ..Default::default()
    };
    let mut names = Names::default();
    names.collect(&graph).unwrap();
    assert_eq!(names.free_prefix(), "headstart_2");
}

fn compose_err(
    model: &[u8],
    feature: &str,
    layers: &[DenseLayer],
    name: &str,
    metadata: &[(String, String)],
) -> String {
    compose(model, feature, &chain(layers), name, metadata)
        .unwrap_err()
        .to_string()
}

#[test]
fn says_which_outputs_exist_when_the_feature_tensor_does_not() {
    let message = compose_err(
        &backbone(8, 13).encode_to_vec(),
        "embedding",
        &head(3),
        "probabilities",
        &[],
    );
    assert!(
        message.contains("no tensor `embedding` (its outputs: pooled, features, logits)"),
        "{message}"
    );
}

#[test]
fn rejects_a_head_trained_on_another_width() {
    let model = backbone(8, 13).encode_to_vec();
    let message = compose_err(&model, "pooled", &head(5), "probabilities", &[]);
    assert!(
        message.contains("shape [N, 3, 1, 1], 3 values per image, but the head's first layer takes 5"),
        "{message}"
    );
}

#[test]
fn rejects_layers_that_do_not_fit() {
    let model = backbone(8, 13).encode_to_vec();
    let cases = [
        (vec![], "no layers"),
        (
            vec![layer(3, 4, true), layer(5, 3, false)],
            "layer 1: it takes 5 inputs but layer 0 gives 4",
        ),
        (vec![layer(3, 0, false)], "its weight is 3x0"),
    ];
    for (layers, wanted) in cases {
        let message = compose_err(&model, "features", &layers, "probabilities", &[]);
        assert!(message.contains(wanted), "{message}");
    }
    let mut short_bias = head(3);
    short_bias[1].bias = Array1::zeros(2);
    let message = compose_err(&model, "features", &short_bias, "probabilities", &[]);
    assert!(
        message.contains("layer 1: its weight is 4x3 ([in, out]) but its bias has 2 values"),
        "{message}"
    );
    let mut diverged = head(3);
    diverged[0].weight[[1, 1]] = f32::NAN;
    let message = compose_err(&model, "features", &diverged, "probabilities", &[]);
    assert!(message.contains("layer 0: it has NaN or infinite weights"), "{message}");
}

#[test]
fn rejects_feature_tensors_of_the_wrong_type_or_rank() {
    for (declared, wanted) in [
        (
            value_info("act", vec![DimValue::Value(12)]),
            "shape [12]; the head needs a batch axis first",
        ),
        (
            ValueInfo {
                r#type: Some(TypeProto {
                    tensor_type: Some(TensorType {
                        elem_type: 10,
                        shape: None,
                    }),
                }),
                ..value_info("act", vec![])
            },
            "holds float16",
        ),
    ] {
        let mut model = backbone(8, 13);
        model.graph.as_mut().unwrap().value_info.push(declared);
        let message = compose_err(&model.encode_to_vec(), "act", &head(12), "probabilities", &[]);
        assert!(message.contains(wanted), "{message}");
    }
}

#[test]
fn rejects_what_a_single_file_cannot_hold() {
    let model = backbone(8, 13).encode_to_vec();
    let message = compose_err(&model, "features", &head(3), "logits", &[]);
    assert!(message.contains("already has a tensor named `logits`"), "{message}");

    let twice = [metadata(), metadata()].concat();
    let message = compose_err(&model, "features", &head(3), "probabilities", &twice);
    assert!(message.contains("metadata key `labels` is given twice"), "{message}");

    let external = InitializerName {
        name: "big.weight".to_string(),
        data_location: DATA_EXTERNAL,
        ..Default::default()
    };
    let extra = ModelWithInitializers {
        graph: Some(GraphInitializers {
            initializer: vec![external],
        }),
    };
    let message = compose_err(
        &[model, extra.encode_to_vec()].concat(),
        "features",
        &head(3),
        "probabilities",
        &[],
    );
    assert!(
        message.contains("initializer `big.weight` keeps its data in an external file"),
        "{message}"
    );
}

#[test]
fn rejects_models_it_cannot_extend() {
    let message = compose_err(b"not an onnx file", "features", &head(3), "probabilities", &[]);
    assert!(
        message.starts_with("the backbone is not a readable ONNX model"),
        "{message}"
    );

    let message = compose_err(
        &backbone(3, 6).encode_to_vec(),
        "features",
        &head(3),
        "probabilities",
        &[],
    );
    assert!(
        message.contains("imports ONNX opset 6; the head needs opset 7"),
        "{message}"
    );

    let mut custom = backbone(8, 13);
    custom.opset_import[0].domain = "com.example".to_string();
    let message = compose_err(&custom.encode_to_vec(), "features", &head(3), "probabilities", &[]);
    assert!(message.contains("imports no standard ONNX operator set"), "{message}");

    let no_graph = ModelProto {
        graph: None,
        ..backbone(8, 13)
    };
    let message = compose_err(&no_graph.encode_to_vec(), "features", &head(3), "probabilities", &[]);
    assert!(message.contains("has no graph"), "{message}");
}

#[test]
fn scans_every_wire_type() {
    let mut message = vec![0x08, 0x96, 0x01, 0x11];
    message.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    message.extend([0x1a, 0x02, b'h', b'i', 0x25, 9, 8, 7, 6]);
    let scanned = fields(&message).unwrap();
    let numbers: Vec<u32> = scanned.iter().map(|f| f.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(scanned[2].payload, b"hi");
    assert_eq!(scanned.iter().map(|f| f.raw.len()).sum::<usize>(), message.len());
    for truncated in [&message[..2], &message[..6], &message[..15]] {
        assert!(fields(truncated).is_err());
    }
    assert!(fields(&[0x80; 11]).is_err());
}
