#!/usr/bin/env bash
# Tag a manifest with one `torchrun` per node: the nodes split the manifest into shards, and
# inside a node every GPU tags a share of the node's shard (rank 0 writes the node's one file).
#
#   sbatch --nodes=8 --gres=gpu:4 --ntasks-per-node=1 --wrap "srun examples/tag_torchrun_node.sh"
#   ezclip merge tags/node-*.jsonl -o tags.jsonl          # when every node is done
#
# Without SLURM, run it on each node with NODE_RANK=0..NUM_NODES-1 and NUM_NODES set.
# The nodes never talk to each other (torchrun --standalone), so one slow or failed node
# delays only its own file; rerunning a node resumes it.
#
# Settings from the environment: MANIFEST (manifest.txt), LABELS (k400), CHECKPOINT (empty: the
# default model), OUT (tags), GPUS (GPUs per node, default: all visible), TORCHRUN (the launcher,
# default torchrun), EZCLIP_TAG_ARGS (more flags for `ezclip tag`).
set -euo pipefail

MANIFEST=${MANIFEST:-manifest.txt}
LABELS=${LABELS:-k400}
OUT=${OUT:-tags}
TORCHRUN=${TORCHRUN:-torchrun}
NODE_RANK=${NODE_RANK:-${SLURM_NODEID:-0}}
NUM_NODES=${NUM_NODES:-${SLURM_NNODES:-1}}
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
GPUS=$(( GPUS > 0 ? GPUS : 1 ))
mkdir -p "$OUT"

checkpoint=()
if [ -n "${CHECKPOINT:-}" ]; then checkpoint=(--checkpoint "$CHECKPOINT"); fi

# Shards by node, given explicitly: inside a job array they would otherwise come from its variables.
status=0
# shellcheck disable=SC2086  # TORCHRUN and EZCLIP_TAG_ARGS may hold several words
$TORCHRUN --standalone --nproc-per-node "$GPUS" -m ezclip_cli \
    tag --files-from "$MANIFEST" --labels "$LABELS" ${checkpoint[@]+"${checkpoint[@]}"} \
    --num-shards "$NUM_NODES" --shard-index "$NODE_RANK" -o "$OUT/node-$NODE_RANK.jsonl" ${EZCLIP_TAG_ARGS:-} || status=$?
[ "$status" -le 1 ] || exit "$status"  # 1: some videos unreadable, their error rows are written
