#!/usr/bin/env bash
# The README's first command: the main job, `ezclip tag`, in well under a minute, offline.
#   1. render 64 example clips (a ball moving right / left / growing / shrinking; ~2 s),
#   2. `ezclip tag` them with the small EZ-CLIP model shipped in examples/model/tiny-motion.ezclip
#      (3.7 MB: a tiny random-weight ViT plus EZ-CLIP prompts and adapters that
#      examples/train_example_model.sh trained on other clips of the same four classes):
#      CSV on stdout, then how many clips got the right label on stderr.
# No CLIP weights are downloaded. To train a model yourself, see examples/demo.sh.
# Set EZCLIP_QUICKSTART_DIR to choose where it works (default: examples/quickstart-run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${EZCLIP_QUICKSTART_DIR:-$here/quickstart-run}"
model="$here/model/tiny-motion.ezclip"
# The model is tiny: a second OpenMP thread only spins (and on a busy 2-core machine, slows it several times).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

python "$here/render_clips.py" "$work/clips" --train 0 --heldout 16

echo "ezclip quickstart: tagging 64 example clips with the shipped tiny EZ-CLIP model ($model)" >&2
# --template "{}": the model was trained on the bare labels. --workers 0: for 64 tiny clips, decoding in
# this process is quicker than starting a decoder process.
ezclip tag "$work/clips/heldout" --labels "$work/clips/labels.txt" --checkpoint "$model" \
  --template "{}" -k 2 --workers 0 -o "$work/tags.csv" --overwrite
cat "$work/tags.csv"
python "$here/score_tags.py" "$work/tags.csv" \
  --model "tiny random-weight ViT + EZ-CLIP prompts/adapters trained on the example clips, not CLIP weights"
