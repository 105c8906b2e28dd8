"""Export ResNet-50 (classifier removed, global average pooling) to ONNX for headstart.

Why: ResNet-50 is the project's reference backbone, the one transfer-learning tutorials use,
so headstart's results can be compared with theirs. Its weights are too large to ship and
cannot be fetched everywhere, so users make the ONNX file themselves with this script; the
committed descriptions (models/resnet50.json, models/resnet50_keras.json) then point the tool
at it. Every export has input `input` float32 [N,3,S,S] (NCHW, dynamic batch; S = --input-size,
default 224) and output `features` float32 [N,2048], opset 17.

Run from the repository root, with torch and torchvision installed:

    python models/export_resnet50.py                    # torchvision IMAGENET1K_V2 weights (download)
    python models/export_resnet50.py --weights-file resnet50-11ad3fa6.pth   # the same, from a local file
    python models/export_resnet50.py --keras            # Keras ResNet50 'imagenet' (needs tensorflow + tf2onnx)
    python models/export_resnet50.py --random-weights   # random init, for speed benchmarks only
    python models/export_resnet50.py --random-weights --input-size 256   # the seed's 256 px input
    python models/export_resnet50.py --keep-batch-norm  # batch norm as its own nodes, not folded

The outputs are models/resnet50.onnx (torchvision, preset `torch`), models/resnet50_keras.onnx
(Keras, preset `caffe`: BGR minus the ImageNet means, no scaling) and models/resnet50.random.onnx
(random), with `_256` after `resnet50` for --input-size 256 and `_bn` for --keep-batch-norm, each
with a description .json beside it. An export folds batch norm into the convolutions unless
--keep-batch-norm keeps it (the same features): only then can
`train-head --finetune layer4.2 --batch-norm train` train its statistics. Use it as `headstart ... --model resnet50`.
"""

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

MODELS = Path(__file__).resolve().parent
OPSET = 17
FEATURES = 2048


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def torch_model(args):
    try:
        import torch
        from torchvision.models import ResNet50_Weights, resnet50
    except ImportError:
        fail("this export needs torch and torchvision (pip install torch torchvision)")

    if args.random_weights:
        # Seeded so that two benchmark runs time the same network; the values are meaningless.
        torch.manual_seed(args.seed)
        model = resnet50(weights=None)
    elif args.weights_file:
        model = resnet50(weights=None)
        state = torch.load(args.weights_file, map_location="cpu", weights_only=True)
        # Training checkpoints often wrap the weights; torchvision's own files do not.
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # The classifier is dropped below, so a checkpoint without `fc` (or with another
        # number of classes) is fine; anything else missing means the wrong architecture.
        missing = [k for k in missing if not k.startswith("fc.")]
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
        if missing or unexpected:
            fail(
                f"{args.weights_file} is not a torchvision ResNet-50 state dict "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    else:
        weights = ResNet50_Weights.IMAGENET1K_V2
        try:
            model = resnet50(weights=weights)
        except Exception as error:  # URLError, HTTPError, OSError, SSL errors, ...
            fail(
                f"cannot download the torchvision weights {weights.url} ({error}).\n"
                "Download that file elsewhere and pass it with --weights-file PATH.pth, "
                "or use --random-weights for a speed benchmark (its features are useless)."
            )
    model.fc = torch.nn.Identity()
    return model.eval()


def export_torch(args, path):
    import torch

    torch.set_num_threads(args.threads)
    model = torch_model(args)
    example = torch.randn(2, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(0))
    # The TorchScript exporter writes one self-contained file; the dynamo exporter would need
    # onnxscript and may split the weights into an external-data file. Its deprecation notice is
    # therefore expected noise.
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["features"],
            dynamic_axes={"input": {0: "N"}, "features": {0: "N"}},
            opset_version=OPSET,
            # PRESERVE with the model in eval mode writes BatchNormalization nodes in inference
            # mode; constant folding would fold them into the convolutions again.
            training=torch.onnx.TrainingMode.PRESERVE if args.keep_batch_norm else torch.onnx.TrainingMode.EVAL,
            do_constant_folding=not args.keep_batch_norm,
            dynamo=False,
        )
        expected = model(example).numpy()
    return example.numpy(), expected


