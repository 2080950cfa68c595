"""Build everything a training run needs from a composed config, validate it, and fit."""

from __future__ import annotations

import importlib.util
import logging
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from darling.errors import (
    BadFileError,
    ConfigError,
    ForgetFailedStart,
    MissingPathError,
    NotAFileError,
    NotAFolderError,
    RunExistsError,
    UnwritableError,
    write_problem,
)
from darling.eval.config import run_dir_of
from darling.extras import require_module
from darling.fusion import DEFAULT_DIVERSITY_FLOOR
from darling.models.checkpoints import METADATA_FILE, is_sharded_checkpoint
from darling.models.loading import DTYPES, checkpoint_dir, load_policy, transformers_model
from darling.quality.secrets import check_api_key_env
from darling.rewards import Reward
from darling.rollout.base import MAX_RUN_SEED, RolloutEngine, SamplingSpec
from darling.tasks.prompts import HUB_PREFIX
from darling.train.callbacks import (
    CheckpointOnSigterm,
    RolloutLog,
    RolloutTable,
    SavePolicy,
    StepMetrics,
    step_progress_bar,
)
from darling.train.checkpoint_io import AtomicCheckpointIO, remove_stale_temporaries
from darling.train.data import PromptDataModule, check_prompt_lengths
from darling.train.loggers import close_logger, uses_wandb
from darling.train.module import DarlingModule
from darling.train.plan import plan_run
from darling.train.quiet import silence_known_noise
from darling.train.rollouts import RolloutCallback
from darling.train.strategies import FSDP2Strategy

log = logging.getLogger(__name__)

ENGINES = {
    "hf": ("darling.rollout.hf:HFRollout", ("max_batch_sequences",)),
    "vllm": (
        "darling.rollout.vllm:VLLMRollout",
        ("gpu_memory_utilization", "enable_sleep_mode", "sleep_level", "max_prompt_tokens",
         "dtype", "enforce_eager", "cpu_kv_cache_gib"),
    ),
}
"""engine name -> (class, the rollout config fields it takes besides the sampling settings)"""



