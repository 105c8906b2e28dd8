"""Golden values for the fine-tuning tests: EfficientNet-Lite0's last block and head conv in PyTorch.

Why: headstart fine-tunes the layers after a cut inside the backbone with its own code. This
script rebuilds those layers in PyTorch float64 from the ONNX initializers, runs one forward
pass, one backward pass and one Adam step on a fixed batch, and prints the numbers the Rust test
compares with. Anyone can regenerate them:

    python3 src/finetune/golden.py models/efficientnet_lite0.onnx            # JSON
    python3 src/finetune/golden.py models/efficientnet_lite0.onnx --rust     # the same as Rust consts

Needs torch, onnx, onnxruntime and numpy. What it computes:

- The layers from the "last-block" cut (tensor `add_174`, [N,192,7,7]) to `features` [N,1280]:
  expand Conv 1x1 192->1152 (`_blocks.15._expand_conv.w_175`/`b_176`) -> Clip(0,6) -> depthwise
  Conv 3x3, group 1152, pad 1 (`_blocks.15._depthwise_conv.w_179`/`b_180`) -> Clip(0,6) ->
  project Conv 1x1 1152->320 (`_blocks.15._project_conv.w_183`/`b_184`; its output is the
  "head-conv" cut `_blocks.15._project_conv_185`) -> Conv 1x1 320->1280 (`_conv_head.w_186`/
  `b_187`) -> Clip(0,6) -> GlobalAveragePool -> Flatten. Batch norm is folded into the convs.
  Conventions: NCHW; an ONNX conv weight is [O, I/G, kh, kw] (G = group); stride 1, pad p:
  y[n,o,h,w] = b[o] + sum_{i<I/G, dy, dx} W[o,i,dy,dx] * x[n, (o div (O/G))*(I/G) + i, h+dy-p, w+dx-p]
  with x = 0 outside (depthwise: G = I = O, so input channel o); the block has no skip
  connection (192 in, 320 out).
- The input x[n,c,h,w] = ((n*7 + c*3 + h*5 + w*11) % 17) / 8 - 1, N=2 (exact in f32).
- A linear layer on the features, logits[n,k] = sum_j f[n,j] * W[j,k], W[j,k] =
  (((j*13 + k*7) % 23) - 11) / 200, no bias, K=3, labels [0, 2]; loss = mean softmax
  cross-entropy over the batch.
- Gradients of the loss w.r.t. each conv weight and bias and w.r.t. x: sum, sum of squares and
  [flat (row-major) index, value] at indices 0, 1000 % len, len-1 and the argmax of |gradient|
  (many gradients are exactly 0: channels that Clip(0, 6) keeps at 0 for this input). Clip's
  gradient is 1 on the closed interval [0, 6] (torch.clamp), 0 outside; `clip_boundary_hits`
  counts the pre-activations exactly at 0 or 6, where conventions would differ (expected 0).
- One Adam step on the 4 convs only (not W): lr 1e-4, beta1 0.9, beta2 0.999, Keras' epsilon
  1e-7 added to the *uncorrected* sqrt(v); at step 1 that is torch.optim.Adam with
  eps = 1e-7 / sqrt(1 - 0.999), which is used (and checked against the Keras formula:
  `adam_torch_vs_keras_max_abs_diff`). Printed: each weight after the step at the same 4
  indices, the sum of the new weight and the sum of (new - old).
- `ort_max_abs_diff`: max |torch - onnxruntime| of the features for the same x, onnxruntime
  running the sub-model of the ONNX file from `add_174` to `features` (proves the rebuild).
- `f32_max_rel_diff`: the same computation in float32, max |f32 - f64| / max |f64| per
  quantity, a guide for the Rust test's tolerances.
"""

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

