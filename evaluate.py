"""Evaluate a trained policy (or the base model) or compare runs. See README, "Evaluation"."""

import hydra
from omegaconf import DictConfig

from darling.eval.compare import compare
from darling.eval.config import register_eval_configs
from darling.eval.run import evaluate, log_comparison

register_eval_configs()


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.compare:
        result = compare(list(cfg.compare), cfg.eval.out_dir, baseline=cfg.baseline,
                         analysis=cfg.analysis, n_resamples=cfg.permutations, seed=cfg.seed,
                         collapsed_below=cfg.collapsed_below)
        log_comparison(cfg, result)
    else:
        evaluate(cfg, cfg.eval.out_dir)


if __name__ == "__main__":
    main()
