#!/usr/bin/env bash
# Execution providers against the CPU, in one go: throughput and equal embeddings.
#
#   benches/gpu.sh                                 # a machine with an NVIDIA GPU: cpu, cuda, tensorrt
#   DEVICES="cpu openvino" benches/gpu.sh          # any x86_64 machine: OpenVINO against the CPU
#
# For each backbone, batch size and device (devices interleaved), the extract bench measures end
# to end on real photos and the network alone on pre-decoded tensors, and keeps its cache; each
# device's vectors are then compared with the CPU's of the same run (cosine, at least 0.999 or
# the script fails). One JSON line per measurement goes to $RESULTS, and a table to stdout.
#
# Settings (environment): DEVICES, BATCHES ("16 64 256"), MODELS (efficientnet_lite0 and
# models/resnet50.random.onnx, exported with random weights if torch is there), DATA (default
# ../shared/data/flowers5, else the bundled demo images), RESULTS (default
# ${OUT:-target/bench}/gpu.jsonl), BENCH (a built `extract` bench binary; default: cargo
# builds it).
#
# CUDA: the onnxruntime-gpu build headstart fetches needs CUDA 13 and cuDNN 9 on the loader's
# path when headstart starts. The script installs NVIDIA's PyPI wheels for them (the
# `onnxruntime-gpu[cuda,cudnn]` extras, and TensorRT's if pip has them) and puts their lib
# folders on LD_LIBRARY_PATH. A device that cannot start is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICES=${DEVICES:-"cpu cuda tensorrt"}
BATCHES=${BATCHES:-"16 64 256"}
MODELS=${MODELS:-"efficientnet_lite0 models/resnet50.random.onnx"}
DATA=${DATA:-../shared/data/flowers5}
[ -d "$DATA" ] || DATA=demo
RESULTS=${RESULTS:-${OUT:-target/bench}/gpu.jsonl}
WS=target/bench/gpu-ws
mkdir -p "$(dirname "$RESULTS")" "$WS"
: > "$RESULTS"

case " $DEVICES " in
*" cuda "* | *" tensorrt "*)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi: no driver found"
    python3 -m pip install --quiet 'onnxruntime-gpu[cuda,cudnn]==1.31.1' ||
        echo "pip could not install the CUDA and cuDNN wheels; using the system's libraries"
    python3 -m pip install --quiet tensorrt-cu13 ||
        echo "no TensorRT wheel: --device tensorrt will be reported as unavailable"
    libs=$(python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
found = set()
for root in roots:
    for pattern in ("nvidia/*/lib", "nvidia/*/*/lib", "tensorrt_libs", "tensorrt_cu13_libs"):
        found.update(glob.glob(os.path.join(root, pattern)))
print(":".join(sorted(found)))
EOF
)
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
esac

models=""
for model in $MODELS; do
    if [[ $model == *.onnx && ! -f $model ]]; then
        python3 models/export_resnet50.py --random-weights >/dev/null 2>&1 || true
    fi
    if [[ $model == *.onnx && ! -f $model ]]; then
        echo "skipping $model: not there, and models/export_resnet50.py needs torch and torchvision"
    else
        models="$models $model"
    fi
done

if [ -z "${BENCH:-}" ]; then
    # By cargo's own account: tests/extract.rs builds a binary of the same name beside it.
    BENCH=$(cargo bench --bench extract --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
found = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]]
print(found[-1])')
fi

for model in $models; do
    name=$(basename "$model" .onnx)
    for batch in $BATCHES; do
        for device in $DEVICES; do
            ws="$WS/$name-$batch-$device"
            rm -rf "$ws"
            log="$ws.log"
            echo "== $name, batch $batch, $device"
            if "$BENCH" "$DATA" --model "$model" --batch "$batch" --device "$device" --keep "$ws" >"$log" 2>&1; then
                grep '^BENCH_JSON ' "$log" | sed 's/^BENCH_JSON //' >>"$RESULTS"
                grep -E '^(data|end to end|network)' "$log"
            else
                echo "$device unavailable: $(grep -m1 -E 'Unavailable|NotInLibrary|error' "$log" || tail -1 "$log")"
                continue
            fi
            cpu="$WS/$name-$batch-cpu"
            if [ "$device" != cpu ] && [ -d "$cpu" ]; then
                "$BENCH" --compare "$cpu" "$ws" | tee -a "$log" | grep -v '^BENCH_JSON'
                grep '^BENCH_JSON ' "$log" | tail -1 | sed 's/^BENCH_JSON //' >>"$RESULTS"
            fi
        done
    done
done

python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = [r for r in rows if "device" in r]
print(f"\n{'backbone':<22} {'batch':>5} {'device':<9} {'end to end img/s':>16} {'network img/s':>14}")
for r in runs:
    print(f"{r['backbone']:<22} {r['batch']:>5} {r['device']:<9} {r['images_per_second']:>16.1f} "
          f"{r['network_images_per_second']:>14.1f}")
bad = [r for r in rows if "cosine_min" in r and r["cosine_min"] < 0.999]
for r in rows:
    if "cosine_min" in r:
        print(f"{r['b']}: cosine with the CPU min {r['cosine_min']:.6f}, median {r['cosine_median']:.6f}")
if bad:
    sys.exit(f"{len(bad)} device runs differ from the CPU's embeddings (cosine < 0.999)")
EOF
