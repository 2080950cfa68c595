"""Train a policy with DARLING. `python train.py` runs the offline CPU default; see README."""

import sys

import hydra
from omegaconf import DictConfig

from darling.config import hydra_run_dir
from darling.errors import check_command_line, user_errors
from darling.train.config import register_configs
from darling.train.run import train

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors(hydra_run_dir()):
        train(cfg, hydra_run_dir())


if __name__ == "__main__":
    check_command_line(sys.argv[1:])
    main()
