"""Evaluate a trained policy (or the base model) or compare runs. See README, "Evaluation"."""

import sys

import hydra
from omegaconf import DictConfig

from darling.config import hydra_run_dir
from darling.errors import check_command_line, user_errors
from darling.eval.compare import compare
from darling.eval.config import check_eval_command_line, register_eval_configs
from darling.eval.run import eval_partitioner, evaluate, log_comparison

register_eval_configs()


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors(hydra_run_dir()):
        if cfg.compare:
            result = compare(list(cfg.compare), cfg.eval.out_dir, baseline=cfg.baseline,
                             analysis=cfg.analysis, n_resamples=cfg.permutations, seed=cfg.seed,
                             collapsed_below=cfg.collapsed_below,
                             signal_partition=(eval_partitioner(cfg) if cfg.signal_classifier
                                               else None))
            log_comparison(cfg, result)
        else:
            evaluate(cfg, cfg.eval.out_dir)


if __name__ == "__main__":
    check_command_line(sys.argv[1:])
    check_eval_command_line(sys.argv[1:])
    main()
