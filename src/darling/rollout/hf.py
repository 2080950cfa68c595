"""Rollouts with Hugging Face ``generate`` on the policy itself (CPU and small GPU runs)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from darling.rollout.base import RolloutEngine, Rollouts, assemble_rollouts


class HFRollout(RolloutEngine):
    """Samples from the live policy, so there are no weights to sync.

    Each prompt is sampled in its own ``generate`` call under its own seed, so a group's
    rollouts do not depend on which other prompts share the batch (or the process).
    """

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seeds: Sequence[int]
    ) -> Rollouts:
        n, tok = self.sampling.n_per_prompt, self.tokenizer
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        prompt_ids, responses = [], []
        for prompt, seed in zip(prompts, seeds, strict=True):
            ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=torch.ones_like(ids, device=device),
                do_sample=True,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                top_k=0,
                max_new_tokens=self.sampling.max_new_tokens,
                num_return_sequences=n,
                pad_token_id=tok.pad_token_id,
            )  # (n, P_i + T_i)
            prompt_ids.append(ids[0].tolist())
            responses.append([row.tolist() for row in out[:, ids.shape[1] :].cpu()])
        self.model.train(was_training)
        return assemble_rollouts(
            prompt_ids, responses, group_ids, tok, _eos_ids(self.model, tok)
        )


def _eos_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = list(eos) if isinstance(eos, list) else [eos]
    ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})
