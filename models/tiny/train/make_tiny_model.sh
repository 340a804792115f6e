#!/usr/bin/env bash
# Reproduces models/tiny from nothing: draws the training set with the Go
# scene drawer, trains the VAE, text encoder and UNet with the fixed, seeded
# recipe in train.py (the second generation), fine-tunes them as the third
# generation did (the VAE's decoder; a UNet cycle with offset noise) and as
# the fourth did (a short cycle that holds the picture still under a colour
# swap) and the fifth did (a cycle that shows each edit its twin: the picture
# it should draw), and exports the ONNX files and model.json.
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
#   REWORD_TINY_TRAINED  a directory holding the second generation's weights
#                        (vae.npz, text_encoder.npz, unet.npz, training.json:
#                        what the first two parts write, e.g. on a GPU machine,
#                        or train/recover.py's copy of the second generation's
#                        files, which git history keeps): skip those parts and
#                        run the third and fourth generations' from it
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
if [[ -n "$trained" && ! -f "$trained/training.json" ]]; then
	echo "make_tiny_model: REWORD_TINY_TRAINED=$trained holds no finished run (no training.json)" >&2
	exit 1
fi

# --resume when an interrupted run left its checkpoint in $1.
resume_flag() {
	if [[ -d "$1/checkpoint" ]]; then
		echo "== resuming the interrupted run in $1" >&2
		echo --resume
	fi
}

mkdir -p "$work"
echo "== drawing the training set"
# Each scene with its exact colour swap and, where its caption names no
# background, its background twin (the fifth generation's twin terms); the
# scenes themselves are those drawn without the flags.
go run ./models/tiny/train/datagen -out "$work/data" -n 60000 -seed 1 -twins -background-twins
data=$root/$work/data
if [[ -z "$trained" ]]; then
	trained=$work/trained
	# The second generation in two parts, each resumable: the VAE (its own
	# run, so that a change to the diffusion recipe never retrains it), then
	# the text encoder and UNet on the VAE's latents.
	vae=$work/vae
	if [[ ! -f "$vae/vae.npz" ]]; then
		echo "== training the VAE"
		(cd models/tiny/train && nice -n 10 "$py" train.py --vae-only --data "$data" --out "$root/$vae" \
			--threads "${REWORD_TINY_THREADS:-0}" $(resume_flag "$vae"))
	fi
	if [[ ! -f "$trained/training.json" ]]; then
		echo "== training the text encoder and UNet (the long part)"
		(cd models/tiny/train && nice -n 10 "$py" train.py --data "$data" --vae-weights "$root/$vae/vae.npz" \
			--out "$root/$trained" --threads "${REWORD_TINY_THREADS:-0}" --processes "${REWORD_TINY_PROCESSES:-0}" \
			$(resume_flag "$trained"))
	fi
fi
trained=$(cd "$root" && realpath "$trained")

# The third generation: two fine-tunes of the second generation's weights
# (models/tiny/README.md, "Third generation"), each resumable. First the
# VAE's decoder alone, for the same encoder and so for the latents the UNet
# learned, with the cells objects cover weighted 5× (small stars kept their
# points through the VAE in 74 % instead of 26 %). One thread: the result then
# does not depend on the core count (thread counts change the order of sums);
# a CPU with other vector instructions still gives other weights
# (models/tiny/README.md, "Training").
decoder=$work/decoder
if [[ ! -f "$decoder/vae.npz" ]]; then
	echo "== fine-tuning the VAE's decoder"
	(cd models/tiny/train && nice -n 10 "$py" train.py --vae-only --data "$data" --vae-init-from "$trained/vae.npz" \
		--vae-decoder-only --vae-object-weight 4 --vae-steps 1000 --vae-lr 5e-4 --threads 1 --out "$root/$decoder" \
		$(resume_flag "$decoder"))
fi
# Then a third UNet cycle trained with offset noise, so that the initial
# noise's mean no longer chooses the background (the second generation never
# drew a white one).
third=$work/third
if [[ ! -f "$third/training.json" ]]; then
	echo "== a third UNet cycle with offset noise"
	(cd models/tiny/train && nice -n 10 "$py" train.py --data "$data" --vae-weights "$trained/vae.npz" --init-from "$trained" \
		--unet-steps 1000 --continue-steps 0 --unet-lr 3e-4 --unet-warmup 100 --grounding-cycle 1 --lowfreq-weights 0,0,0.3 \
		--out "$root/$third" --threads "${REWORD_TINY_THREADS:-0}" --processes "${REWORD_TINY_PROCESSES:-0}" \
		$(resume_flag "$third"))
