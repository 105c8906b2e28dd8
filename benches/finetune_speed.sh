#!/bin/bash
# Fine-tuning speed against PyTorch on the same cached maps, and against PyTorch running the
# whole backbone on every image each epoch (what users do today), interleaved in one sitting.
#
#   benches/finetune_speed.sh WORKSPACE DATA [ROUNDS]
#
# WORKSPACE has maps at `last-block` (`headstart extract --cut last-block`); headstart is the
# release binary (`cargo build --release`). Each round runs 3 epochs of each trainer, both on
# 2 threads (matrixmultiply's and rayon's pools, torch.set_num_threads(2)); the figure is the
# median epoch over the rounds, each epoch including one validation pass. The full-backbone run
# times 128 images of the image folder DATA (decode, the frozen part's forward, the block's
# training step) and reports seconds per image per epoch.
set -euo pipefail
ws=${1:?usage: finetune_speed.sh WORKSPACE DATA [ROUNDS]}
data=${2:?usage: finetune_speed.sh WORKSPACE DATA [ROUNDS]}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
hs=${HEADSTART:-$here/../target/release/headstart}
for r in $(seq "$rounds"); do
    "$hs" --workspace "$ws" --quiet --json train-head --finetune last-block --epochs 3 \
        | python3 -c 'import json, sys; d = json.load(sys.stdin); print("headstart", *[e["seconds"] for e in d["history"]])'
    python3 "$here/finetune_torch.py" "$ws" --epochs 3 --threads 2 \
        | python3 -c 'import json, sys; d = json.load(sys.stdin); print("pytorch", *d["epoch_seconds"])'
done
python3 "$here/finetune_torch.py" --full-backbone "$data" --model "$here/../models/efficientnet_lite0.onnx" \
    --cut-tensor add_174 --limit 128 --epochs 2 --threads 2 \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); print("pytorch-full-backbone", json.dumps({k: v for k, v in d.items() if "second" in k}))'
