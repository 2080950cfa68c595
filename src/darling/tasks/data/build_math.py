"""Write the CPU math task: ``data/math_{train,heldout}.jsonl``, two-term sums with checked answers.

    python -m darling.tasks.data.build_math [--out DIR]

The verifiable regime (spec section 3) needs problems the 135M CPU policy can partly solve: it
gets about 10% of two-term sums of 1-2 digit numbers right (docs/offline-assets), so the task
mixes three levels, each a ``category``:

- ``sum-1x1``: a + b with a, b in 1..9;
- ``sum-2x1``: a in 10..49, b in 1..9;
- ``sum-2x2``: a, b in 10..99.

Rows are ``{"id", "category", "prompt", "ground_truth"}`` (math-verify decides correctness).
Each level's ordered pairs are shuffled with ``random.Random(f"{SEED}:{level}")``; the first
``HELDOUT_PER_LEVEL`` are held out and the next ``TRAIN_PER_LEVEL`` that are not a held-out pair
in either order train, so no held-out sum (a + b or b + a) is trained on. Running this again
reproduces the files byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from darling.tasks.data.builder import build_main, write_jsonl

SEED = 2509
TRAIN_PER_LEVEL = 60
HELDOUT_PER_LEVEL = 10
LEVELS = {
    "sum-1x1": (range(1, 10), range(1, 10)),
    "sum-2x1": (range(10, 50), range(1, 10)),
    "sum-2x2": (range(10, 100), range(10, 100)),
}
"""category -> (values of a, values of b)."""
TEMPLATE = "What is {a} + {b}? Reply with just the number."
FILES = {"train": "math_train.jsonl", "heldout": "math_heldout.jsonl"}


def build_rows() -> dict[str, list[dict[str, str]]]:
    """``{"train": rows, "heldout": rows}``, level by level, in a fixed order."""
    splits: dict[str, list[dict[str, str]]] = {"train": [], "heldout": []}
    for level, (a_values, b_values) in LEVELS.items():
        pairs = [(a, b) for a in a_values for b in b_values]
        random.Random(f"{SEED}:{level}").shuffle(pairs)
        heldout = pairs[:HELDOUT_PER_LEVEL]
        unseen = {frozenset(pair) for pair in heldout}  # b + a is the same problem as a + b
        train = [pair for pair in pairs[HELDOUT_PER_LEVEL:] if frozenset(pair) not in unseen]
        chosen = {"heldout": heldout, "train": train[:TRAIN_PER_LEVEL]}
        for split, split_pairs in chosen.items():
            splits[split] += [
                {"id": f"{level}-{a}+{b}", "category": level,
                 "prompt": TEMPLATE.format(a=a, b=b), "ground_truth": str(a + b)}
                for a, b in split_pairs
            ]
    return splits


def write_split_files(out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {split: write_jsonl(out_dir / FILES[split], rows)
            for split, rows in build_rows().items()}


def main(argv: Sequence[str] | None = None) -> None:
    build_main(__doc__, write_split_files, argv)


if __name__ == "__main__":
    main()
