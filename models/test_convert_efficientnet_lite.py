"""The stage tables convert_efficientnet_lite.py derives, against the published ones.

Why: the converter computes each variant's blocks from EfficientNet-B0's and the width and
depth multipliers; a rounding slip would build a graph with the wrong strides or residuals
for weights that may still load. The expected tables are the EfficientNet-Lite ones of the TF
reference (`efficientnet_lite_builder.py`: Lite0 1.0/1.0, Lite1 1.0/1.1, Lite2 1.1/1.2, stem
32 and head 1280 fixed, first and last stages' repeats kept), written out by hand.

    python -m unittest discover -s models -p 'test_*.py'     # .ci/run does this; needs numpy, onnx
"""

import os
import sys
import unittest

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


if __name__ == "__main__":
    unittest.main()
