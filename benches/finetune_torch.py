"""Fine-tuning the layers after a cut in PyTorch, for comparison with headstart's own trainer.

Why: headstart can cache the feature map at a cut inside the backbone (e.g. Lite0's
`add_174`, [192,7,7], before the last block) and then fine-tune the layers after the cut plus
the classifier head on a CPU, never running the frozen part of the backbone again. This script
does the same in PyTorch on exactly the maps headstart cached, so that accuracy and time per
epoch can be compared, and measures what people do without such a cache: run the whole backbone
on every image in every epoch.

The layers after the cut come from the backbone's ONNX file through a small ONNX -> torch
interpreter (`OnnxGraph`: Conv, Clip, Relu, Add, Mul, Sigmoid, BatchNormalization in eval mode,
GlobalAveragePool, ReduceMean, Flatten, Reshape, Transpose, MaxPool, Identity; constants
folded), not hard-coded for one network. On top of them the head as headstart defines it
(`head_reference.make_head`): BatchNorm1d(D, eps=1e-3, momentum=0.01) -> Dropout(0.5) ->
Linear(D, 512) -> ReLU -> BatchNorm1d(512) -> Dropout(0.5) -> Linear(512, K), Glorot-uniform
kernels, zero biases; `--hidden none`: one Linear(D, K). Softmax cross-entropy; Adam (betas 0.9,
0.999, eps 1e-7) with lr 1e-3 for the head and 1e-4 for the backbone layers (batch norm in the
backbone keeps its running statistics: eval mode; its scale and shift train); batch 32,
reshuffled each epoch, last partial batch kept (a single-sample batch is skipped when the head
has batch norm). Threads: `--threads` intra-op (default 2), 1 inter-op.

Modes:

1. cached (WORKSPACE): the maps `headstart extract` cached at the workspace's cut. dataset.json
   has `"cut": {"name", "tensor", "shape": {"channels", "height", "width"}, "dir"}`; the maps are in
   WORKSPACE/embeddings/<backbone key>/<dir>/maps-*.safetensors, each file holding `maps` F16
   [n,C,H,W] and `sha256` U8 [n,32] (the image's content hash, as in the manifest's entries).
   Trains on `train`, reports accuracy on `val` and `test` (null when absent); each epoch ends
   with a pass over `val`, as headstart's do. Seconds: the
   epochs only (a batch's maps are converted from f16 to f32 inside the epoch).
2. --full-backbone SOURCE: the same top and head, but every epoch decodes and preprocesses each
   image (models/preprocess_reference.py: shorter side to `resize`, centre crop `size`, the
   model's preset) and runs the frozen part of the backbone (input -> cut, the same
   interpreter, under no_grad) before the training step. SOURCE is a workspace (its `train`
   entries under `data_root`, its preprocessing and cut) or an image folder
   `<dir>/[train/]<class>/<image>`. `--limit` images (default 256, spread evenly over the
   sorted list). Reports seconds per epoch and per image-epoch, split into decode, frozen
   forward and training step; no accuracy.

Run from the repository root with torch, onnx, numpy, safetensors (and pillow for
--full-backbone):

    python benches/finetune_torch.py WORKSPACE [--model BACKBONE.onnx] [--epochs 5] [--seed 0]
        [--hidden 512|none] [--threads 2] [--cut last-block]
    python benches/finetune_torch.py --full-backbone WORKSPACE_OR_IMAGES [--model BACKBONE.onnx]
        [--cut-tensor add_174] [--limit 256] [--epochs 2]

    python benches/finetune_torch.py --check --model BACKBONE.onnx --cut-tensor add_174

--model defaults to the workspace's backbone `model_path`. `--check` only compares the
interpreter (input -> cut -> output) with onnxruntime on two random inputs. Prints one JSON
object.
"""

import argparse
import glob
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "models"))
from head_reference import make_head, read_manifest, split_rows, torch_setup  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


# ---------------------------------------------------------------------------------------------
# Cached maps


