"""The stage tables convert_efficientnet_lite.py derives, against the published ones.

Why: the converter computes each variant's blocks from EfficientNet-B0's and the width and
depth multipliers; a rounding slip would build a graph with the wrong strides or residuals
for weights that may still load. The expected tables are the EfficientNet-Lite ones of the TF
reference (`efficientnet_lite_builder.py`: Lite0 1.0/1.0, Lite1 1.0/1.1, Lite2 1.1/1.2, stem
32 and head 1280 fixed, first and last stages' repeats kept), written out by hand.

Also: a convolution with its batch norm kept (`--keep-batch-norm`) computes what the folded
one does, and the named cuts found in the committed Lite0 are its description's.

    python -m unittest discover -s models -p 'test_*.py'     # .ci/run does this; needs numpy, onnx, onnxruntime
"""

import json
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_efficientnet_lite as conv  # noqa: E402

# (kernel, stride, expand ratio, in channels, out channels, repeats)
PUBLISHED = {
    "lite0": [
        (3, 1, 1, 32, 16, 1),
        (3, 2, 6, 16, 24, 2),
        (5, 2, 6, 24, 40, 2),
        (3, 2, 6, 40, 80, 3),
        (5, 1, 6, 80, 112, 3),
        (5, 2, 6, 112, 192, 4),
        (3, 1, 6, 192, 320, 1),
    ],
    "lite1": [
        (3, 1, 1, 32, 16, 1),
        (3, 2, 6, 16, 24, 3),
        (5, 2, 6, 24, 40, 3),
        (3, 2, 6, 40, 80, 4),
        (5, 1, 6, 80, 112, 4),
        (5, 2, 6, 112, 192, 5),
        (3, 1, 6, 192, 320, 1),
    ],
    "lite2": [
        (3, 1, 1, 32, 16, 1),
        (3, 2, 6, 16, 24, 3),
        (5, 2, 6, 24, 48, 3),
        (3, 2, 6, 48, 88, 4),
        (5, 1, 6, 88, 120, 4),
        (5, 2, 6, 120, 208, 5),
        (3, 1, 6, 208, 352, 1),
    ],
}


class StageTables(unittest.TestCase):
    def test_each_variant_matches_the_published_table(self):
        self.assertEqual(sorted(conv.VARIANTS), sorted(PUBLISHED))
        for name, variant in conv.VARIANTS.items():
            with self.subTest(name):
                self.assertEqual(conv.stage_table(variant.width, variant.depth), PUBLISHED[name])

    def test_block_counts_and_inputs(self):
        blocks = {n: sum(s[-1] for s in PUBLISHED[n]) for n in PUBLISHED}
        self.assertEqual(blocks, {"lite0": 16, "lite1": 21, "lite2": 21})
        sizes = {n: (v.input_size, v.resize) for n, v in conv.VARIANTS.items()}
        self.assertEqual(sizes, {"lite0": (224, 256), "lite1": (240, 272), "lite2": (260, 292)})

    def test_rounding_keeps_multiples_of_eight_and_ninety_percent(self):
        self.assertEqual(conv.round_filters(112, 1.1), 120)  # 123.2 -> 120 (>= 110.9)
        self.assertEqual(conv.round_filters(40, 1.1), 48)  # 44 -> 48, rounding half up
        self.assertEqual(conv.round_filters(32, 1.1), 32)  # the stem stays 32
        self.assertEqual(conv.round_filters(16, 1.0), 16)
        self.assertEqual(conv.round_filters(60, 1.1), 64)  # 66 -> 64 (>= 59.4)
        # 7 * 1.7 = 11.9 rounds to 8, under 90% of 11.9, so one step is added back.
        self.assertEqual(conv.round_filters(7, 1.7), 16)
        self.assertEqual(conv.round_filters(8, 0.5), 8)  # never below one divisor



class KeptBatchNorm(unittest.TestCase):
    def test_a_kept_batch_norm_computes_what_the_folded_one_does(self):
        import onnxruntime as ort
        from onnx import TensorProto, helper

        rng = np.random.default_rng(3)
        sd = {
            "conv.weight": rng.standard_normal((6, 4, 3, 3)),
            "bn.weight": 1 + 0.3 * rng.standard_normal(6),
            "bn.bias": 0.2 * rng.standard_normal(6),
            "bn.running_mean": 0.5 * rng.standard_normal(6),
            "bn.running_var": rng.uniform(0.2, 2.0, 6),
            "bn.num_batches_tracked": np.array(0.0),
        }
        x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
        outputs = {}
        for keep in (False, True):
            g = conv.GraphBuilder(sd, keep_batch_norm=keep)
            y, out = g.conv_bn("input", "conv", "bn", 9, 2)
            graph = helper.make_graph(
                g.nodes, "t", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 4, 9, 9])],
                [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], initializer=g.inits)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", conv.OPSET)])
            model.ir_version = conv.IR_VERSION
            ops = [n.op_type for n in model.graph.node]
            self.assertEqual(ops, ["Conv", "BatchNormalization", "Clip"] if keep else ["Conv", "Clip"])
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            outputs[keep] = session.run(None, {"input": x})[0]
            self.assertEqual(outputs[keep].shape, (2, 6, out, out))
        np.testing.assert_allclose(outputs[True], outputs[False], atol=1e-5)
        self.assertGreater(np.abs(outputs[False]).max(), 1.0)

    def test_the_cuts_found_in_lite0_are_its_description_s(self):
        import onnx

        here = os.path.dirname(os.path.abspath(__file__))
        model = onnx.load(os.path.join(here, "efficientnet_lite0.onnx"))
        with open(os.path.join(here, "efficientnet_lite0.json")) as fh:
            described = json.load(fh)["cuts"]
        self.assertEqual(conv.cuts(model), described)


if __name__ == "__main__":
    unittest.main()
