"""The plain Python way to embed a folder: PIL decode and resize in a thread pool, onnxruntime
InferenceSession on batches of 32, as a user would write it in a notebook. Big JPEGs are
decoded reduced with PIL's `draft`, as headstart reduces them (models/preprocess_reference.py),
so that both do the same work.

    python benches/peers/python_ort.py DATA MODEL.onnx --preset torch [--size 224 --resize 256]

Prints one `BENCH_JSON {...}` line: wall seconds from the first file read to the last batch
(session creation included, interpreter start excluded), and the seconds spent in `run`.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from common import arguments, cores, images, preprocess, report, safe


def main():
    parser = arguments(__doc__)
    parser.add_argument("model")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--resize", type=int)
    args = parser.parse_args()
    resize = args.resize or args.size * 256 // 224
    files = images(args.data)

    start = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    network, skipped, batch = 0.0, 0, []
    with ThreadPoolExecutor(cores()) as pool:
        # map() submits every file at once: decoding runs ahead of the network.
        for x in pool.map(lambda p: safe(preprocess, p, args.preset, resize, args.size), files):
            if x is None:
                skipped += 1
                continue
            batch.append(x)
            if len(batch) == args.batch:
                t = time.perf_counter()
                session.run(None, {input_name: np.stack(batch)})
                network += time.perf_counter() - t
                batch = []
        if batch:
            t = time.perf_counter()
            session.run(None, {input_name: np.stack(batch)})
            network += time.perf_counter() - t
    report("python-onnxruntime", len(files), skipped, time.perf_counter() - start, network)


if __name__ == "__main__":
    main()
