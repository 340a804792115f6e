#!/usr/bin/env bash
# Trains several variants of the recipe at once, one train.py process each
# (on a GPU the tiny model's steps are bound by Python, so processes run side
# by side), and prints each variant's judged checkpoints.
#
#   bash sweep.sh DATA OUT VARIANTS [train.py arguments shared by all]
#
# VARIANTS is a file of lines "name train.py-arguments..." ('#' starts a
# comment). Each variant writes OUT/name/ (weights, training.json, train.log).
# Use --judge and --judge-every among the shared arguments to compare them.
set -uo pipefail
if [[ $# -lt 3 ]]; then
	echo "usage: sweep.sh DATA OUT VARIANTS [train.py arguments]" >&2
	exit 2
fi
data=$1 out=$2 variants=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
py=${REWORD_PYTHON:-python3}
mkdir -p "$out"
pids=()
while read -r name flags; do
	[[ -z "$name" || "$name" == \#* ]] && continue
	mkdir -p "$out/$name"
	# shellcheck disable=SC2086 # flags are words by design
	PYTHONUNBUFFERED=1 "$py" "$here/train.py" --data "$data" --out "$out/$name" "$@" $flags >"$out/$name/train.log" 2>&1 &
	pids+=($!)
	echo "sweep: $name ($flags) pid $!"
done <"$variants"
status=0
for p in "${pids[@]}"; do
	wait "$p" || status=1
done
for d in "$out"/*/; do
	echo "== $(basename "$d")"
	grep -E "^(judged|step |unet: deadline|done)" "$d/train.log" | sed -E 's/"(images|position_named|size_named)": [0-9]+, ?//g'
	grep -E "Error|Traceback" "$d/train.log" | head -3
done
exit $status
