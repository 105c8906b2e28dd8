"""PyTorch eager: torchvision ResNet-50 with `fc = Identity`, torchvision's own evaluation
transforms (Resize 256, CenterCrop 224, ToTensor, Normalize), batches of 32 under
`torch.inference_mode`, `torch.set_num_threads` = the cores. Weights: random, seeded exactly as
models/export_resnet50.py --random-weights seeds them, so it is the same network headstart runs
from models/resnet50.random.onnx (or --weights-file for a torchvision .pth).

    python benches/peers/torch_resnet50.py DATA [--weights-file resnet50.pth]

Prints one `BENCH_JSON {...}` line (see common.py).
"""

import time

import torch
from PIL import Image, ImageOps
from torchvision import transforms
from torchvision.models import resnet50

from common import arguments, batches, cores, images, report


def load(path, transform):
    with Image.open(path) as img:
        return transform(ImageOps.exif_transpose(img).convert("RGB"))


def main():
    parser = arguments(__doc__)
    parser.add_argument("--weights-file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = images(args.data)

    start = time.perf_counter()
    torch.set_num_threads(cores())
    torch.manual_seed(args.seed)
    model = resnet50(weights=None)
    if args.weights_file:
        model.load_state_dict(torch.load(args.weights_file, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    transform = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    network, skipped = 0.0, 0
    with torch.inference_mode():
        for batch, failed in batches(files, lambda p: load(p, transform), args.batch):
            skipped += failed
            if batch:
                t = time.perf_counter()
                model(torch.stack(batch))
                network += time.perf_counter() - t
    report("pytorch-eager", len(files), skipped, time.perf_counter() - start, network)


if __name__ == "__main__":
    main()
