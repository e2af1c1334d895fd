"""The Lightning adapter: ``seed_everything``, recorded as the seed it returns, which is the
one it used: with no seed it reads ``PL_GLOBAL_SEED`` or picks one itself (``picked``).

``lightning`` re-exports the one function of ``lightning.fabric.utilities.seed`` in several
places, as the standalone ``lightning_fabric`` and ``pytorch_lightning`` do; each is wrapped.
"""

from __future__ import annotations

from provenance.capture import seeds

_LIGHTNING = (
    "lightning",
    "lightning.fabric",
    "lightning.fabric.utilities",
    "lightning.pytorch",
    "lightning.pytorch.utilities",
    "lightning.pytorch.utilities.seed",
)


def patch() -> None:
    seeds.wrap(
        "lightning.fabric.utilities.seed",
        "seed_everything",
        "lightning.seed_everything",
        seeds.returned("seed"),
        _LIGHTNING,
    )