fi
# The fourth generation: a short cycle from the third's weights that teaches
# the UNet to keep the picture under a colour swap (models/tiny/README.md,
# "Fourth generation"). A caption and its one-word colour swap are denoised
# side by side, the swap with the caption's attention maps put in as
# Prompt-to-Prompt puts them, and their noise predictions are pulled together
# outside the swapped object (--swap-consistency; colour swaps only, group 0:
# run on shape swaps too, the term cost shape swaps, 47 against 57 % right
# in bench edit); the cells
# ringing each object, not the objects' own, are held to the third
# generation's predictions (--preserve-weight on the ring), which keeps the
# sizes it drew.
fourth=$work/fourth
if [[ ! -f "$fourth/training.json" ]]; then
	echo "== a fourth UNet cycle: pictures that hold still under a colour swap"
	(cd models/tiny/train && nice -n 10 "$py" train.py --data "$data" --vae-weights "$trained/vae.npz" --init-from "$root/$third" \
		--unet-steps 600 --continue-steps 0 --unet-lr 2e-4 --unet-warmup 50 --grounding-cycle 1 --lowfreq-weights 0,0,0.3 \
		--swap-consistency 10 --swap-consistency-mode injected --swap-consistency-groups 0 \
		--preserve-weight 10 --preserve-region ring \
		--out "$root/$fourth" --threads "${REWORD_TINY_THREADS:-0}" --processes "${REWORD_TINY_PROCESSES:-0}" \
		$(resume_flag "$fourth"))
fi
# The fifth generation: a cycle from the fourth's weights that shows the
# edit the picture it should draw (models/tiny/README.md, "Fifth
# generation"). Beside the fourth's terms (the preserve term at 20), two twin
# terms: each scene's exact colour swap (datagen -twins) and, for scenes whose
# caption names no background, the same objects on a named background
# (-background-twins), each denoised under Prompt-to-Prompt's maps of the
# caption, along three unrolled sampler steps, and pulled towards the twin's
# latent. The VAE is the exported one (the fine-tuned decoder; its encoder,
# which alone makes the latents, is the second generation's). The twins'
# latent deltas are cached beside the data.
fifth=$work/fifth
if [[ ! -f "$fifth/training.json" ]]; then
	echo "== a fifth UNet cycle: the edits shown their twins"
	(cd models/tiny/train && nice -n 10 "$py" train.py --data "$data" --vae-weights "$root/$decoder/vae.npz" --init-from "$root/$fourth" \
		--latents "$root/$work/latents.npy" \
		--unet-steps 600 --continue-steps 0 --unet-lr 2e-4 --unet-warmup 50 --grounding-cycle 1 --lowfreq-weights 0,0,0.3 \
		--swap-consistency 10 --swap-consistency-mode injected --swap-consistency-groups 0 \
		--preserve-weight 20 --preserve-region ring \
		--twin-weight 10 --twin-deltas "$root/$work/twin_deltas.npy" \
		--twin-self-above-t 600 --twin-cross-above-t -1 --twin-cross-changed-above-t 600 --twin-unroll 3 --twin-unroll-stride 3 \
		--background-twin-weight 10 --background-twin-deltas "$root/$work/background_twin_deltas.npy" \
		--out "$root/$fifth" --threads "${REWORD_TINY_THREADS:-0}" --processes "${REWORD_TINY_PROCESSES:-0}" \
		$(resume_flag "$fifth"))
fi
echo "== exporting ONNX files and model.json"
(cd models/tiny/train && "$py" export.py --trained "$root/$fifth" --vae "$root/$decoder/vae.npz" --model "$root/models/tiny")
cp "$trained/training.json" models/tiny/train/training.json
cp "$decoder/vae.json" models/tiny/train/training-decoder.json
cp "$third/training.json" models/tiny/train/training-third.json
cp "$fourth/training.json" models/tiny/train/training-fourth.json
cp "$fifth/training.json" models/tiny/train/training-fifth.json
echo "== done: models/tiny"
