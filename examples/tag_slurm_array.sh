#!/usr/bin/env bash
# Tag every video of a manifest (one path per line) as a SLURM job array.
#
#   find /data/videos -type f -name '*.mp4' | sort > manifest.txt
#   mkdir -p logs && JOB=$(sbatch --parsable examples/tag_slurm_array.sh)
#   sbatch --dependency=afterany:$JOB --wrap "ezclip merge tags/part-*.jsonl -o tags.jsonl"
#
# Every task runs this same script: `ezclip tag` takes --num-shards and --shard-index from
# SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_ID, so each tags a disjoint part of the manifest
# into its own file. A task that is requeued or resubmitted resumes its file (videos already
# tagged are skipped). Progress lines land in the task's log every 30 s (EZCLIP_PROGRESS_INTERVAL).
#
# Settings come from the environment (sbatch --export=ALL,LABELS=...,CHECKPOINT=...):
#   MANIFEST (manifest.txt), LABELS (k400), CHECKPOINT (empty: the default model),
#   OUT (tags), EZCLIP (the command, default ezclip), EZCLIP_TAG_ARGS (more flags, e.g. "-k 3").
#
#SBATCH --job-name=ezclip-tag
#SBATCH --array=0-99%25
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=08:00:00
#SBATCH --output=logs/tag-%A_%a.log
set -euo pipefail

MANIFEST=${MANIFEST:-manifest.txt}
LABELS=${LABELS:-k400}
OUT=${OUT:-tags}
EZCLIP=${EZCLIP:-ezclip}
mkdir -p "$OUT"

checkpoint=()
if [ -n "${CHECKPOINT:-}" ]; then checkpoint=(--checkpoint "$CHECKPOINT"); fi

# Exit code 1 means some videos could not be read: their error rows are in the file and the task
# did its job; anything else (2: usage, or a crash) fails the task.
status=0
# shellcheck disable=SC2086  # EZCLIP and EZCLIP_TAG_ARGS may hold several words
$EZCLIP tag --files-from "$MANIFEST" --labels "$LABELS" ${checkpoint[@]+"${checkpoint[@]}"} \
    --workers "$(( ${SLURM_CPUS_PER_TASK:-2} - 1 ))" \
    -o "$OUT/part-${SLURM_ARRAY_TASK_ID:?run this under sbatch --array}.jsonl" ${EZCLIP_TAG_ARGS:-} || status=$?
[ "$status" -le 1 ] || exit "$status"
