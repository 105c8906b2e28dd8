"""The seed's Keras recipe, extraction part: `ResNet50(weights=None, include_top=False,
pooling='avg')` and `model.predict` on batches of 32, images loaded with PIL, resized to 224 x 224
(`keras.utils.load_img(target_size=...)`, the recipe's way, no centre crop) and passed through
`keras.applications.resnet50.preprocess_input` (caffe). Random weights: Keras cannot load the
torchvision ones; the speed does not depend on them.

    python benches/peers/keras_resnet50.py DATA [--size 224]

Prints one `BENCH_JSON {...}` line (see common.py).
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import arguments, batches, cores, images, report  # noqa: E402


def main():
    parser = arguments(__doc__)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    files = images(args.data)

    start = time.perf_counter()
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(cores())
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(args.size, args.size, 3)
    )
    size = (args.size, args.size)

    def load(path):
        return keras.utils.img_to_array(keras.utils.load_img(path, target_size=size))

    network, skipped = 0.0, 0
    for batch, failed in batches(files, load, args.batch):
        skipped += failed
        if batch:
            x = keras.applications.resnet50.preprocess_input(np.stack(batch))
            t = time.perf_counter()
            model.predict(x, batch_size=args.batch, verbose=0)
            network += time.perf_counter() - t
    report("keras", len(files), skipped, time.perf_counter() - start, network)


if __name__ == "__main__":
    main()