def load_maps(folder, cut_name=None):
    """Returns (the manifest, its cut, the maps f16 [rows, C, H, W], {file sha256 hex: row})."""
    manifest = read_manifest(folder)
    cut = manifest.get("cut")
    if cut is None:
        sys.exit(f"{folder}/dataset.json has no `cut`: extract the maps at a cut first")
    if cut_name is not None and cut["name"] != cut_name:
        sys.exit(f"the workspace's cut is {cut['name']!r}, not {cut_name!r}")
    pattern = os.path.join(folder, "embeddings", manifest["backbone"]["key"], cut["dir"], "maps-*.safetensors")
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"no maps at {pattern}")
    maps, hashes = [], []
    for path in files:
        t = load_file(path)
        if t["maps"].shape[0] != t["sha256"].shape[0]:
            sys.exit(f"{path} has {t['maps'].shape[0]} maps but {t['sha256'].shape[0]} hashes")
        if list(t["maps"].shape[1:]) != cut_shape(cut):
            sys.exit(f"{path} holds maps {list(t['maps'].shape[1:])}, the cut says {cut['shape']}")
        maps.append(t["maps"])
        hashes.append(t["sha256"])
    maps = np.concatenate(maps) if len(maps) > 1 else maps[0]
    hashes = np.concatenate(hashes)
    return manifest, cut, maps, {bytes(h).hex(): i for i, h in enumerate(hashes)}


def load_map_splits(folder, cut_name=None):
    """Returns (manifest, cut, {split: (maps f16 [n, C, H, W], y int64 [n])})."""
    manifest, cut, maps, row_of = load_maps(folder, cut_name)
    splits = {s: (maps[r], y) for s, (r, y) in split_rows(manifest, row_of, "map").items()}
    return manifest, cut, splits


# ---------------------------------------------------------------------------------------------
# ONNX -> torch


def graph_module(torch, onnx_model, inputs, outputs, trainable=True):
    """The part of `onnx_model` that computes `outputs` from the tensors `inputs`, as a torch
    module taking those tensors in that order and returning the first output. Conv kernels and
    biases and BatchNormalization scales and shifts become parameters (requires_grad =
    `trainable`); other constants are buffers or Python values. Raises ValueError when an output
    needs a tensor that is neither computed from `inputs` nor constant (a bad cut), or an
    operator the interpreter does not know."""
    import torch.nn.functional as F
    from onnx import helper, numpy_helper
    from torch import nn

    graph = onnx_model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # fold Constant and Identity-of-constant (the exporter's deduplication)
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(helper.get_attribute_value(node.attribute[0]))
        elif node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    producer = {out: node for node in graph.node for out in node.output}

    needed, stack = set(), list(outputs)
    while stack:
        name = stack.pop()
        if name in needed or name in inputs or name in consts or name == "":
            continue
        if name not in producer:
            raise ValueError(f"{outputs} needs {name}, which is neither computed from {inputs} nor constant "
                             "(not a valid cut: a path goes around it)")
        needed.add(name)
        stack.extend(producer[name].input)
    nodes = []
    for node in graph.node:
        if any(o in needed for o in node.output) and node not in nodes:
            nodes.append(node)

    module = nn.Module()
    module.params = nn.ParameterDict()
    keys = {}

    def key(name):
        return keys.setdefault(name, f"t{len(keys)}")

    def param(name):
        k = key(name)
        if k not in module.params:
            module.params[k] = nn.Parameter(torch.from_numpy(np.array(consts[name], dtype=np.float32)),
                                            requires_grad=trainable)
        return lambda: module.params[k]

    def buffer(name):
        k = key(name)
        if not hasattr(module, k):
            module.register_buffer(k, torch.from_numpy(np.array(consts[name], dtype=np.float32)))
        return lambda: getattr(module, k)

    def value(name):
        return consts[name].tolist()

    def pad_args(pads, fill):
        """ONNX 2-D pads [h0, w0, h1, w1] -> (torch padding, or None and an F.pad step)."""
        h0, w0, h1, w1 = pads
        if (h0, w0) == (h1, w1):
            return (h0, w0), None
        return (0, 0), lambda x: F.pad(x, (w0, w1, h0, h1), value=fill)

    steps = []
    for node in nodes:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        ins = [i for i in node.input]
        op = node.op_type
        if op == "Conv":
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
                raise ValueError(f"Conv {node.name}: auto_pad {a['auto_pad']} is not supported")
            w = param(ins[1])
            b = param(ins[2]) if len(ins) > 2 and ins[2] else (lambda: None)
            padding, pre = pad_args(a.get("pads", [0, 0, 0, 0]), 0.0)
            stride, dilation, groups = a.get("strides", [1, 1]), a.get("dilations", [1, 1]), a.get("group", 1)

            def fn(x, w=w, b=b, pre=pre, padding=padding, stride=stride, dilation=dilation, groups=groups):
                x = pre(x) if pre else x
                return F.conv2d(x, w(), b(), stride=stride, padding=padding, dilation=dilation, groups=groups)
            args = ins[:1]
        elif op == "Clip":
            lo = value(ins[1]) if len(ins) > 1 and ins[1] else a.get("min")
            hi = value(ins[2]) if len(ins) > 2 and ins[2] else a.get("max")

            def fn(x, lo=lo, hi=hi):
                return torch.clamp(x, lo, hi)  # gradient 1 on the closed interval
            args = ins[:1]
        elif op in ("Relu", "Sigmoid", "Identity"):
            fn = {"Relu": F.relu, "Sigmoid": torch.sigmoid, "Identity": lambda x: x}[op]
            args = ins[:1]
        elif op in ("Add", "Mul"):
            getters = [buffer(i) if i in consts else None for i in ins]
            binary = torch.add if op == "Add" else torch.mul

            def fn(*xs, getters=getters, binary=binary):
                it = iter(xs)
                u, v = [g() if g else next(it) for g in getters]
                return binary(u, v)
            args = [i for i in ins if i not in consts]
        elif op == "BatchNormalization":
            scale, shift, mean, var = param(ins[1]), param(ins[2]), buffer(ins[3]), buffer(ins[4])
            eps = a.get("epsilon", 1e-5)

            def fn(x, scale=scale, shift=shift, mean=mean, var=var, eps=eps):
                return F.batch_norm(x, mean(), var(), scale(), shift(), training=False, eps=eps)
            args = ins[:1]
        elif op == "GlobalAveragePool":
            def fn(x):
                return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
            args = ins[:1]
        elif op == "ReduceMean":
            axes = value(ins[1]) if len(ins) > 1 and ins[1] else a.get("axes")
            keep = bool(a.get("keepdims", 1))

            def fn(x, axes=axes, keep=keep):
                return x.mean(dim=tuple(axes) if axes is not None else tuple(range(x.dim())), keepdim=keep)
            args = ins[:1]
        elif op == "Flatten":
            axis = a.get("axis", 1)

            def fn(x, axis=axis):
                return x.reshape(math.prod(x.shape[:axis]), -1)
            args = ins[:1]
        elif op == "Reshape":
            shape = value(ins[1])

            def fn(x, shape=shape):
                return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])
            args = ins[:1]
        elif op == "Transpose":
            perm = a.get("perm")

            def fn(x, perm=perm):
                return x.permute(perm if perm is not None else list(reversed(range(x.dim()))))
            args = ins[:1]
        elif op == "MaxPool":
            padding, pre = pad_args(a.get("pads", [0, 0, 0, 0]), float("-inf"))
            kernel, stride = a["kernel_shape"], a.get("strides", [1, 1])
            ceil = bool(a.get("ceil_mode", 0))

            def fn(x, pre=pre, padding=padding, kernel=kernel, stride=stride, ceil=ceil):
                x = pre(x) if pre else x
                return F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil)
            args = ins[:1]
        else:
            raise ValueError(f"operator {op} ({node.name or node.output[0]}) is not supported")
        steps.append((fn, args, node.output[0]))

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *xs):
            env = dict(zip(inputs, xs))
            for fn, args, out in steps:
                env[out] = fn(*[env[i] for i in args])
            return env[outputs[0]]

    g = Graph()
    g.ops = [n.op_type for n in nodes]
    return g


