"""darling's training step against TRL's ``GRPOTrainer`` at equal settings, on the same machine.

Both train SmolLM2-135M-Instruct (the offline wheel, converted once) with LoRA r=16 / alpha 32 on
all linear layers, 2 prompts x 8 rollouts of at most 24 new tokens per optimiser step, temperature
1, top_p 1, no KL, one PPO epoch, AdamW lr 2e-4, on the built-in task's training prompts with the
answer-set quality. Arms:

    trl           TRL 1.16 GRPOTrainer (token-mean "dapo" loss, no std scaling: darling's GRPO)
    darling_grpo  python train.py reward=grpo
    darling       python train.py reward=darling (adds the learned partition)

Every (repetition, arm) runs in a fresh subprocess, arms alternated within a repetition, and
reports the wall time of each optimiser step (generation included); the table gives the median of
steps 2..N (step 1 warms caches) and darling's ratio to TRL within each repetition. Only ratios
measured in one run mean anything: absolute times on shared 2-core machines vary about 2x.

TRL is a bench-only dependency: ``.venv/bin/pip install -c constraints-cpu.txt 'trl==1.16.0'``.

    python bench/step_vs_trl.py --steps 6 --repeats 2 --out bench/step_vs_trl.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("trl", "darling_grpo", "darling")
ROLLOUTS, PROMPTS, NEW_TOKENS, LR = 8, 2, 24, 2e-4


def _trl_steps(steps: int, workdir: Path) -> list[float]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from darling.models.smollm2 import smollm2_path
    from darling.quality import AnswerSetQuality
    from darling.tasks.prompts import builtin_path, load_prompts

    rows = load_prompts(builtin_path("train"))
    quality = AnswerSetQuality()

    def answer_set(prompts, completions, row_index, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return quality(prompts, texts, [rows[i] for i in row_index])

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    dataset = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r.prompt}], "row_index": i}
         for i, r in enumerate(rows)]
    )
    args = GRPOConfig(
        output_dir=str(workdir),
        per_device_train_batch_size=PROMPTS * ROLLOUTS,
        num_generations=ROLLOUTS,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        loss_type="dapo",
        scale_rewards="none",
        learning_rate=LR,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    peft = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"],
    )
    seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            seconds.append(time.perf_counter() - self.start)

    trainer = GRPOTrainer(
        model=model, reward_funcs=answer_set, args=args, train_dataset=dataset,
        processing_class=tokenizer, peft_config=peft, callbacks=[StepTimer()],
    )
    trainer.train()
    return seconds


def _darling_steps(steps: int, workdir: Path, reward: str) -> list[float]:
    from hydra import compose, initialize_config_dir

    import darling.train.build as build
    from darling.train.config import register_configs
    from darling.train.run import train

    seconds: list[float] = []

    class TimedModule(build.DarlingModule):
        def on_train_batch_start(self, batch, batch_idx):
            self._bench_start = time.perf_counter()

        def on_train_batch_end(self, outputs, batch, batch_idx):
            seconds.append(time.perf_counter() - self._bench_start)

    register_configs()
    overrides = [
        f"reward={reward}", f"trainer.max_steps={steps}", f"rollout.n_per_prompt={ROLLOUTS}",
        f"rollout.max_new_tokens={NEW_TOKENS}", f"data.prompts_per_step={PROMPTS}",
        f"optim.lr={LR}", "optim.kl_coef=0", "logger=none", "log_rollouts=false",
        "trainer.enable_progress_bar=false", f"trainer.checkpoint_every_n_steps={steps + 1}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    build.DarlingModule = TimedModule
    train(cfg, workdir)
    return seconds


def worker(arm: str, steps: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        if arm == "trl":
            return _trl_steps(steps, Path(tmp))
        return _darling_steps(steps, Path(tmp), "grpo" if arm == "darling_grpo" else "darling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    if importlib.util.find_spec("trl") is None:
        sys.exit("TRL is not installed (bench-only): pip install -c constraints-cpu.txt "
                 "'trl==1.16.0'")
    if args.steps < 2:
        sys.exit("--steps must be >= 2 (step 1 is a warm-up and is left out)")
    arms = args.arms.split(",")
    runs = []
    for repeat in range(args.repeats):
        for arm in arms:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", arm, "--steps", str(args.steps)],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if out.returncode != 0:
                sys.exit(f"{arm} failed:\n{out.stderr[-3000:]}")
            seconds = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append({"repeat": repeat, "arm": arm, "step_seconds": seconds,
                         "median_s": statistics.median(seconds[1:])})
            print(f"repeat {repeat} {arm:13s} median step {runs[-1]['median_s']:6.2f} s "
                  f"(steps {', '.join(f'{s:.1f}' for s in seconds)})", flush=True)
    ratios = {}
    for arm in arms:
        if arm == "trl" or "trl" not in arms:
            continue
        ratios[arm] = [
            next(r["median_s"] for r in runs if r["repeat"] == k and r["arm"] == arm)
            / next(r["median_s"] for r in runs if r["repeat"] == k and r["arm"] == "trl")
            for k in range(args.repeats)
        ]
    print("\n| arm | median step (s), per repeat | ratio to TRL, per repeat |\n|---|---|---|")
    for arm in arms:
        medians = ", ".join(f"{r['median_s']:.2f}" for r in runs if r["arm"] == arm)
        ratio = ", ".join(f"{x:.2f}" for x in ratios.get(arm, [])) or "1"
        print(f"| {arm} | {medians} | {ratio} |")
    if args.out:
        args.out.write_text(json.dumps({
            "settings": {"steps": args.steps, "rollouts": ROLLOUTS, "prompts": PROMPTS,
                         "new_tokens": NEW_TOKENS, "lr": LR},
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "runs": runs, "ratio_to_trl": ratios,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
