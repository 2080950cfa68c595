"""``train``: one training run from a composed config, as a recipe.

Check (``validation``), place (``run_dir``, ``resume``), load the policy (``policy``), build
(``build``), fit. Each step's algorithm is ``DarlingModule.training_step``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from darling.errors import ForgetFailedStart
from darling.models.loading import load_policy, transformers_model
from darling.quality.secrets import check_api_key_env
from darling.quiet import silence_known_noise
from darling.rollout.engines import build_engine
from darling.train.build import build_callbacks, build_module, build_strategy, build_trainer
from darling.train.callbacks import SavePolicy, StepMetrics
from darling.train.checkpoint_io import remove_stale_temporaries
from darling.train.data import PromptDataModule, check_prompt_lengths
from darling.train.plan import plan_run
from darling.train.policy import disable_dropout
from darling.train.resume import check_checkpoint_config, check_resume_config
from darling.train.rollouts import RolloutCallback
from darling.train.run_dir import check_writable, resolve_checkpoint
from darling.train.strategies import FSDP2Strategy
from darling.train.validation import process_count, prompts_per_process, validate
from darling.wandb_runs import close_logger

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Fit one run into ``run_dir``; returns the last logged metrics.

    Raises ``Preempted`` (a ``SystemExit`` with code 143) when a SIGTERM stopped the run before
    its last step, so that ``train.py && evaluate.py`` never evaluates an unfinished run.
    """
    run_dir = Path(run_dir)
    silence_known_noise()
    check_api_key_env(cfg.quality)  # a key in place of its name is scrubbed from Hydra's files
    validate(cfg)
    if cfg.data.get("global_prompts_per_step") is not None:
        with open_dict(cfg):  # recorded in config.yaml as what each process samples
            processes = process_count(cfg.trainer)
            cfg.data.prompts_per_step = prompts_per_process(cfg.data, processes)[0]
    check_writable(run_dir)
    ckpt = resolve_checkpoint(cfg.ckpt_path, run_dir)
    if ckpt is not None:
        if not cfg.resume_any_config:
            check_resume_config(cfg, run_dir)
        check_checkpoint_config(ckpt, cfg)
    log.info("run %s in %s: model %s, reward %s (diversity weight %s), seed %s, %d steps%s",
             cfg.run_name, run_dir, cfg.model.name, cfg.reward.name, cfg.reward.diversity_weight,
             cfg.seed, cfg.trainer.max_steps, f", resuming {ckpt}" if ckpt else "")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    checkpoints = run_dir / "checkpoints"
    remove_stale_temporaries(checkpoints)

    datamodule = PromptDataModule(cfg.data, cfg.seed)
    strategy = build_strategy(cfg.trainer.strategy)
    # trainer=fsdp: every rank builds the structure only; in DarlingModule.configure_model each
    # rank reads its rows of a checkpoint on disk, or rank 0 loads weights built in code once
    sharded = isinstance(strategy, FSDP2Strategy)
    skeleton = load_policy(cfg.model, seed=cfg.seed, on_meta=True) if sharded else None
    classifier = instantiate(cfg.classifier)
    plan_run(cfg, strategy, process_count(cfg.trainer), skeleton and skeleton[0], classifier)
    policy, tokenizer = skeleton or load_policy(cfg.model, seed=cfg.seed)
    check_prompt_lengths(datamodule.train_rows, tokenizer, cfg.data.max_prompt_tokens,
                         cfg.data.system_prompt, cfg.data.train_path or "the built-in task")
    if disable_dropout(policy):
        log.info("set the policy's dropout probabilities to 0 (PPO's on-policy ratio must be 1)")
    engine = build_engine(cfg.rollout)
    engine.check_model(transformers_model(policy).config)
    module = build_module(cfg, policy, tokenizer, classifier, sharded)
    rollouts = RolloutCallback(engine, datamodule.schedule, cfg.seed, cfg.data.system_prompt)
    step_metrics = StepMetrics(cfg.trainer.log_every_n_steps)
    save_policy = SavePolicy(run_dir / "policy", dtype=cfg.save.dtype or cfg.model.dtype,
                             max_shard_gb=cfg.save.max_shard_gb)
    callbacks = build_callbacks(cfg, run_dir, rollouts, step_metrics, save_policy)
    trainer = build_trainer(cfg, run_dir, strategy, callbacks)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    ForgetFailedStart.work_began()  # an error from here on keeps the run directory as it is
    interrupted = _fit(trainer, module, datamodule, ckpt)
    finished = trainer.global_step >= cfg.trainer.max_steps
    if finished and (interrupted or step_metrics.steps_run == 0):
        # a SIGTERM in the last step ends fit before on_train_end; a resume of a finished run
        # runs no step at all: write the final policy either way
        save_policy.on_train_end(trainer, module)
    close_logger(trainer.logger)
    if finished and step_metrics.steps_run:
        log.info("done: %d steps; checkpoint %s, metrics %s, policy %s", trainer.global_step,
                 checkpoints / "last.ckpt", run_dir / "metrics.csv", run_dir / "policy")
    if interrupted and not finished:
        log.warning("stopped by SIGTERM at step %d of %d; resume with ckpt_path=last",
                    trainer.global_step, cfg.trainer.max_steps)
        raise Preempted(SIGTERM_EXIT_CODE)
    return step_metrics.last


def _fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule,
         ckpt: str | None) -> bool:
    """Lightning's fit from ``ckpt`` (None: from the start); True if a SIGTERM ended it."""
    try:
        # weights_only: a checkpoint is loaded as tensors and plain values, never arbitrary pickles
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    except SIGTERMException:
        return True
    return False


SIGTERM_EXIT_CODE = 143
"""128 + SIGTERM(15): the shell's code for a process ended by SIGTERM."""


class Preempted(SystemExit):
    """A SIGTERM stopped training before its last step (``last.ckpt`` holds the stop)."""