def validate(cfg: DictConfig) -> None:
    """Check the composed config before anything heavy happens; messages say what to change."""
    r, ro, o, t, d = cfg.reward, cfg.rollout, cfg.optim, cfg.trainer, cfg.data
    check_api_key_env(cfg.quality)
    missing = missing_value_errors(cfg) + _paper_preset_errors(cfg)
    if missing:
        raise ConfigError("invalid config:\n  " + "\n  ".join(missing + scale_errors(cfg)))
    per_process, batch_error = prompts_per_process(d, _process_count(t))
    checks = [
        (0.0 <= r.diversity_weight <= 1.0,
         f"reward.diversity_weight={r.diversity_weight}: must be in [0, 1]"),
        (0.0 <= r.diversity_floor <= 1.0,
         f"reward.diversity_floor={r.diversity_floor}: must be in [0, 1] "
         f"(spec default {DEFAULT_DIVERSITY_FLOOR})"),
        (ro.engine in ENGINES, f"rollout.engine={ro.engine!r}: choose one of {sorted(ENGINES)}"),
        (ro.n_per_prompt >= 2,
         f"rollout.n_per_prompt={ro.n_per_prompt}: must be >= 2 (the advantage is a rollout's "
         "reward minus its group's mean, so a group of one has advantage 0 and nothing is "
         "learned; use 4 or more)"),
        (ro.sleep_level in (1, 2), f"rollout.sleep_level={ro.sleep_level}: choose 1 (offload "
         "vLLM's weights to CPU memory while it sleeps) or 2 (discard them)"),
        (ro.temperature > 0, f"rollout.temperature={ro.temperature}: must be > 0"),
        (ro.top_p == 1.0,
         f"rollout.top_p={ro.top_p}: training needs top_p=1 (the PPO ratio and KL score the "
         "untruncated distribution, so nucleus sampling would make every rollout off-policy); "
         "evaluate.py may still use top_p < 1"),
        (ro.max_new_tokens >= 1, f"rollout.max_new_tokens={ro.max_new_tokens}: must be >= 1"),
        (d.prompts_per_step >= 1, f"data.prompts_per_step={d.prompts_per_step}: must be >= 1"),
        (batch_error is None, batch_error),
        (d.max_prompt_tokens >= 1, f"data.max_prompt_tokens={d.max_prompt_tokens}: must be >= 1"),
        (cfg.max_failed_steps >= 0, f"max_failed_steps={cfg.max_failed_steps}: must be >= 0"),
        (cfg.rollout_table_every_n_steps >= 0,
         f"rollout_table_every_n_steps={cfg.rollout_table_every_n_steps}: must be >= 0 (0: off)"),
        (cfg.model.lora.dropout == 0,
         f"model.lora.dropout={cfg.model.lora.dropout}: must be 0 in training (the old and new "
         "log-probs would use different dropout masks, so the on-policy PPO ratio is not 1)"),
        (o.lr > 0, f"optim.lr={o.lr}: must be > 0"),
        (o.kl_coef >= 0, f"optim.kl_coef={o.kl_coef}: must be >= 0"),
        (o.importance_cap is None or o.importance_cap > 0,
         f"optim.importance_cap={o.importance_cap}: must be > 0 (or null: off)"),
        (o.importance_cap is None or ro.engine != "hf",
         f"optim.importance_cap={o.importance_cap} with rollout=hf: the hf engine samples from "
         "the policy itself, so there is no sampler to correct for; use rollout=vllm or drop it"),
        (o.optimizer in ("adamw", "adamw_8bit"),
         f"optim.optimizer={o.optimizer!r}: choose adamw or adamw_8bit"),
        (o.ppo_epochs >= 1 and o.mini_batches >= 1,
         "optim.ppo_epochs and optim.mini_batches must be >= 1"),
        (o.mini_batches <= per_process * ro.n_per_prompt,
         f"optim.mini_batches={o.mini_batches} exceeds the rollouts per step and process "
         f"({per_process * ro.n_per_prompt})"),
        (t.max_steps >= 1, f"trainer.max_steps={t.max_steps}: must be >= 1"),
        (0 <= cfg.seed <= MAX_RUN_SEED,
         f"seed={cfg.seed}: must be in [0, {MAX_RUN_SEED}] (sampling seeds derive from it)"),
        (cfg.save.dtype is None or cfg.save.dtype in DTYPES,
         f"save.dtype={cfg.save.dtype!r}: choose one of {sorted(DTYPES)} or null (the model's)"),
        (cfg.save.max_shard_gb > 0, f"save.max_shard_gb={cfg.save.max_shard_gb}: must be > 0"),
        (t.checkpoint_every_n_steps >= 1,
         f"trainer.checkpoint_every_n_steps={t.checkpoint_every_n_steps}: must be >= 1"),
    ]
    errors = [message for ok, message in checks if not ok] + scale_errors(cfg)
    errors += [e for e in (_partial_error(r, k) for k in ("fusion", "quality_transform")) if e]
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    needed = []
    if ro.engine == "vllm":
        require_module("vllm")
        check_vllm(ro)
    if o.optimizer == "adamw_8bit":
        needed.append("bitsandbytes")
    if uses_wandb(cfg.logger):
        needed.append("wandb")
    for module in needed:
        require_module(module)
    for path in (d.train_path, d.eval_path):
        if path is not None and str(path).endswith(".parquet"):
            require_module("pandas", f"the Parquet prompt file {path}")
            require_module("pyarrow", f"the Parquet prompt file {path}")
        if path is not None and str(path).startswith(HUB_PREFIX):
            require_module("datasets", f"the hub dataset {path}")


def check_vllm(rollout: DictConfig) -> None:
    """An installed vLLM older than the engine needs, or ``rollout.enable_sleep_mode=true`` where
    vLLM has no sleep mode (its CPU build), is refused before anything is loaded (vLLM itself
    would refuse only when the engine starts)."""
    from darling.rollout.vllm import sleep_mode_available, sleep_mode_error, version_error

    error = version_error()
    if error:
        raise ConfigError(error)
    if rollout.enable_sleep_mode and not sleep_mode_available():
        raise ConfigError(sleep_mode_error())


