"""Quality from a Hugging Face reward model (sequence classification with one logit).

Reward-model scores are signed (Athene-RM-8B's median raw score is about -2.2), so pair this with
``reward.quality_transform`` (group_min, affine or sigmoid) before multiplicative fusion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from darling.errors import ConfigError, MissingPathError, is_hub_name

PLACEMENTS = ("replicated", "offload")
"""Where a reward model lives under several ranks (``RewardModelQuality``'s ``placement``)."""


class RewardModelQuality:
    """``r_i = RM(prompt, completion)``, the first logit, scored on the RM's own chat template.

    Any ``AutoModelForSequenceClassification`` checkpoint whose first logit is the reward (one
    label) works: ``quality=reward_model quality.path=<hub name or local dir>``. A prompt row
    with chat messages is scored as the whole conversation plus the completion.
    """

    __name__ = "reward_model"

    def __init__(
        self,
        path: str,
        batch_size: int = 8,
        max_length: int = 2048,
        dtype: str = "float32",
        device: str | None = None,
        trust_remote_code: bool = False,
        placement: str = "replicated",
    ):
        """``placement``: where the model lives beside a sharded policy. ``replicated``: a full
        copy on every rank's device, always (an 8B model in bf16 is 16 GB per GPU: it fits
        beside an 8B policy sharded over 8 x 80 GB GPUs, see the memory plan); ``offload``: in
        host memory, copied to the device for each scoring call and back after it (the device
        memory is free during the update; costs two host-device copies per step)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).exists() and not is_hub_name(path):
            raise MissingPathError(
                f"quality.path={path!r}: no reward model there (a local folder of a "
                "sequence-classification model, or a hub name org/model with hub access)"
            )
        if placement not in PLACEMENTS:
            raise ConfigError(f"quality.placement={placement!r}: choose one of {PLACEMENTS}")
        self.path, self.batch_size, self.max_length = path, batch_size, max_length
        self.placement = placement
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path,
            dtype=getattr(torch, dtype),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
        ).to(self.device if placement == "replicated" else "cpu")
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(
        self, prompts: Sequence[str], completions: Sequence[str], rows: Sequence[Any], **kwargs
    ) -> list[float | None]:
        texts = [
            self.tokenizer.apply_chat_template(
                [*_conversation(p, row), {"role": "assistant", "content": c}], tokenize=False
            )
            for p, c, row in zip(prompts, completions, rows, strict=True)
        ]
        with self._on_device():
            return self._score(texts)

    @contextlib.contextmanager
    def _on_device(self):
        """The model on the scoring device for the block (``offload``: moved there and back)."""
        if self.placement == "replicated":
            yield
            return
        self.model.to(self.device)
        try:
            yield
        finally:
            self.model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _score(self, texts: list[str]) -> list[float | None]:
        scores: list[float | None] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=False,
            ).to(self.device)
            logits = self.model(**enc).logits[:, 0].float()  # (b,)
            scores.extend(logits.tolist())
        return scores


def _conversation(prompt: str, row: Any) -> list[dict[str, str]]:
    """The messages before the completion: the row's chat (``PromptRow.chat``) or the prompt."""
    chat = getattr(row, "chat", None)
    return list(chat) if chat else [{"role": "user", "content": prompt}]
