"""Time an ONNX backbone in onnxruntime alone, as a yardstick for headstart's `extract`.

Why: the extraction speed headstart reports includes decoding and resizing; this gives the
network's own ceiling on the same machine, with the settings headstart uses (intra-op threads,
ORT_ENABLE_ALL, one batch at a time), so the two can be compared.

Run from the repository root:

    python models/bench_ort.py models/resnet50.random.onnx --batch 32 --threads 2

It feeds random inputs of the model's input shape (a fixed batch of 1 is honoured by running
that many single-image calls) and prints the median images per second over --runs timed runs.
"""

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--runs", type=int, default=5, help="timed runs, after one warm-up")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    # A fixed-batch model is called once per `fixed` images, as headstart must do.
    per_call = fixed or args.batch
    calls = max(1, args.batch // per_call)
    x = np.random.default_rng(0).standard_normal([per_call] + list(inp.shape[1:])).astype(np.float32)

    def batch():
        for _ in range(calls):
            session.run(None, {inp.name: x})

    batch()
    rates = []
    for _ in range(args.runs):
        start = time.perf_counter()
        batch()
        rates.append(calls * per_call / (time.perf_counter() - start))
    print(
        f"{args.model}: batch {calls * per_call}, {args.threads} threads: "
        f"median {statistics.median(rates):.1f} img/s "
        f"(runs: {', '.join(f'{r:.1f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