# ---------------------------------------------------------------------------------------------
# Training


def cut_shape(cut):
    """[C, H, W] of the manifest's cut record."""
    shape = cut["shape"]
    return [shape["channels"], shape["height"], shape["width"]]


def build(torch, onnx_model, cut_tensor, output, cut_shape, n_classes, args):
    """(top: the backbone from the cut to `output`, head, Adam over both)."""
    torch.manual_seed(args.seed)
    top = graph_module(torch, onnx_model, [cut_tensor], [output])
    with torch.no_grad():
        d = top(torch.zeros(1, *cut_shape)).reshape(1, -1).shape[1]
    head, _ = make_head(torch, d, n_classes, args.hidden, args.dropout)
    groups = [{"params": list(top.parameters()), "lr": args.backbone_lr},
              {"params": list(head.parameters()), "lr": args.lr}]
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999), eps=1e-7)
    return top, head, opt


def train_step(torch, top, head, opt, x, y):
    import torch.nn.functional as F

    loss = F.cross_entropy(head(top(x)), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def predict(torch, top, head, x, batch=256):
    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(head(top(torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32)))).argmax(1))
    head.train()
    return torch.cat(out).numpy()


def run_cached(torch, onnx_model, args):
    manifest, cut, splits = load_map_splits(args.workspace, args.cut)
    if "train" not in splits:
        sys.exit("the workspace has no cached train maps")
    n_classes = len(manifest["classes"])
    top, head, opt = build(torch, onnx_model, cut["tensor"], args.output, cut_shape(cut), n_classes, args)
    xtr, ytr = splits["train"]
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)  # f16, converted per batch
    n = len(ytr)
    gen = torch.Generator().manual_seed(args.seed)
    epochs, loss, skipped = [], None, 0
    head.train()
    for _ in range(args.epochs):
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, args.batch_size):
            idx = perm[i : i + args.batch_size]
            if len(idx) < 2 and args.hidden is not None:  # BatchNorm1d cannot train on one sample
                skipped += 1
                continue
            loss = train_step(torch, top, head, opt, xtr_t[idx].float(), ytr_t[idx])
        # One validation pass per epoch, inside the timing, as headstart's epochs have one.
        if "val" in splits:
            predict(torch, top, head, splits["val"][0])
        epochs.append(time.perf_counter() - start)
    acc = {}
    for s in ("val", "test"):
        acc[s] = float(np.mean(predict(torch, top, head, splits[s][0]) == splits[s][1])) if s in splits else None
    return {
        "mode": "cached",
        "cut": cut,
        "backbone_ops": top.ops,
        "train_images": n,
        "epochs": args.epochs,
        "seconds_per_epoch_median": statistics.median(epochs),
        "seconds_per_image_epoch": statistics.median(epochs) / n,
        "epoch_seconds": epochs,
        "fit_seconds": sum(epochs),
        "final_batch_loss": loss,
        "skipped_single_batches": skipped,
        "val_accuracy": acc["val"],
        "test_accuracy": acc["test"],
    }


