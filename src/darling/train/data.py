"""Prompts for each rollout step: a deterministic schedule owned by the data module.

Step ``t`` of a run with ``W`` processes and ``B`` prompts per process reads global positions
``p = t * W * B + rank * B + k`` of an endless stream of seeded permutations of the prompt file
(one permutation per pass). The prompts of a step therefore depend only on (seed, step), never
on how many processes share it: 2 ranks x B prompts see exactly the prompts of 1 rank x 2B, and
a resumed run continues the stream exactly. The position ``p`` is the rollouts' group id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from darling.errors import BadFileError, ConfigError
from darling.rollout.base import Rollouts
from darling.tasks.chat import chat_prompt
from darling.tasks.prompts import PromptRow, builtin_path, load_prompts


class PromptSchedule:
    """``rows_for_step(step, rank, world_size) -> [(group_id, row), ...]``."""

    def __init__(self, rows: Sequence[PromptRow], prompts_per_step: int, seed: int):
        if not rows:
            raise BadFileError("the prompt file holds no prompts")
        if prompts_per_step < 1:
            raise ConfigError(f"data.prompts_per_step must be >= 1, got {prompts_per_step}")
        self.rows, self.prompts_per_step, self.seed = list(rows), prompts_per_step, seed
        self._perms: dict[int, np.ndarray] = {}

    def rows_for_step(
        self, step: int, rank: int = 0, world_size: int = 1
    ) -> list[tuple[int, PromptRow]]:
        start = (step * world_size + rank) * self.prompts_per_step
        stop = start + self.prompts_per_step
        return [(p, self.rows[self._row_at(p)]) for p in range(start, stop)]

    def _row_at(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.rows))
        if epoch not in self._perms:
            rng = np.random.default_rng([self.seed, epoch])
            self._perms[epoch] = rng.permutation(len(self.rows))
        return int(self._perms[epoch][offset])


@dataclass
class RolloutBatch:
    """One rollout step's input, filled by ``darling.train.rollouts.RolloutCallback`` before
    ``training_step`` runs."""

    step: int = -1
    """The 0-based rollout step (the module's restored counter, not the loader's tick)."""
    rows: list[PromptRow] = field(default_factory=list)
    """The step's prompt rows; rollout i answers ``rows[rollouts.prompt_index[i]]``."""
    rollouts: Rollouts | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds of the callback's phases (``generate``)."""


class _StepTicks(torch.utils.data.IterableDataset):
    """An endless stream of empty rollout batches, one per step; the rollout callback fills each
    from the schedule by the module's restored step counter, so a resumed run needs no sampler
    state."""

    def __iter__(self) -> Iterator[RolloutBatch]:
        while True:
            yield RolloutBatch()


class PromptDataModule(L.LightningDataModule):
    """Owns the training prompt file and its schedule."""

    def __init__(self, data: Any, seed: int):
        super().__init__()
        self.spec, self.seed = data, seed
        self.train_rows = load_prompts(data.train_path or builtin_path("train"),
                                       data.prompt_template)
        self.schedule = PromptSchedule(self.train_rows, data.prompts_per_step, seed)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(_StepTicks(), batch_size=None)


def check_prompt_lengths(
    rows: Sequence[PromptRow],
    tokenizer: Any,
    max_tokens: int,
    system_prompt: str | None = None,
    source: Any = "the prompt file",
) -> None:
    """Raise ``ValueError`` naming every prompt whose chat-formatted token count exceeds
    ``max_tokens`` (its id, row and length), before anything is sampled."""
    too_long = []
    for index, row in enumerate(rows):
        text = chat_prompt(tokenizer, row, system_prompt)
        length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if length > max_tokens:
            too_long.append(f"id {row.id!r} (row {index + 1}): {length} tokens")
    if too_long:
        shown = too_long[:_MAX_SHOWN]
        hidden = len(too_long) - len(shown)
        more = f"\n  ... and {hidden} more" if hidden else ""
        raise BadFileError(
            f"{source}: {len(too_long)} prompt(s) longer than data.max_prompt_tokens={max_tokens}:"
            "\n  " + "\n  ".join(shown) + more + "\nShorten or drop them, or raise "
            "data.max_prompt_tokens if the model's context and memory allow it"
        )


_MAX_SHOWN = 5