def export_keras(args, path):
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        fail(
            "--keras needs tensorflow and tf2onnx (pip install tensorflow tf2onnx); "
            "tf2onnx may need a TensorFlow it supports (or tf_keras for Keras 2)"
        )
    import numpy as np
    import onnx

    if args.random_weights:
        tf.keras.utils.set_random_seed(args.seed)
    weights = None if args.random_weights else (args.weights_file or "imagenet")
    try:
        base = tf.keras.applications.ResNet50(
            weights=weights, include_top=False, pooling="avg", input_shape=(args.input_size, args.input_size, 3)
        )
    except Exception as error:
        fail(
            f"cannot load the Keras ResNet50 weights ({error}).\n"
            "Pass a local resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 with --weights-file, "
            "or use --random-weights for a speed benchmark."
        )

    # Keras is NHWC; the transpose inside the graph keeps every headstart backbone NCHW. The
    # caffe preprocessing (RGB->BGR, minus means) is NOT in the graph: the `caffe` preset does it.
    spec = (tf.TensorSpec((None, 3, args.input_size, args.input_size), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def features(x):
        return base(tf.transpose(x, [0, 2, 3, 1]), training=False)

    proto, _ = tf2onnx.convert.from_function(features, input_signature=spec, opset=OPSET)
    # tf2onnx names tensors after the TF graph (`input:0`, `Identity:0`, ...), which change
    # between versions; the description pins the names, so set them here.
    rename(proto.graph, proto.graph.input[0].name, "input")
    rename(proto.graph, proto.graph.output[0].name, "features")
    onnx.save(proto, str(path))

    example = np.random.default_rng(0).uniform(-120, 150, (2, 3, args.input_size, args.input_size)).astype(np.float32)
    expected = base(np.transpose(example, (0, 2, 3, 1)), training=False).numpy()
    return example, expected


def rename(graph, old, new):
    if old == new:
        return
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def check(path, example, expected, threads):
    """Compare onnxruntime with the framework on the same batch, and check the shapes."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (inp,), outs = session.get_inputs(), session.get_outputs()
    assert inp.name == "input" and outs[0].name == "features", (inp.name, [o.name for o in outs])
    (got,) = session.run(["features"], {"input": example})
    assert got.shape == (example.shape[0], FEATURES), got.shape
    assert np.isfinite(got).all(), "non-finite features"
    # Relative, because random-weight features can be far from unit size.
    error = float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-12))
    print(f"{path.name}: {inp.name} {inp.shape} -> {outs[0].name} {outs[0].shape}; "
          f"max relative difference from the framework {error:.1e}")
    if error > 1e-3:
        fail(f"onnxruntime disagrees with the framework (relative difference {error:.1e})")


def source(args):
    if args.random_weights:
        weights = f"random init (seed {args.seed}), for speed benchmarks only"
    elif args.weights_file:
        weights = f"weights from {Path(args.weights_file).name}"
    elif args.keras:
        weights = "Keras ResNet50 weights='imagenet'"
    else:
        weights = "torchvision ResNet50_Weights.IMAGENET1K_V2"
    return f"{weights}, exported by models/export_resnet50.py"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keras", action="store_true", help="export Keras ResNet50 via tf2onnx (preset caffe)")
    parser.add_argument("--random-weights", action="store_true", help="random init, for speed benchmarks only")
    parser.add_argument("--weights-file", help="local weights: a torchvision .pth, or a Keras .h5 with --keras")
    parser.add_argument("--output", type=Path, help="ONNX file to write (default: models/resnet50[_keras][.random].onnx)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    parser.add_argument(
        "--input-size", type=int, default=224, help="side of the square input (the Keras recipe of the seed uses 256)"
    )
    parser.add_argument("--resize", type=int, help="shorter side before the centre crop (default input size x 256/224)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the export and the check")
    parser.add_argument(
        "--keep-batch-norm",
        action="store_true",
        help="keep batch norm as BatchNormalization nodes (for train-head --batch-norm train), not folded",
    )
    parser.add_argument(
        "--pin-sha256",
        action="store_true",
        help="record the file's sha256 in the description (default null: the bytes depend on library versions)",
    )
    args = parser.parse_args()
    if args.random_weights and args.weights_file:
        parser.error("--random-weights and --weights-file exclude each other")
    if args.keras and args.keep_batch_norm:
        parser.error("--keep-batch-norm applies to the torchvision export only")

    stem = "resnet50_keras" if args.keras else "resnet50"
    if args.input_size != 224:
        stem += f"_{args.input_size}"
    if args.keep_batch_norm:
        stem += "_bn"
    if args.random_weights:
        stem += ".random"
    path = args.output or MODELS / f"{stem}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)

    example, expected = (export_keras if args.keras else export_torch)(args, path)
    check(path, example, expected, args.threads)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    description = {
        "name": path.stem,
        "file": path.name,
        "sha256": digest if args.pin_sha256 else None,
        "preset": "caffe" if args.keras else "torch",
        "input_size": args.input_size,
        "resize": args.resize or round(args.input_size * 256 / 224),
        "output": "features",
        "output_dim": FEATURES,
        "source": source(args),
    }
    if not args.keras:
        # The tensor entering the last bottleneck block, for `extract --cut layer4.2`; torch.onnx
        # names it the same for every weights and input size.
        description["cuts"] = {"layer4.2": "/layer4/layer4.1/relu_2/Relu_output_0"}
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(description, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest}) and {json_path.name}")


if __name__ == "__main__":
    main()