def missing_value_errors(cfg: DictConfig) -> list[str]:
    """A group config with a required field left at ``???`` (``classifier=saved`` needs its
    directory, ``quality=reward_model`` its path, ``quality=judge`` its base_url and model)."""
    errors = []
    for group in MANDATORY_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        # missing_keys names keys from the root of the node's config (classifier.directory)
        keys = sorted(k if k.startswith(f"{group}.") else f"{group}.{k}"
                      for k in OmegaConf.missing_keys(node))
        errors += [
            f"{key} is required by {node.get('_target_', f'the {group} config')}: pass "
            f"{key}=<value> (see the comment in its conf/{group}/*.yaml)"
            for key in keys
        ]
    return errors


MANDATORY_GROUPS = ("classifier", "quality", "diversity")
"""Groups whose configs may leave a field for the user to fill (``???``)."""


def _paper_preset_errors(cfg: DictConfig) -> list[str]:
    """A paper preset without its prompt file, or a paper model (``model.paper_preset``) on the
    built-in trivia task: refused at once, naming the preset and what to pass."""
    if cfg.data.train_path is not None:
        return []
    if cfg.get("experiment"):
        return [f"+experiment={cfg.experiment} needs its prompts: pass data.train_path=<file or "
                f"hf:<dataset>> (see the comment at the top of conf/experiment/{cfg.experiment}"
                ".yaml)"]
    preset = cfg.model.get("paper_preset")
    if not preset:
        return []
    return [
        f"model={cfg.model.name} with data.train_path=null would train on the built-in trivia "
        f"task (90 short-answer prompts), not the paper's run. The paper's run: python train.py "
        f"+experiment={preset} data.train_path=<prompts> (conf/experiment/{preset}.yaml says "
        "what else to pass); or pass data.train_path=<your prompts> for another run"
    ]


def prompts_per_process(data: DictConfig, processes: int) -> tuple[int, str | None]:
    """``(prompts per rollout step per process, error or None)``: ``data.prompts_per_step``, or
    ``data.global_prompts_per_step / processes`` when the global batch is set."""
    total = data.get("global_prompts_per_step")
    if total is None:
        return int(data.prompts_per_step), None
    if total < processes or total % processes:
        return 1, (f"data.global_prompts_per_step={total} must be a multiple of the {processes} "
                   "training processes (trainer.devices x trainer.num_nodes), each of which "
                   "samples whole groups of its own prompts")
    return total // processes, None


def scale_errors(cfg: DictConfig) -> list[str]:
    """What the distributed path refuses (nothing heavy is loaded yet): no GPU for a GPU config
    (the hub-sized models bring trainer=fsdp and rollout=vllm), combinations not built, and a
    basic-launcher multirun whose children would start several processes each."""
    t, o = cfg.trainer, cfg.optim
    sharded = isinstance(t.strategy, DictConfig) and str(t.strategy.get("_target_", "")).endswith(
        "strategies.fsdp2")
    errors = []
    if t.accelerator in ("gpu", "cuda") and not _cuda_available():
        errors.append(
            f"trainer.accelerator={t.accelerator} but this machine has no GPU (model="
            f"{cfg.model.name} brings trainer=fsdp rollout=vllm for GPU nodes). On the CPU pass "
            "trainer=cpu rollout=hf with a small model (model=smollm2_135m or model=tiny), or "
            "trainer=fsdp trainer.accelerator=cpu trainer.devices=2 "
            "trainer.strategy.param_dtype=null to try the sharded path on CPU processes"
        )
    if sharded and str(t.precision) != "32-true":
        errors.append(
            f"trainer.precision={t.precision} with trainer=fsdp: keep 32-true (float32 master "
            "weights) and set the compute dtype with trainer.strategy.param_dtype"
        )
    if sharded and o.optimizer == "adamw_8bit":
        errors.append("optim.optimizer=adamw_8bit with trainer=fsdp is not built (bitsandbytes "
                      "does not take sharded DTensor parameters); use optim.optimizer=adamw")
    if _multirun_on_basic_launcher() and (_process_count(t) > 1):
        errors.append(
            f"a -m sweep with trainer.devices={t.devices} on Hydra's basic launcher: Lightning "
            "starts each run's extra processes with this command line, -m included, so every "
            "process would start the whole sweep. Launch each run as its own job with "
            "--config-dir sweeps --config-name slurm (hydra-submitit-launcher), or sweep with "
            "one process per run"
        )
    return errors


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _process_count(trainer: DictConfig) -> int:
    """Processes one run starts: devices (-1 or "auto": every visible GPU) times nodes."""
    devices = trainer.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if devices in (-1, "auto"):
        devices = _visible_gpus() if trainer.accelerator in ("gpu", "cuda", "auto") else 1
    elif not isinstance(devices, int):
        devices = len(devices)
    return max(1, devices) * trainer.num_nodes


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _multirun_on_basic_launcher() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.mode == RunMode.MULTIRUN and "BasicLauncher" in str(
        hydra_cfg.launcher.get("_target_", ""))



