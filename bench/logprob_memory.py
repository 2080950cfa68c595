"""Peak memory of one update's log-probabilities, before and after chunking, at a real vocabulary.

One forward + backward of ``response_logprobs`` over ``--batch`` sequences of ``--prompt`` +
``--response`` tokens, on a Llama with a tiny hidden size (64) and a ``--vocab`` vocabulary
(128256: Llama 3's) in ``--dtype`` (bfloat16, as GPU training computes), so the logits dominate
memory as they do for real models. Each variant runs
in its own subprocess, and the peak resident memory (``ru_maxrss``) of that process, minus the
same process's peak after building the model and inputs, is reported:

    OMP_NUM_THREADS=1 python bench/logprob_memory.py --out bench/logprob_memory.json

``before``: the former formula (logits for every position, float32 ``log_softmax`` over the full
vocabulary); ``after``: ``darling.logprobs.response_logprobs`` (response positions only, float32
chunks recomputed in the backward).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path


def _plain(model, ids, attn, start, temperature):
    import torch

    position_ids = (attn.long().cumsum(-1) - 1).clamp_min(0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids).logits
    logits = logits[:, start - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, start:].unsqueeze(-1)).squeeze(-1)


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from darling.logprobs import response_logprobs

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(getattr(torch, args.dtype))
    ids = torch.randint(0, args.vocab, (args.batch, args.prompt + args.response))
    attn = torch.ones_like(ids)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn = _plain if variant == "before" else response_logprobs
    logp = fn(model, ids, attn, args.prompt, 1.0)
    logp.mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "peak_rss_mib": peak / 1024, "added_mib": (peak - baseline) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--response", type=int, default=512)
    parser.add_argument("--dtype", default="bfloat16", help="model dtype (bf16: GPU training)")
    parser.add_argument("--variant", choices=["before", "after"], default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.variant:  # the child: measure one variant, print its JSON
        print(json.dumps(run_variant(args.variant, args)))
        return
    results = []
    for variant in ("before", "after"):
        cmd = [sys.executable, __file__, "--variant", variant, "--vocab", str(args.vocab),
               "--batch", str(args.batch), "--prompt", str(args.prompt),
               "--response", str(args.response), "--dtype", args.dtype]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    logits_mib = args.batch * args.response * args.vocab * 4 / 2**20
    print(f"B={args.batch} P={args.prompt} T={args.response} V={args.vocab} {args.dtype}: "
          f"one float32 (B, T, V) tensor is {logits_mib:.0f} MiB")
    print(f"{'variant':8} {'peak RSS MiB':>13} {'added MiB':>10}")
    for r in results:
        print(f"{r['variant']:8} {r['peak_rss_mib']:13.0f} {r['added_mib']:10.0f}")
    if args.out:
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
