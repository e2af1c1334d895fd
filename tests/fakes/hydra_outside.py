"""The same Hydra script with the decorator outside ``@hydra.main``."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from provenance import recorded_run


@recorded_run(inputs={"train": "data.train_path"}, outputs={"model": "trainer.out"})
@hydra.main(version_base=None, config_path="hydra_conf", config_name="config")
def main(cfg: DictConfig) -> None:
    Path(cfg.trainer.out).write_text(f"{cfg.model.kind} after {cfg.trainer.epochs} epochs\n")


if __name__ == "__main__":
    main()