CUT = "add_174"
OUTPUT = "features"
CONVS = [  # (name in the output, weight, bias, group, padding)
    ("expand", "_blocks.15._expand_conv.w_175", "_blocks.15._expand_conv.b_176", 1, 0),
    ("depthwise", "_blocks.15._depthwise_conv.w_179", "_blocks.15._depthwise_conv.b_180", 1152, 1),
    ("project", "_blocks.15._project_conv.w_183", "_blocks.15._project_conv.b_184", 1, 0),
    ("head", "_conv_head.w_186", "_conv_head.b_187", 1, 0),
]
N, C, H, W, K = 2, 192, 7, 7, 3
LABELS = [0, 2]
LR, BETA1, BETA2, KERAS_EPS = 1e-4, 0.9, 0.999, 1e-7


def input_x():
    n, c, h, w = np.meshgrid(np.arange(N), np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    return ((n * 7 + c * 3 + h * 5 + w * 11) % 17) / 8.0 - 1.0


def linear_w(features):
    j, k = np.meshgrid(np.arange(features), np.arange(K), indexing="ij")
    return (((j * 13 + k * 7) % 23) - 11) / 200.0


def indices(grad):
    """0, 1000 % len, len - 1 and the index of the largest |gradient| (many entries are 0: the
    Clip(0, 6) of dead channels)."""
    flat = grad.reshape(-1)
    return [0, 1000 % flat.numel(), flat.numel() - 1, int(flat.abs().argmax())]


def summary(t, at):
    flat = t.detach().reshape(-1)
    return {
        "sum": flat.sum().item(),
        "sum_sq": (flat * flat).sum().item(),
        "at": [[i, flat[i].item()] for i in at],
    }


def run(init, dtype, at=None):
    """Forward, backward and one Adam step in `dtype`, reporting each tensor at the indices `at`
    (name -> list; None: chosen by `indices`); returns the golden dict, the Clip boundary hits,
    the features and the largest difference between torch's Adam step and Keras' rule."""
    params = []
    for _, w, b, _, _ in CONVS:
        params += [torch.tensor(init[w], dtype=dtype, requires_grad=True),
                   torch.tensor(init[b], dtype=dtype, requires_grad=True)]
    x = torch.tensor(input_x(), dtype=dtype, requires_grad=True)
    lw = torch.tensor(linear_w(init[CONVS[-1][1]].shape[0]), dtype=dtype)

    hits = 0
    h = x
    for i, (name, _, _, group, pad) in enumerate(CONVS):
        h = F.conv2d(h, params[2 * i], params[2 * i + 1], padding=pad, groups=group)
        if name != "project":  # the project conv is linear (no activation after it)
            hits += int(((h == 0) | (h == 6)).sum())
            h = torch.clamp(h, 0.0, 6.0)
    features = h.mean(dim=(2, 3))
    loss = F.cross_entropy(features @ lw, torch.tensor(LABELS))
    loss.backward()

    at = at or {}
    names = [f"{c[0]}.{kind}" for c in CONVS for kind in ("weight", "bias")]
    for name, p in zip(names + ["x"], params + [x]):
        at.setdefault(name, indices(p.grad))
    out = {
        "features_0_0_to_8": features[0, :8].tolist(),
        "features_sum": features.sum().item(),
        "loss": loss.item(),
        "grads": {name: summary(p.grad, at[name]) for name, p in zip(names, params)},
        "grad_x": summary(x.grad, at["x"]),
        "after_adam": {},
    }
    before = [p.detach().clone() for p in params]

    # Keras' rule at step 1, computed directly, to check the torch equivalence below.
    keras = []
    for p in params:
        g = p.grad
        m, v = (1 - BETA1) * g, (1 - BETA2) * g * g
        lr_t = LR * math.sqrt(1 - BETA2) / (1 - BETA1)
        keras.append(p.detach() - lr_t * m / (torch.sqrt(v) + KERAS_EPS))
    opt = torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=KERAS_EPS / math.sqrt(1 - BETA2))
    opt.step()
    keras_diff = max(float((p.detach() - k).abs().max()) for p, k in zip(params, keras))
    for i, (name, *_rest) in enumerate(CONVS):
        w = params[2 * i].detach().reshape(-1)
        out["after_adam"][f"{name}.weight"] = {
            "at": [[j, w[j].item()] for j in at[f"{name}.weight"]],
            "sum": w.sum().item(),
            "delta_sum": (w - before[2 * i].reshape(-1)).sum().item(),
        }
    return out, hits, features.detach().numpy(), keras_diff, at


