#!/usr/bin/env bash
# Checks that an interrupted train.py run, resumed, ends with exactly the
# weights of an uninterrupted one: a short run of the recipe (small data,
# 40 steps per part, a checkpoint every 10) once straight through, once
# stopped in the VAE, in each UNet cycle and killed outright, then resumed
# each time. Takes a few minutes on 2 cores; not part of `make test` (CI
# never trains).
#
#   bash models/tiny/train/check_resume.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
py=${REWORD_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
go run ./models/tiny/train/datagen -out "$work/data" -n 1500 -seed 7 >/dev/null
cd models/tiny/train
short=(--data "$work/data" --vae-steps 40 --unet-steps 40 --continue-steps 40 --checkpoint-every 10 --processes 2)

echo "== straight through"
"$py" train.py "${short[@]}" --out "$work/straight" >"$work/straight.log"

echo "== stopped and resumed"
expect_stop() { # runs train.py, which must stop with status 3
	set +e
	"$py" train.py "${short[@]}" --out "$work/resumed" "$@" >>"$work/resumed.log"
	local rc=$?
	set -e
	if [[ $rc -ne 3 ]]; then
		echo "check_resume: train.py $* ended with status $rc, want 3 (stopped as asked)" >&2
		exit 1
	fi
}
expect_stop --stop-after vae:20
expect_stop --resume --stop-after unet1:10
expect_stop --resume --stop-after unet2:30
# A kill at an arbitrary moment: whatever was saved last is where it resumes.
"$py" train.py "${short[@]}" --out "$work/resumed" --resume >>"$work/resumed.log" &
pid=$!
sleep 3
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pkill -9 -f "$work/resumed" 2>/dev/null || true # spawned UNet processes, if the kill came during a cycle
if [[ ! -d "$work/resumed/checkpoint" ]]; then
	echo "check_resume: the killed run had already finished; the kill tested nothing" >&2
fi
"$py" train.py "${short[@]}" --out "$work/resumed" --resume >>"$work/resumed.log"

"$py" - "$work/straight" "$work/resumed" <<'EOF'
import sys
import numpy as np
a, b = sys.argv[1:]
for name in ('vae', 'text_encoder', 'unet'):
    x, y = np.load(f'{a}/{name}.npz'), np.load(f'{b}/{name}.npz')
    if sorted(x.files) != sorted(y.files):
        sys.exit(f'{name}: different tensors')
    bad = [k for k in x.files if not np.array_equal(x[k], y[k])]
    if bad:
        sys.exit(f'check_resume: {name} differs after resuming in {len(bad)} of {len(x.files)} tensors, e.g. {bad[0]}')
    print(f'{name}: {len(x.files)} tensors identical')
EOF
echo "check_resume: resumed weights are identical to the uninterrupted run's"
