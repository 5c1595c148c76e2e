"""Compare two ezclip checkpoints tensor by tensor: did a retraining reproduce the shipped model?

    python examples/compare_models.py A.ezclip B.ezclip [--tolerance 0]

Prints the largest absolute difference over all tensors (learned parts and embedded backbone)
and the metadata keys that differ, on stderr. Exits 0 when every tensor is present in both and
differs by at most --tolerance (default 0: bit-identical), 1 otherwise. `extra` holds the run's
random state token, so it always differs between two runs and is not compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open

IGNORED_EXTRA = {"state_token"}  # uuid4 per save, by design


def read(path: Path) -> tuple[dict, dict[str, str]]:
    """Tensors (as torch) and metadata of a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        names = f.keys()  # safe_open is not a mapping: no `in f`
        return {k: f.get_tensor(k) for k in names}, dict(f.metadata() or {})


def compare(a: Path, b: Path) -> tuple[float, list[str], list[str]]:
    """(max abs difference over shared tensors, tensor keys not in both, metadata keys that differ)."""
    (ta, ma), (tb, mb) = read(a), read(b)
    missing = sorted(set(ta) ^ set(tb))
    worst = 0.0
    for key in set(ta) & set(tb):
        x, y = ta[key], tb[key]
        if x.shape != y.shape or x.dtype != y.dtype:
            missing.append(key)
            continue
        if not x.equal(y):
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    extra_a, extra_b = json.loads(ma.pop("extra", "{}")), json.loads(mb.pop("extra", "{}"))
    changed = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    keys = (set(extra_a) | set(extra_b)) - IGNORED_EXTRA
    changed += sorted(f"extra.{k}" for k in keys if extra_a.get(k) != extra_b.get(k))
    return worst, missing, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest allowed absolute difference")
    args = parser.parse_args()
    worst, missing, changed = compare(args.a, args.b)
    same = " (bit-identical)" if worst == 0 and not missing else ""
    print(f"max abs difference of the tensors: {worst:.3g}{same}", file=sys.stderr)
    if missing:
        print(f"tensors in only one file or of another shape: {', '.join(missing)}", file=sys.stderr)
    if changed:
        print(f"metadata that differs: {', '.join(changed)}", file=sys.stderr)
    sys.exit(0 if worst <= args.tolerance and not missing else 1)


if __name__ == "__main__":
    main()