def ort_features(model_path, x):
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        sub = os.path.join(tmp, "tail.onnx")
        onnx.utils.extract_model(model_path, sub, [CUT], [OUTPUT])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(sub, options, providers=["CPUExecutionProvider"])
        (got,) = session.run([OUTPUT], {CUT: x.astype(np.float32)})
    return got.astype(np.float64)


def rust_consts(golden):
    """The golden values as Rust consts, ready to paste beside the test."""
    def arr(pairs):
        return "[" + ", ".join(f"({i}, {v!r})" for i, v in pairs) + "]"

    def ident(name):
        return name.upper().replace(".", "_")

    n = len(golden["grad_x"]["at"])
    lines = [
        "// Generated by `python3 src/finetune/golden.py models/efficientnet_lite0.onnx --rust`.",
        "const FEATURES_0: [f64; 8] = [" + ", ".join(repr(v) for v in golden["features_0_0_to_8"]) + "];",
        f"const FEATURES_SUM: f64 = {golden['features_sum']!r};",
        f"const LOSS: f64 = {golden['loss']!r};",
        "// Gradients: (sum, sum of squares, [(flat index, value)]).",
    ]
    for name, g in list(golden["grads"].items()) + [("x", golden["grad_x"])]:
        lines.append(f"const GRAD_{ident(name)}: (f64, f64, [(usize, f64); {n}]) = "
                     f"({g['sum']!r}, {g['sum_sq']!r}, {arr(g['at'])});")
    lines.append("// After one Adam step: ([(flat index, new value)], sum of the new weight, sum of new - old).")
    for name, g in golden["after_adam"].items():
        lines.append(f"const ADAM_{ident(name)}: ([(usize, f64); {n}], f64, f64) = "
                     f"({arr(g['at'])}, {g['sum']!r}, {g['delta_sum']!r});")
    return "\n".join(lines)


def rel_diff(a, b):
    """max |a - b| / max |a| over the numbers of two golden sub-dicts of the same shape (flat
    indices left out)."""
    def values(d):
        if isinstance(d, dict):
            return [v for x in d.values() for v in values(x)]
        if isinstance(d, list):  # numbers, or [flat index, value] pairs
            return [float(v[1] if isinstance(v, list) else v) for v in d]
        return [float(d)]

    va, vb = np.array(values(a)), np.array(values(b))
    return float(np.abs(va - vb).max() / max(np.abs(va).max(), 1e-300))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="models/efficientnet_lite0.onnx")
    parser.add_argument("--rust", action="store_true", help="print Rust consts instead of JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = onnx.load(args.model)
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for _, w, b, _, _ in CONVS:
        if w not in init or b not in init:
            sys.exit(f"{args.model} has no initializer {w} or {b}: not EfficientNet-Lite0?")

    golden, hits, features, keras_diff, at = run(init, torch.float64)
    single, _, _, _, _ = run(init, torch.float32, at)
    golden["clip_boundary_hits"] = hits
    golden["adam_torch_vs_keras_max_abs_diff"] = keras_diff
    golden["ort_max_abs_diff"] = float(np.abs(ort_features(args.model, input_x()) - features).max())
    rel = {}
    for key in ("features_0_0_to_8", "loss", "grad_x"):
        rel[key] = rel_diff(golden[key], single[key])
    for group in ("grads", "after_adam"):
        for name in golden[group]:
            # Per quantity, so that a large sum does not hide a small entry.
            for q in golden[group][name]:
                rel[f"{group}.{name}.{q}"] = rel_diff(golden[group][name][q], single[group][name][q])
    golden["f32_max_rel_diff"] = rel
    print(rust_consts(golden) if args.rust else json.dumps(golden, indent=1))


if __name__ == "__main__":
    main()
