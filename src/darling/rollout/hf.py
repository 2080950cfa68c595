"""Rollouts with Hugging Face ``generate`` on the policy itself (CPU and small GPU runs)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from darling.rollout.base import RolloutEngine, Rollouts, response_mask_from_eos


class HFRollout(RolloutEngine):
    """Samples from the live policy, so there are no weights to sync."""

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], group_ids: Sequence[Hashable], seed: int
    ) -> Rollouts:
        n = self.sampling.n_per_prompt
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(seed)
        out = self.model.generate(
            **enc,
            do_sample=True,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            top_k=0,
            max_new_tokens=self.sampling.max_new_tokens,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
        )  # (N, P + T)
        self.model.train(was_training)
        start = enc["input_ids"].shape[1]
        response_ids = out[:, start:]
        response_mask = response_mask_from_eos(response_ids, _eos_ids(self.model, tok))
        prompt_mask = enc["attention_mask"].repeat_interleave(n, dim=0)
        attention_mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1)
        texts = [
            tok.decode(ids[mask.bool()], skip_special_tokens=True).strip()
            for ids, mask in zip(response_ids, response_mask, strict=True)
        ]
        prompt_index = [i for i in range(len(prompts)) for _ in range(n)]
        return Rollouts(
            texts=texts,
            group_ids=[group_ids[i] for i in prompt_index],
            prompt_index=prompt_index,
            input_ids=out,
            attention_mask=attention_mask,
            response_mask=response_mask,
            response_start=start,
        )


def _eos_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = eos if isinstance(eos, list) else [eos]
    ids.append(tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})
