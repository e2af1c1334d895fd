"""A Hydra training script with a config group, run with overrides as Hydra users run it."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from provenance import current_run, recorded_run


@hydra.main(version_base=None, config_path="hydra_conf", config_name="config")
@recorded_run(
    inputs={"train": "data.train_path", "features": lambda cfg: cfg.data.features},
    outputs={"model": "trainer.out"},
)
def main(cfg: DictConfig) -> None:
    Path(cfg.trainer.out).write_text(
        f"{cfg.model.kind} alpha={cfg.model.alpha} after {cfg.trainer.epochs} epochs\n"
    )
    if cfg.trainer.end == "raise":
        raise RuntimeError("diverged")
    if cfg.trainer.end == "login":
        raise ConnectionError(f"the tracker refused the key {cfg.wandb.api_key}")
    if cfg.trainer.end == "exit":
        sys.exit(3)
    if cfg.trainer.end == "gate":
        current_run().gate("rmse", passed=False, value=0.9, threshold=0.5)
        sys.exit(5)


if __name__ == "__main__":
    main()
