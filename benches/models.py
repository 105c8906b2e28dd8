"""Makes the benchmark-only backbones benches/run.py needs, once: random-weight ResNet-50
(torchvision architecture, exported by models/export_resnet50.py) at 224 and at the seed's 256 px,
and the 224 one's int8 version (models/quantize.py, calibrated on 100 hymenoptera training photos). Random weights because the
ImageNet ones cannot be downloaded here; the speed of a network does not depend on its weights.

    python benches/models.py
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"


def main():
    fp32 = ROOT / "models" / "resnet50.random.onnx"
    int8 = ROOT / "models" / "resnet50_int8.random.onnx"
    at_256 = ROOT / "models" / "resnet50_256.random.onnx"
    if not fp32.is_file():
        subprocess.run([sys.executable, "models/export_resnet50.py", "--random-weights"], cwd=ROOT, check=True)
    if not at_256.is_file():
        subprocess.run(
            [sys.executable, "models/export_resnet50.py", "--random-weights", "--input-size", "256"], cwd=ROOT, check=True
        )
    if not int8.is_file():
        subprocess.run(
            [sys.executable, "models/quantize.py", fp32, "--preset", "torch", "--data", CALIBRATION,
             "--count", "100", "--output", int8],
            cwd=ROOT,
            check=True,
        )
    print(f"{fp32}\n{int8}\n{at_256}")


if __name__ == "__main__":
    main()
