"""Check a composed training config before anything heavy happens; messages say what to change.

Nothing here writes a file or changes the config: ``validate`` reads it and raises.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from darling.config import missing_value_errors
from darling.errors import ConfigError
from darling.extras import require_module
from darling.fusion import DEFAULT_DIVERSITY_FLOOR
from darling.models.loading import DTYPES
from darling.quality.secrets import refuse_api_key
from darling.rollout.base import MAX_RUN_SEED
from darling.rollout.engines import ENGINES
from darling.tasks.prompts import HUB_PREFIX
from darling.wandb_runs import uses_wandb


def validate(cfg: DictConfig) -> None:
    """Check the composed config before anything heavy happens; messages say what to change."""
    r, ro, o, t, d = cfg.reward, cfg.rollout, cfg.optim, cfg.trainer, cfg.data
    refuse_api_key(cfg.quality)
    missing = missing_value_errors(cfg) + _paper_preset_errors(cfg)
    if missing:
        raise ConfigError("invalid config:\n  " + "\n  ".join(missing + scale_errors(cfg)))
    per_process, batch_error = prompts_per_process(d, process_count(t))
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
    if _multirun_on_basic_launcher() and (process_count(t) > 1):
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


def process_count(trainer: DictConfig) -> int:
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
