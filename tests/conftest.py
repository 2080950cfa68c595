"""Shared fixtures: Hydra configs composed in-process for tiny, fast training runs."""

import csv
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from darling.train.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

TINY = [
    "model=tiny",
    "rollout.n_per_prompt=4",
    "rollout.max_new_tokens=6",
    "data.prompts_per_step=2",
    "trainer.max_steps=2",
    "trainer.enable_progress_bar=false",
    "trainer.checkpoint_every_n_steps=1",
    "classifier=answer",
    "quality=callable",
    "quality.path=tests.helpers:length_quality",
]
"""Overrides for a training run of a few seconds on the tiny model. A random model never
answers correctly, so quality comes from a text statistic that varies within groups."""

register_configs()


def save_tiny_checkpoint(directory: Path, seed: int, dtype: torch.dtype = torch.float32) -> str:
    """The tiny model (``seed``) saved the way the hub holds a model: ``dtype`` safetensors in
    several 2 MB files with an index, beside its tokenizer; returns the directory."""
    from transformers import AutoTokenizer

    from darling.models.loading import ModelSpec, load_policy
    from darling.models.smollm2 import smollm2_path

    model = load_policy(OmegaConf.structured(ModelSpec(source="tiny")), seed=seed)[0]
    model.to(dtype).save_pretrained(directory, max_shard_size="2MB")
    AutoTokenizer.from_pretrained(smollm2_path()).save_pretrained(directory)
    return str(directory)


@pytest.fixture
def compose_cfg():
    """``compose_cfg(*overrides)`` -> the composed training config."""

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


def metric_rows(run_dir):
    """Every row of ``<run_dir>/metrics.csv`` (none when the file does not exist)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))
