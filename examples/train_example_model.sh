#!/usr/bin/env bash
# Regenerate examples/model/tiny-motion.ezclip, the small EZ-CLIP model examples/quickstart.sh tags with.
#
#   bash examples/train_example_model.sh [OUT.ezclip]     (default: examples/model/tiny-motion.ezclip)
#
# It is `ezclip train` on the example clips (examples/render_clips.py: 192 training clips of a ball
# moving right, moving left, growing, shrinking) with a tiny random-weight backbone
# (examples/model/tiny-motion-backbone.json: a 2-layer ViT on 32x32 frames and a 16-wide text tower,
# so the checkpoint with its backbone embedded is 3.7 MB). 1000 steps at lr 1e-2 with no warmup,
# dropout or flips: learning left-vs-right is a plateau escape, and seed 2 escapes it well before
# step 1000. No CLIP weights are involved: the labels it gives are learned here, from these clips.
#
# Reproducible: same seed, same clips, one thread, so the learned tensors come out bit-identical on
# the same machine and torch build (examples/compare_models.py checks; only the run's random
# state token differs in the metadata). Another CPU or torch build may differ in the last bits.
# Took 10.5 minutes (628 s) on 2 CPU cores shared with other jobs; decoding the clips is most of the work.
set -euo pipefail
cd "$(dirname "$0")/.."  # paths relative to the repository, so none of this machine's end up in the file
out="${1:-examples/model/tiny-motion.ezclip}"
work="examples/model-run"  # ignored by git; removed when done
rm -rf "$work"
# One intra-op thread: the model is tiny, and on a busy 2-core machine a second OpenMP thread spins
# at every barrier (several times slower); it also pins the summation order for reproducibility.
export OMP_NUM_THREADS=1

python examples/render_clips.py "$work/clips"
ezclip train --train-list "$work/clips/train.txt" --out "$work/run" \
  --model examples/model/tiny-motion-backbone.json --pretrained none \
  --max-steps 1000 --batch-size 32 --lr 1e-2 --warmup-steps 0 \
  --drop-path 0 --attn-dropout 0 --prompt-dropout 0 --template "{}" --no-flip --seed 2 --device cpu
cp "$work/run/best.ezclip" "$out"
rm -rf "$work"
echo "wrote $out" >&2