def resolve_checkpoint(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``None`` -> fresh run (refused if ``run_dir`` already holds checkpoints, so nothing is
    overwritten); ``last`` -> the run dir's ``checkpoints/last.ckpt``; ``auto`` -> that checkpoint
    if it exists, else a fresh run (one command that starts or continues a run, as a requeued job
    needs); else an existing checkpoint. A checkpoint is a file (one process, DDP) or, under
    ``trainer=fsdp``, a directory of shards with ``meta.pt``."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto":
        return resolve_checkpoint("last" if last.exists() else None, run_dir)
    if ckpt_path is None:
        if last.exists():
            raise RunExistsError(
                f"{run_dir} already holds a run ({last}). Pass ckpt_path=last (or auto) to resume "
                "it, or run_name=<new name> to start another"
            )
        return None
    path = last if ckpt_path == "last" else Path(ckpt_path)
    if path.is_dir():
        if not is_sharded_checkpoint(path):
            raise BadFileError(
                f"checkpoint directory {path} has no {METADATA_FILE}: it is not a complete "
                f"sharded checkpoint; resume from another one in {path.parent} with "
                "ckpt_path=<dir>"
            )
        return str(path)
    if not path.is_file():
        raise MissingPathError(f"ckpt_path={ckpt_path!r}: no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise BadFileError(
            f"checkpoint {path} is corrupt or truncated (not a torch zip archive); resume from "
            f"an earlier file in {path.parent} with ckpt_path=<file>"
        )
    return str(path)


def build_reward(spec: DictConfig) -> Reward:
    """The arm's reward rule from ``cfg.reward``: its fusion and quality transform are Hydra
    partials (``conf/reward/fusion/``, ``conf/reward/quality_transform/``)."""
    return Reward(
        fusion=instantiate(spec.fusion),
        diversity_weight=float(spec.diversity_weight),
        quality_transform=instantiate(spec.quality_transform),
        std_normalize=bool(spec.std_normalize),
        name=str(spec.name),
    )


def _partial_error(reward: DictConfig, key: str) -> str | None:
    """Why ``reward.<key>`` does not build a callable, or None."""
    node = reward.get(key)
    hint = (f"choose reward/{key}=<a file of conf/reward/{key}/>, or set reward.{key}._target_ "
            "to a function of darling.fusion with _partial_: true")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return f"reward.{key}={node!r}: {hint}"
    try:
        built = instantiate(node)
    except Exception as err:  # Hydra wraps import and argument errors alike
        return f"reward.{key}._target_={node._target_!r} does not build: {err}; {hint}"
    if not callable(built) or not node.get("_partial_", False):
        return f"reward.{key}._target_={node._target_!r} is not a partial function; {hint}"
    return None


RUN_DIR_FOLDERS = ("checkpoints", "policy", "rollouts")
RUN_DIR_FILES = ("config.yaml", "metrics.csv")


def check_writable(run_dir: Path) -> None:
    """Fail before training when the run directory cannot be written, or when an entry darling
    writes (``checkpoints/``, ``policy/``, ``rollouts/``, ``config.yaml``, ``metrics.csv``) has
    the wrong kind (a file where a folder goes, or the reverse)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UnwritableError(f"run directory {run_dir} is not writable: {err}") from err
    problem = write_problem(run_dir)
    if problem is not None:
        raise UnwritableError(f"run directory {run_dir} is not writable: {problem}")
    for name in RUN_DIR_FOLDERS:
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise NotAFolderError(
                f"{run_dir / name} is a file, but training writes a folder there: move or "
                "delete it, or pick another run_name"
            )
        problem = write_problem(run_dir / name) if (run_dir / name).is_dir() else None
        if problem is not None:  # found before training, not when the first checkpoint is due
            raise UnwritableError(f"{run_dir / name} is not writable: {problem}; make it "
                                  "writable or pick another run_name")
    for name in RUN_DIR_FILES:
        if (run_dir / name).is_dir():
            raise NotAFileError(
                f"{run_dir / name} is a folder, but training writes a file there: move or "
                "delete it, or pick another run_name"
            )


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout probability of ``model`` to 0; returns how many were positive.

    PPO needs ``log pi_old`` and ``log pi_theta`` from the same function: with dropout each
    forward draws its own mask, so the ratio of an unchanged policy is not 1 and ``approx_kl`` and
    the clip fraction measure noise. Covers ``nn.Dropout`` modules (peft's ``lora_dropout``
    included), float ``*dropout*`` attributes that attention modules copy from the config at
    build time (Llama's ``attention_dropout``) and the config fields themselves.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and module.p > 0:
            module.p, changed = 0.0, changed + 1
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float) and value > 0:
                setattr(module, name, 0.0)
                changed += 1
    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    for config in configs.values():
        for name, value in list(vars(config).items()):
            if "dropout" in name and isinstance(value, float) and value > 0:
                setattr(config, name, 0.0)
                changed += 1
    return changed


def build_engine(cfg: DictConfig) -> RolloutEngine:
    target, options = ENGINES[cfg.rollout.engine]
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    sampling = SamplingSpec(**{k: cfg.rollout[k] for k in SamplingSpec.__dataclass_fields__})
    return cls(sampling, **{k: cfg.rollout[k] for k in options})


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, float]:
    """Fit one run into ``run_dir``; returns the last logged metrics.

    Raises ``Preempted`` (a ``SystemExit`` with code 143) when a SIGTERM stopped the run before
    its last step, so that ``train.py && evaluate.py`` never evaluates an unfinished run.
    """
    run_dir = Path(run_dir)
    silence_known_noise()
    validate(cfg)
    if cfg.data.get("global_prompts_per_step") is not None:
        with open_dict(cfg):  # recorded in config.yaml as what each process samples
            processes = _process_count(cfg.trainer)
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
    strategy = _strategy(cfg.trainer.strategy)
    # trainer=fsdp: every rank builds the structure only; in DarlingModule.configure_model each
    # rank reads its rows of a checkpoint on disk, or rank 0 loads weights built in code once
    sharded = isinstance(strategy, FSDP2Strategy)
    skeleton = load_policy(cfg.model, seed=cfg.seed, on_meta=True) if sharded else None
    classifier = instantiate(cfg.classifier)
    plan_run(cfg, strategy, _process_count(cfg.trainer), skeleton and skeleton[0], classifier)
    policy, tokenizer = skeleton or load_policy(cfg.model, seed=cfg.seed)
    check_prompt_lengths(datamodule.train_rows, tokenizer, cfg.data.max_prompt_tokens,
                         cfg.data.system_prompt, cfg.data.train_path or "the built-in task")
    if disable_dropout(policy):
        log.info("set the policy's dropout probabilities to 0 (PPO's on-policy ratio must be 1)")
    engine = build_engine(cfg)
    engine.check_model(transformers_model(policy).config)
    module = DarlingModule(
        policy=policy,
        tokenizer=tokenizer,
        classifier=classifier,
        quality_fn=instantiate(cfg.quality),
        diversity_fn=instantiate(cfg.diversity),
        reward=build_reward(cfg.reward),
        optim=cfg.optim,
        temperature=cfg.rollout.temperature,
        max_failed_steps=cfg.max_failed_steps,
        run_meaning=run_meaning(cfg),
        policy_weights=partial(load_policy_weights, cfg.model, cfg.seed) if sharded else None,
        policy_files=checkpoint_dir(cfg.model) if sharded else None,
    )
    rollouts = RolloutCallback(engine, datamodule.schedule, cfg.seed, cfg.data.system_prompt)
    every_n = cfg.trainer.checkpoint_every_n_steps
    step_metrics = StepMetrics(cfg.trainer.log_every_n_steps)
    save_policy = SavePolicy(run_dir / "policy", dtype=cfg.save.dtype or cfg.model.dtype,
                             max_shard_gb=cfg.save.max_shard_gb)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategy,
        precision=cfg.trainer.precision,
        max_steps=cfg.trainer.max_steps,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=cfg.trainer.enable_progress_bar,
        num_sanity_val_steps=cfg.trainer.num_sanity_val_steps,
        limit_val_batches=0,
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        logger=instantiate(cfg.logger, save_dir=str(run_dir)) if cfg.logger else False,
        # single-file checkpoints are replaced atomically next to their target; the
        # model-parallel strategy writes sharded directories with its own writer
        plugins=[] if isinstance(strategy, ModelParallelStrategy) else [AtomicCheckpointIO()],
        callbacks=[
            rollouts,  # samples before each step, syncs the engine after it (before its metrics)
            step_metrics,  # before any checkpoint of the step: rows and checkpoints agree
            *([RolloutLog(run_dir / "rollouts")] if cfg.log_rollouts else []),
            *([RolloutTable(cfg.rollout_table_every_n_steps)]
              if cfg.rollout_table_every_n_steps > 0 else []),
            ModelCheckpoint(
                dirpath=checkpoints,
                filename="step{step:06d}",
                auto_insert_metric_name=False,
                every_n_train_steps=every_n,
                save_last=True,
                save_top_k=1,
                enable_version_counter=False,
            ),
            CheckpointOnSigterm(checkpoints / "last.ckpt", every_n),
            save_policy,
            *([step_progress_bar()] if cfg.trainer.enable_progress_bar else []),
        ],
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    interrupted = False
    ForgetFailedStart.work_began()  # an error from here on keeps the run directory as it is
    try:
        # weights_only: a checkpoint is loaded as tensors and plain values, never arbitrary pickles
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    except SIGTERMException:
        interrupted = True
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


def load_policy_weights(spec: DictConfig, seed: int) -> torch.nn.Module:
    """The policy with its weights (``load_policy``'s model, dropout off, as training uses it)."""
    policy = load_policy(spec, seed=seed)[0]
    disable_dropout(policy)
    return policy


SIGTERM_EXIT_CODE = 143
"""128 + SIGTERM(15): the shell's code for a process ended by SIGTERM."""


class Preempted(SystemExit):
    """A SIGTERM stopped training before its last step (``last.ckpt`` holds the stop)."""


RESUMABLE_KEYS = (
    "ckpt_path", "run_name", "trainer.max_steps", "trainer.enable_progress_bar",
    "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "logger", "log_rollouts",
    "rollout_table_every_n_steps", "max_failed_steps", "resume_any_config", "save",
)
"""Settings a resume may change: how long and how visibly the run goes, never what it trains."""


def run_meaning(cfg: DictConfig) -> dict[str, Any]:
    """The settings that make a run what it is: every resolved config key but
    ``RESUMABLE_KEYS``, flattened (``reward.diversity_weight``). Saved in each checkpoint."""
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    return {k: v for k, v in flat.items() if not _resumable(k)}


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{key}: {saved.get(key, '<unset>')!r} -> {current.get(key, '<unset>')!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, _MISSING) != current.get(key, _MISSING) and not _resumable(key)
        # a setting added to the schema after the run started, left at its null default
        and not (key not in saved and current.get(key) is None)
    ]


def check_checkpoint_config(ckpt: str, cfg: DictConfig) -> None:
    """Refuse to resume a checkpoint that is not a darling training checkpoint, or that was
    trained under other settings than ``cfg`` (``run_meaning``), unless
    ``resume_any_config=true``: ``ckpt_path=runs/<a grpo run>/checkpoints/last.ckpt`` in a darling
    run would otherwise continue another run's policy, optimiser and step count silently.

    A checkpoint written before checkpoints held their settings is compared with the
    ``config.yaml`` of its own run directory instead; with neither, it is accepted with a
    warning (nothing to compare)."""
    path = Path(ckpt)
    state = _checkpoint_state(path)
    darling = state.get("darling")
    if not isinstance(darling, dict) or "rollout_step" not in darling:
        raise BadFileError(
            f"ckpt_path={ckpt}: not a darling training checkpoint (no darling state); pass a "
            "checkpoint written by train.py (runs/<name>/checkpoints/*.ckpt)"
        )
    if cfg.get("resume_any_config", False):
        return
    saved = darling.get("config")
    source = "the checkpoint"
    if saved is None:
        run_config = run_dir_of(path) / "config.yaml"
        if not run_config.is_file():
            log.warning("%s holds no record of its settings (written before checkpoints did) and "
                        "has no config.yaml beside it: resuming it unchecked", ckpt)
            return
        saved = _flatten(OmegaConf.to_container(OmegaConf.load(run_config), resolve=True))
        source = str(run_config)
    differing = _differences(saved, run_meaning(cfg))
    if differing:
        raise ConfigError(
            f"ckpt_path={ckpt} was trained under other settings; these differ from {source}:\n  "
            + "\n  ".join(differing) + "\nResume it with its own settings, start a fresh run "
            "without ckpt_path, or pass resume_any_config=true to continue it under these"
        )


def _checkpoint_state(path: Path) -> dict[str, Any]:
    """The non-weight state of a checkpoint file (memory-mapped, weights untouched) or of a
    sharded checkpoint's ``meta.pt``; a file that is no Lightning checkpoint is refused."""
    import pickle

    file = path / METADATA_FILE if path.is_dir() else path
    try:
        state = torch.load(file, map_location="cpu", weights_only=True,
                           mmap=not path.is_dir())
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise BadFileError(
            f"ckpt_path={path}: not a readable checkpoint ({type(err).__name__}); resume from "
            f"an earlier file in {path.parent} with ckpt_path=<file>"
        ) from None
    if not isinstance(state, dict) or "pytorch-lightning_version" not in state:
        raise BadFileError(
            f"ckpt_path={path}: not a Lightning training checkpoint (no pytorch-lightning_version);"
            " pass a checkpoint written by train.py (runs/<name>/checkpoints/*.ckpt)"
        )
    return state


def check_resume_config(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume ``run_dir`` under a config that changes the run's meaning (seed, reward,
    sampling, model, data, optimiser...): every key but ``RESUMABLE_KEYS`` must equal the saved
    ``config.yaml`` (a key the saved config lacks may stay at null: a newer schema's default).
    The message lists the differing keys; the saved config is left untouched."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True))
    differing = _differences(saved, run_meaning(cfg))
    if differing:
        raise ConfigError(
            f"cannot resume {run_dir} under another config; these settings differ from its "
            "config.yaml:\n  " + "\n  ".join(differing) + "\nUse the run's own settings to "
            f"resume it, or a new run_name for a new run (a resume may change only "
            f"{', '.join(RESUMABLE_KEYS)})"
        )


_MISSING = object()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def _strategy(strategy: Any) -> Any:
    if isinstance(strategy, DictConfig) and "_target_" in strategy:
        return instantiate(strategy)
    return strategy


def hydra_run_dir() -> Path:
    """The current Hydra job's output directory."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)
