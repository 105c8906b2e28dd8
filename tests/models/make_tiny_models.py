"""Make the tiny ONNX backbones that the Rust integration tests run.

Why: the tests need real ONNX files that exercise the shapes the tool meets in the wild
(a [N,C,1,1] pooled output to flatten, an NHWC input with the batch fixed at 1, a full
classifier whose feature output is not the first one), yet they must be a few KB, load in
milliseconds and need no download. The weights come from a fixed seed and the serialisation
is deterministic, so rerunning this script reproduces the committed files byte for byte
(the sha256 in each .json beside them checks that).

Run from the repository root (needs only numpy and onnx; onnxruntime for the final check):

    python tests/models/make_tiny_models.py

It rewrites tests/models/tiny_*.onnx and tiny_*.json, then runs each model once with
onnxruntime, if installed, and prints the output shapes.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 20240601
SIDE = 32
# Old enough for any onnxruntime the ort crate may load, new enough for GlobalAveragePool,
# Softmax(axis=1) and Flatten as used here.
OPSET = 17
IR_VERSION = 8


def conv_body(rng, x, prefix):
    """Conv 3x3/2 (8) + Relu + Conv 1x1 (16) + GlobalAveragePool on an NCHW tensor `x`.

    Returns the nodes, the initializers and the name of the [N,16,1,1] result.
    """
    # Scaled so the activations stay near unit size for inputs in [-1, 1]; with unscaled
    # weights the Relu would either pass everything or nothing and the tests would compare
    # near-constant embeddings.
    w1 = (rng.standard_normal((8, 3, 3, 3)) / np.sqrt(27)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(8)).astype(np.float32)
    w2 = (rng.standard_normal((16, 8, 1, 1)) / np.sqrt(8)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(16)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, f"{prefix}conv1.weight"),
        numpy_helper.from_array(b1, f"{prefix}conv1.bias"),
        numpy_helper.from_array(w2, f"{prefix}conv2.weight"),
        numpy_helper.from_array(b2, f"{prefix}conv2.bias"),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            [x, f"{prefix}conv1.weight", f"{prefix}conv1.bias"],
            [f"{prefix}conv1"],
            name=f"{prefix}conv1",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", [f"{prefix}conv1"], [f"{prefix}relu1"], name=f"{prefix}relu1"),
        helper.make_node(
            "Conv",
            [f"{prefix}relu1", f"{prefix}conv2.weight", f"{prefix}conv2.bias"],
            [f"{prefix}conv2"],
            name=f"{prefix}conv2",
            kernel_shape=[1, 1],
        ),
        helper.make_node("GlobalAveragePool", [f"{prefix}conv2"], [f"{prefix}gap"], name=f"{prefix}gap"),
    ]
    return nodes, inits, f"{prefix}gap"


def finish(graph):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="headstart/tests/models/make_tiny_models.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tiny_nchw(rng):
    """Dynamic batch, NCHW, output left as [N,16,1,1] so the tool must flatten it."""
    nodes, inits, gap = conv_body(rng, "pixels", "")
    nodes.append(helper.make_node("Identity", [gap], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        nodes,
        "tiny_nchw",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 16, 1, 1])],
        inits,
    )
    return finish(graph)


def tiny_nhwc_b1(rng):
    """NHWC input with the batch fixed at 1, as TF-Lite and Keras conversions often come."""
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2])]
    body, inits, gap = conv_body(rng, "nchw", "")
    nodes += body
    nodes.append(helper.make_node("Flatten", [gap], ["features"], name="features", axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny_nhwc_b1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, SIDE, SIDE, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 16])],
        inits,
    )
    return finish(graph)


def tiny_classifier(rng):
    """A full classifier: `probs` is deliberately the FIRST output, so a tool that takes the
    first output by default gets class probabilities, and only naming `pooled` gives features."""
    nodes, inits, gap = conv_body(rng, "input", "")
    nodes.append(helper.make_node("Flatten", [gap], ["pooled"], name="pooled", axis=1))
    w = (rng.standard_normal((16, 5)) / 4).astype(np.float32)
    b = (0.1 * rng.standard_normal(5)).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(b, "fc.bias")]
    nodes += [
        helper.make_node("Gemm", ["pooled", "fc.weight", "fc.bias"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="probs", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 16]),
        ],
        inits,
    )
    return finish(graph)


def tiny_nan(rng):
    """Square roots of the channel means: NaN for any image darker than mid-grey in a channel
    (inputs in [-1, 1]), finite for bright ones. The tests use it to check that NaN vectors are
    refused per image, not cached."""
    del rng
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["means"], name="means"),
        helper.make_node("Flatten", ["means"], ["flat"], name="flat", axis=1),
        helper.make_node("Sqrt", ["flat"], ["features"], name="features"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_nan",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        [],
    )
    return finish(graph)


def tiny_rank2(rng):
    """A valid ONNX model that is not an image model: its input is [N, 3072], not an image
    tensor, so the tool must refuse it with a clear error."""
    w = (rng.standard_normal((SIDE * SIDE * 3, 4)) / 50).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["flat_pixels", "w"], ["features"], name="features")],
        "tiny_rank2",
        [helper.make_tensor_value_info("flat_pixels", TensorProto.FLOAT, ["N", SIDE * SIDE * 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(w, "w")],
    )
    return finish(graph)


def tiny_no_input(rng):
    """No graph input at all: a constant "feature" vector. Not a backbone; the tool must say so
    rather than index a missing input."""
    value = numpy_helper.from_array(rng.standard_normal((1, 4)).astype(np.float32), "value")
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["features"], name="features", value=value)],
        "tiny_no_input",
        [],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4])],
    )
    return finish(graph)


def tiny_no_output(rng):
    """An image input and no graph output; the ONNX checker refuses such a graph, so it is
    written unchecked, as a broken converter might."""
    nodes, inits, _ = conv_body(rng, "pixels", "")
    graph = helper.make_graph(
        nodes,
        "tiny_no_output",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="headstart/tests/models/make_tiny_models.py", producer_version="1")
    model.ir_version = IR_VERSION
    return model


def tiny_int_output(rng):
    """Its only output is the index of the strongest channel, an int64 tensor, not features."""
    nodes, inits, gap = conv_body(rng, "pixels", "")
    nodes += [
        helper.make_node("Flatten", [gap], ["flat"], name="flat", axis=1),
        helper.make_node("ArgMax", ["flat"], ["class"], name="class", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_int_output",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("class", TensorProto.INT64, ["N"])],
        inits,
    )
    return finish(graph)


def tiny_finetune(rng):
    """A backbone with a cut to fine-tune after: Conv 3x3/2 (8) + Relu gives `cut`
    [N,8,16,16]; then every op the fine-tuning trainer implements: Conv 1x1 (16) + Clip(0, 6),
    depthwise Conv 3x3 + Relu, Conv 1x1 (8) + Add(cut) (a residual block), BatchNormalization,
    dense Conv 3x3 (8) + Relu, GlobalAveragePool, Flatten to `features` [N,8]."""

    def weight(shape, fan_in, name):
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)

    def bias(n, name):
        return numpy_helper.from_array((0.1 * rng.standard_normal(n)).astype(np.float32), name)

    inits = [
        weight((8, 3, 3, 3), 27, "stem.w"),
        bias(8, "stem.b"),
        weight((16, 8, 1, 1), 8, "expand.w"),
        bias(16, "expand.b"),
        weight((16, 1, 3, 3), 9, "dw.w"),
        bias(16, "dw.b"),
        weight((8, 16, 1, 1), 16, "project.w"),
        numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
        numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"),
        numpy_helper.from_array((1 + 0.2 * rng.standard_normal(8)).astype(np.float32), "bn.scale"),
        bias(8, "bn.shift"),
        bias(8, "bn.mean"),
        numpy_helper.from_array((1 + 0.3 * rng.uniform(size=8)).astype(np.float32), "bn.var"),
        weight((8, 8, 3, 3), 72, "conv.w"),
        bias(8, "conv.b"),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["pixels", "stem.w", "stem.b"], ["stem"], name="stem", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("Relu", ["stem"], ["cut"], name="stem_relu"),
        node("Conv", ["cut", "expand.w", "expand.b"], ["expand"], name="expand", kernel_shape=[1, 1]),
        node("Clip", ["expand", "relu6_min", "relu6_max"], ["expand_relu6"], name="expand_relu6"),
        node("Conv", ["expand_relu6", "dw.w", "dw.b"], ["dw"], name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        node("Relu", ["dw"], ["dw_relu"], name="dw_relu"),
        node("Conv", ["dw_relu", "project.w"], ["project"], name="project", kernel_shape=[1, 1]),
        node("Add", ["project", "cut"], ["block"], name="residual"),
        node("BatchNormalization", ["block", "bn.scale", "bn.shift", "bn.mean", "bn.var"], ["bn"], name="bn", epsilon=1e-3),
        node("Conv", ["bn", "conv.w", "conv.b"], ["conv"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["conv"], ["conv_relu"], name="conv_relu"),
        node("GlobalAveragePool", ["conv_relu"], ["gap"], name="gap"),
        node("Flatten", ["gap"], ["features"], name="features", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_finetune",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    return finish(graph)


def tiny_shared_bias(rng):
    """One bias initializer shared by a layer before the cut and one after it, each reading it
    through its own Identity node, as torch.onnx exports a randomly initialised ResNet-50 (its
    equal zero biases folded into one): Conv 3x3/2 (8) + Relu gives `cut` [N,8,16,16], then
    Conv 1x1 (8) + Relu, GlobalAveragePool, Flatten to `features` [N,8]."""
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / np.sqrt(27)).astype(np.float32), "stem.w"),
        numpy_helper.from_array((0.1 * rng.standard_normal(8)).astype(np.float32), "shared.b"),
        numpy_helper.from_array((rng.standard_normal((8, 8, 1, 1)) / np.sqrt(8)).astype(np.float32), "conv.w"),
    ]
    node = helper.make_node
    nodes = [
        node("Identity", ["shared.b"], ["stem.b"], name="stem_bias"),
        node("Identity", ["shared.b"], ["conv.b"], name="conv_bias"),
        node("Conv", ["pixels", "stem.w", "stem.b"], ["stem"], name="stem", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("Relu", ["stem"], ["cut"], name="stem_relu"),
        node("Conv", ["cut", "conv.w", "conv.b"], ["conv"], name="conv", kernel_shape=[1, 1]),
        node("Relu", ["conv"], ["conv_relu"], name="conv_relu"),
        node("GlobalAveragePool", ["conv_relu"], ["gap"], name="gap"),
        node("Flatten", ["gap"], ["features"], name="features", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_shared_bias",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    return finish(graph)


# Named cuts, as the bundled backbones' descriptions give them.
CUTS = {"tiny_finetune": {"block": "cut"}, "tiny_shared_bias": {"block": "cut"}}


def write(model, name, output, dim):
    data = model.SerializeToString(deterministic=True)
    path = HERE / f"{name}.onnx"
    path.write_bytes(data)
    description = {
        "name": name,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "preset": "inception",
        "input_size": SIDE,
        "resize": SIDE,
        "output": output,
        "output_dim": dim,
    }
    if name in CUTS:
        description["cuts"] = CUTS[name]
    (HERE / f"{name}.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"{path.name}: {len(data)} bytes, sha256 {description['sha256']}")


def check(names):
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipping the run check")
        return
    rng = np.random.default_rng(0)
    for name in names:
        session = ort.InferenceSession(str(HERE / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        batch = inp.shape[0] if isinstance(inp.shape[0], int) else 2
        shape = [batch] + list(inp.shape[1:])
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        outputs = session.run(None, {inp.name: x})
        shapes = ", ".join(
            f"{o.name} {list(v.shape)}" for o, v in zip(session.get_outputs(), outputs)
        )
        print(f"{name}: {inp.name} {shape} -> {shapes}")


def main():
    # One generator per model, so changing one model leaves the others' bytes alone.
    makers = [
        ("tiny_nchw", tiny_nchw, "embedding", 16),
        ("tiny_nhwc_b1", tiny_nhwc_b1, "features", 16),
        ("tiny_classifier", tiny_classifier, "pooled", 16),
        ("tiny_nan", tiny_nan, "features", 3),
        ("tiny_rank2", tiny_rank2, "features", 4),
    ]
    # Appended after the others, so their generators (seeded by position) stay the same.
    late = [("tiny_finetune", tiny_finetune, "features", 8), ("tiny_shared_bias", tiny_shared_bias, "features", 8)]
    # Models the tool must refuse with a clear error; they are not run here.
    broken = [
        ("tiny_no_input", tiny_no_input, "features", 4),
        ("tiny_no_output", tiny_no_output, None, None),
        ("tiny_int_output", tiny_int_output, None, None),
    ]
    for i, (name, make, output, dim) in enumerate(makers + broken + late):
        write(make(np.random.default_rng([SEED, i])), name, output, dim)
    check([name for name, _, _, _ in makers + late])


if __name__ == "__main__":
    main()