def image_list(source, limit):
    """(paths, labels, classes, preprocessing or None, cut tensor or None) of the train images."""
    if os.path.isfile(os.path.join(source, "dataset.json")):
        m = read_manifest(source)
        classes = list(m["classes"])
        items = sorted((os.path.join(m["data_root"], e["path"]),
                        e["class"] if isinstance(e["class"], int) else classes.index(e["class"]))
                       for e in m["entries"] if e["split"] == "train")
        prep = m["backbone"].get("preprocessing")
        cut = (m.get("cut") or {}).get("tensor")
    else:
        root = os.path.join(source, "train") if os.path.isdir(os.path.join(source, "train")) else source
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        items = sorted((os.path.join(root, c, f), i) for i, c in enumerate(classes)
                       for f in os.listdir(os.path.join(root, c)) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
        prep, cut = None, None
    if not items:
        sys.exit(f"no train images in {source}")
    if limit and len(items) > limit:  # evenly spread over the sorted list, so every class is in
        items = [items[int(i * len(items) / limit)] for i in range(limit)]
    return [p for p, _ in items], np.array([c for _, c in items], dtype=np.int64), classes, prep, cut


def run_full(torch, onnx_model, args):
    from preprocess_reference import preprocess

    paths, labels, classes, prep, ws_cut = image_list(args.full_backbone, args.limit)
    cut_tensor = args.cut_tensor or ws_cut
    if cut_tensor is None:
        sys.exit("--cut-tensor is needed (the source is not a workspace with a cut)")
    if prep is None:  # the model's description beside it, else Lite0's
        desc = Path(args.model).with_suffix(".json")
        d = json.loads(desc.read_text()) if desc.is_file() else {}
        size = d.get("input_size", 224)
        prep = {"preset": d.get("preset", "tflite"), "size": size, "resize": d.get("resize", round(size * 256 / 224))}
    input_name = next(i.name for i in onnx_model.graph.input
                      if i.name not in {t.name for t in onnx_model.graph.initializer})
    bottom = graph_module(torch, onnx_model, [input_name], [cut_tensor], trainable=False)
    with torch.no_grad():
        cut_shape = list(bottom(torch.zeros(1, 3, prep["size"], prep["size"])).shape[1:])
    top, head, opt = build(torch, onnx_model, cut_tensor, args.output, cut_shape, len(classes), args)
    n = len(paths)
    gen = torch.Generator().manual_seed(args.seed)
    epochs, parts, failed, loss = [], [], set(), None
    head.train()
    for _ in range(args.epochs):
        t = {"decode": 0.0, "frozen": 0.0, "train": 0.0}
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen).tolist()
        for i in range(0, n, args.batch_size):
            t0 = time.perf_counter()
            xs, ys = [], []
            for j in perm[i : i + args.batch_size]:
                try:
                    xs.append(preprocess(paths[j], prep["preset"], prep["resize"], prep["size"]))
                    ys.append(labels[j])
                except Exception as error:  # an unreadable image is left out, as headstart does
                    if paths[j] not in failed:
                        print(f"warning: {paths[j]}: {error}", file=sys.stderr)
                    failed.add(paths[j])
            t1 = time.perf_counter()
            if len(xs) < 2 and args.hidden is not None:
                continue
            with torch.no_grad():
                maps = bottom(torch.from_numpy(np.stack(xs)))
            t2 = time.perf_counter()
            loss = train_step(torch, top, head, opt, maps, torch.from_numpy(np.array(ys)))
            t3 = time.perf_counter()
            t["decode"] += t1 - t0
            t["frozen"] += t2 - t1
            t["train"] += t3 - t2
        epochs.append(time.perf_counter() - start)
        parts.append(t)
    med = statistics.median(epochs)
    return {
        "mode": "full-backbone",
        "cut_tensor": cut_tensor,
        "cut_shape": cut_shape,
        "preprocessing": prep,
        "backbone_ops_after_cut": top.ops,
        "images": n,
        "unreadable": len(failed),
        "epochs": args.epochs,
        "seconds_per_epoch_median": med,
        "seconds_per_image_epoch": med / n,
        "epoch_seconds": epochs,
        "fit_seconds": sum(epochs),
        # Per image-epoch, median over epochs: decode + preprocess, frozen forward, training step
        # (the last is the part a cached fine-tune still pays).
        "per_image_epoch": {k: statistics.median(p[k] for p in parts) / n for k in ("decode", "frozen", "train")},
        "final_batch_loss": loss,
    }


