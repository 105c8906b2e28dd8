#!/usr/bin/env bash
# BENCHMARKS.md section 11: a divided extract on this machine.
#
#   benches/shards.sh shards            # 1 against 2 shards, one after the other, cold, on a
#                                       # 6000-file cifar10 subset (every 10th file per class)
#   SEED_WS=WS benches/shards.sh merge  # the merge of all 60000 cifar10 files
#
# `merge` needs a workspace WS holding a full default-backbone extract of ../shared/data/cifar10
# (benches/run.py --sections growth --growth-cold makes one): its store file is copied into each
# shard's workspace first (and its fingerprints), so the shards' extracts find their vectors
# cached and only list, hash and compact (the network is not what this part measures). Then three fresh merges are timed,
# one merge over the merged workspace, and the result is compared with a plain extract's bytes.
# Output: one line per run; everything goes to target/bench/shards.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/headstart
data=$(cd ../shared/data/cifar10 && pwd)
work=$PWD/target/bench/shards
mkdir -p "$work"

# Wall seconds and peak RSS of one headstart run, then its own summary fields.
timed() {
    local label=$1
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$bin" --json --quiet "$@" >"$work/out.json" || [ $? -eq 3 ]
    read -r wall kb <"$work/time"
    python3 - "$label" "$wall" "$kb" "$work/out.json" <<'EOF'
import json, sys
label, wall, kb, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = json.load(open(out))
n = s.get("computed", s.get("added"))
print(f"{label}: {wall:.1f} s wall, peak {kb / 1024:.0f} MiB, {s['images']} images"
      + (f", {n} computed, {n / wall:.1f} img/s wall, {s['images_per_second']:.1f} img/s network phase"
         if "computed" in s else f", {s['added']} vectors added, {s['already_merged']} already merged"))
EOF
}

# The cache files of two workspaces (manifest, store folders) are the same bytes.
same_cache() {
    # The audit's fingerprints are grouped into files as they were made: left out.
    sums() { (cd "$1" && find dataset.json embeddings -path embeddings/fingerprints -prune -o -type f -print | sort | xargs sha256sum); }
    diff <(sums "$1") <(sums "$2")
    echo "merged = plain extract, byte for byte ($(sums "$1" | wc -l) files)"
}

case "${1:-}" in
shards)
    subset=$work/cifar10-6000
    rm -rf "$subset" "$work"/one "$work"/two
    for dir in "$data"/*/*/; do
        rel=${dir#"$data"/}
        mkdir -p "$subset/$rel"
        find "$dir" -maxdepth 1 -type f | sort | awk 'NR % 10 == 1' | while read -r f; do
            ln -s "$f" "$subset/$rel"
        done
    done
    timed "1 shard (plain extract)" --workspace "$work/one" extract --data "$subset"
    timed "shard 0/2" --workspace "$work/two" extract --data "$subset" --shard 0/2
    timed "shard 1/2" --workspace "$work/two" extract --data "$subset" --shard 1/2
    timed "merge of 2" --workspace "$work/two" merge
    same_cache "$work/one" "$work/two"
    ;;
merge)
    seed=${SEED_WS:?set SEED_WS to a workspace with a full extract of cifar10}
    read -r key store < <(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['backbone']['key'], m['store'])" "$seed/dataset.json")
    rm -rf "$work"/m60k
    for ws in plain shards/0-of-2 shards/1-of-2; do
        mkdir -p "$work/m60k/$ws/embeddings/$key"
        cp "$seed/embeddings/$key/$store" "$work/m60k/$ws/embeddings/$key/"
        # The audit's fingerprints too (when the seed has them), or each extract would make the
        # missing ones by decoding every file.
        if [ -d "$seed/embeddings/fingerprints" ]; then
            cp -r "$seed/embeddings/fingerprints" "$work/m60k/$ws/embeddings/"
        fi
    done
    timed "plain extract, all cached" --workspace "$work/m60k/plain" extract --data "$data"
    for k in 0 1; do
        # Writes the shard's own store of its 30000 vectors (--workspace m60k holds shards/).
        timed "shard $k/2, all cached" --workspace "$work/m60k" extract --data "$data" --shard "$k/2"
    done
    du -sh "$work/m60k/shards"/*/embeddings
    for round in 1 2 3; do
        rm -rf "$work/m60k/dataset.json" "$work/m60k/embeddings" "$work/m60k/extract.lock"
        sync
        timed "merge of 60000, round $round" --workspace "$work/m60k" merge
    done
    timed "merge again over the merged workspace" --workspace "$work/m60k" merge
    same_cache "$work/m60k/plain" "$work/m60k"
    ;;
*)
    echo "usage: benches/shards.sh shards | SEED_WS=WS benches/shards.sh merge" >&2
    exit 2
    ;;
esac
