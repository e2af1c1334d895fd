"""The adapter of the standalone ``lightning_fabric`` and ``pytorch_lightning``: their
``seed_everything``, as for ``lightning`` (see provenance.capture.seeds.lightning)."""

from __future__ import annotations

from provenance.capture import seeds

_STANDALONE = (
    "lightning_fabric",
    "lightning_fabric.utilities",
    "pytorch_lightning",
    "pytorch_lightning.utilities",
    "pytorch_lightning.utilities.seed",
)


def patch() -> None:
    seeds.wrap(
        "lightning_fabric.utilities.seed",
        "seed_everything",
        "pytorch_lightning.seed_everything",
        seeds.returned("seed"),
        _STANDALONE,
    )