def check_interpreter(torch, onnx_model, args):
    """max |interpreter - onnxruntime| of the output for two random inputs, run as input -> cut ->
    output through two interpreted parts (a check of `graph_module` on this backbone)."""
    import onnxruntime as ort

    cut_tensor = args.cut_tensor
    if cut_tensor is None and args.workspace:
        cut_tensor = read_manifest(args.workspace)["cut"]["tensor"]
    if cut_tensor is None:
        sys.exit("--check needs --cut-tensor or a workspace with a cut")
    (inp,) = [i for i in onnx_model.graph.input if i.name not in {t.name for t in onnx_model.graph.initializer}]
    size = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    x = np.random.default_rng(0).uniform(-1, 1, [2, *size]).astype(np.float32)
    bottom = graph_module(torch, onnx_model, [inp.name], [cut_tensor], trainable=False)
    top = graph_module(torch, onnx_model, [cut_tensor], [args.output])
    with torch.no_grad():
        got = top(bottom(torch.from_numpy(x))).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    (want,) = session.run([args.output], {inp.name: x})
    diff = float(np.abs(got - want).max())
    return {"mode": "check", "cut_tensor": cut_tensor, "ops_after_cut": top.ops, "max_abs_diff": diff,
            "max_rel_diff": diff / float(np.abs(want).max())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", help="a workspace with maps cached at a cut (cached mode)")
    parser.add_argument("--full-backbone", metavar="SOURCE", help="a workspace or image folder: run the whole backbone")
    parser.add_argument("--model", help="the backbone's ONNX file (default: the workspace's backbone model_path)")
    parser.add_argument("--cut", help="cached mode: check that the workspace's cut has this name")
    parser.add_argument("--cut-tensor", help="--full-backbone: the cut tensor (default: the workspace's cut)")
    parser.add_argument("--output", default="features", help="the backbone's pooled output tensor")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", default="512", help="hidden units of the head, or `none` for a linear head")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the head")
    parser.add_argument("--backbone-lr", type=float, default=1e-4, help="Adam learning rate of the backbone layers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=256, help="--full-backbone: images (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--check", action="store_true",
                        help="only compare the interpreter with onnxruntime on --model (needs onnxruntime)")
    args = parser.parse_args()
    if (args.workspace is None) == (args.full_backbone is None) and not (args.check and args.model):
        parser.error("give either WORKSPACE or --full-backbone SOURCE (or --check --model M --cut-tensor T)")
    args.hidden = None if args.hidden.lower() == "none" else int(args.hidden)

    import onnx

    torch = torch_setup(args.threads)
    if args.model is None:
        ws = args.workspace or args.full_backbone
        if not os.path.isfile(os.path.join(ws, "dataset.json")):
            parser.error("--model is needed when the source is not a workspace")
        args.model = read_manifest(ws)["backbone"]["model_path"]
    onnx_model = onnx.load(args.model)
    if args.check:
        result = check_interpreter(torch, onnx_model, args)
    elif args.full_backbone:
        result = run_full(torch, onnx_model, args)
    else:
        result = run_cached(torch, onnx_model, args)
    result.update({
        "model": os.path.basename(args.model),
        "head": {"hidden": args.hidden, "dropout": args.dropout, "lr": args.lr, "backbone_lr": args.backbone_lr,
                 "batch_size": args.batch_size},
        "seed": args.seed,
        "threads": args.threads,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    })
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
