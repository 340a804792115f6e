#!/usr/bin/env bash
# Reproduces models/tiny from nothing: draws the training set with the Go
# scene drawer, trains the VAE, text encoder and UNet with the fixed, seeded
# recipe in train.py, and exports the ONNX files and model.json.
#
#   bash models/tiny/train/make_tiny_model.sh     (or: make tiny-model)
#
# Needs Go and Debian's PyTorch 1.13 for the export:
#   apt-get install -y python3-torch libopenblas0-pthread python3-numpy
# Training uses CUDA when the Python's torch sees a GPU, the CPU otherwise
# (all cores: the UNet in one data-parallel process per core); on 2 cores
# models/tiny/README.md ("On 2 CPU cores") gives the measured time; keep the
# machine otherwise idle. The run saves its progress every few minutes: run
# the same command again after an interruption and it resumes where the
# last checkpoint left off, ending with the same weights as an uninterrupted
# run (check_resume.sh checks that).
#
# Environment:
#   REWORD_PYTHON        Python with torch (default /usr/bin/python3)
#   REWORD_TINY_TRAINED  a directory train.py already wrote (e.g. on a GPU
#                        machine): skip data and training, export from it
#   REWORD_TINY_THREADS    torch CPU threads for the VAE (default: all cores)
#   REWORD_TINY_PROCESSES  data-parallel UNet processes (default: one per core, up to 4)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
py=${REWORD_PYTHON:-/usr/bin/python3}
work=models/tiny/train/work
trained=${REWORD_TINY_TRAINED:-}

if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
	echo "make_tiny_model: $py cannot import torch and numpy; install python3-torch python3-numpy libopenblas0-pthread or set REWORD_PYTHON" >&2
	exit 1
fi

# --resume when an interrupted run left its checkpoint in $1.
resume_flag() {
	if [[ -d "$1/checkpoint" ]]; then
		echo "== resuming the interrupted run in $1" >&2
		echo --resume
	fi
}

if [[ -z "$trained" ]]; then
	trained=$work/trained
	mkdir -p "$work"
	echo "== drawing the training set"
	go run ./models/tiny/train/datagen -out "$work/data" -n 60000 -seed 1
	# Two parts, each resumable: the VAE (its own run, so that a change to
	# the diffusion recipe never retrains it), then the text encoder and
	# UNet on the VAE's latents.
	vae=$work/vae
	if [[ ! -f "$vae/vae.npz" ]]; then
		echo "== training the VAE"
		(cd models/tiny/train && nice -n 10 "$py" train.py --vae-only --data "$root/$work/data" --out "$root/$vae" \
			--threads "${REWORD_TINY_THREADS:-0}" $(resume_flag "$vae"))
	fi
	echo "== training the text encoder and UNet (the long part)"
	(cd models/tiny/train && nice -n 10 "$py" train.py --data "$root/$work/data" --vae-weights "$root/$vae/vae.npz" \
		--out "$root/$trained" --threads "${REWORD_TINY_THREADS:-0}" --processes "${REWORD_TINY_PROCESSES:-0}" \
		$(resume_flag "$trained"))
fi
echo "== exporting ONNX files and model.json from $trained"
(cd models/tiny/train && "$py" export.py --trained "$(cd "$root" && realpath "$trained")" --model "$root/models/tiny")
cp "$trained/training.json" models/tiny/train/training.json
echo "== done: models/tiny"
