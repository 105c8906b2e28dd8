#!/bin/bash
# Queues a divided extract on Slurm: N shards as one job array, then the merge, which starts only
# when every shard has succeeded (--dependency=afterok) and is cancelled if one fails.
#
#   deploy/slurm/submit.sh N [sbatch options]
#
# The sbatch options (a partition, an account, --time) go to both jobs; --wait goes to the merge
# only, so the script returns when the merge has ended, with its exit code. The environment is
# extract.sbatch's (HEADSTART_DATA, HEADSTART_WORKSPACE, ...). Prints the two job ids.
set -euo pipefail
n=${1:?usage: submit.sh N [sbatch options]}
shift
if ! [ "$n" -ge 1 ] 2>/dev/null; then
    echo "submit.sh: N must be a number of shards, at least 1 (got $n)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
options=() wait=()
for option in "$@"; do
    if [ "$option" = --wait ]; then wait=(--wait); else options+=("$option"); fi
done
array=$(sbatch --parsable --array="0-$((n - 1))" "${options[@]}" "$here/extract.sbatch")
array=${array%%;*}
echo "extract: job array $array ($n shards)"
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    "${options[@]}" "${wait[@]}" "$here/merge.sbatch")
echo "merge: job ${merge%%;*}"
