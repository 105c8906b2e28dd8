"""Runs models made by `headstart export` through ONNX Runtime and compares their output.

    check_export.py MODEL.onnx INPUT.npy EXPECTED.npy [--atol A]
    check_export.py DIR [--atol A]

The second form checks every DIR/NAME.onnx against DIR/NAME.input.npy and
DIR/NAME.expected.npy, as written by the export module's tests when
HEADSTART_EXPORT_CHECK_DIR is set. Each model must have exactly one output, a
float32 [batch, classes] tensor whose rows sum to 1, and match the expected
probabilities within the tolerance. When the onnx package is installed the
model also goes through onnx.checker with full shape inference, which
catches a malformed graph that ONNX Runtime would quietly accept.
"""

import argparse
import pathlib
import sys

import numpy as np
import onnxruntime as ort


def check(model: pathlib.Path, input_path: pathlib.Path, expected_path: pathlib.Path, atol: float) -> float:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        onnx.checker.check_model(onnx.load(str(model)), full_check=True)

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs = session.get_outputs()
    assert len(outputs) == 1, f"{model}: expected one output, found {[o.name for o in outputs]}"
    assert outputs[0].type == "tensor(float)", f"{model}: output is {outputs[0].type}"

    image = np.load(input_path)
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: image})
    expected = np.load(expected_path)
    assert probabilities.shape == expected.shape, f"{model}: shape {probabilities.shape}, expected {expected.shape}"
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5), f"{model}: rows do not sum to 1"
    diff = float(np.max(np.abs(probabilities.astype(np.float64) - expected)))
    assert diff <= atol, f"{model}: max abs difference {diff:.3g} > {atol}"
    return diff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=pathlib.Path, help="MODEL INPUT EXPECTED, or one folder")
    parser.add_argument("--atol", type=float, default=1e-5, help="largest absolute difference allowed")
    args = parser.parse_args()

    if len(args.paths) == 3:
        cases = [tuple(args.paths)]
    elif len(args.paths) == 1 and args.paths[0].is_dir():
        folder = args.paths[0]
        cases = [
            (model, folder / f"{model.stem}.input.npy", folder / f"{model.stem}.expected.npy")
            for model in sorted(folder.glob("*.onnx"))
        ]
        if not cases:
            parser.error(f"no .onnx files in {folder}")
    else:
        parser.error("give MODEL INPUT EXPECTED, or one folder")

    failed = 0
    for model, input_path, expected_path in cases:
        try:
            diff = check(model, input_path, expected_path, args.atol)
            print(f"{model.name}: ok, max abs difference {diff:.3g}")
        except Exception as error:  # a failed check or a model ONNX Runtime or onnx rejects
            failed += 1
            print(f"{model.name}: FAILED: {error}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
