"""The torch adapter: ``torch.manual_seed`` and ``torch.cuda.manual_seed_all``.

``torch.manual_seed`` seeds every CUDA device itself: that call is part of it, not a second
seed. The adapter is patched once ``torch`` has finished importing, by when both are in place.
"""

from __future__ import annotations

from provenance.capture import seeds


def patch() -> None:
    seeds.wrap("torch", "manual_seed", "torch.manual_seed", seeds.given("seed"), ("torch.random",))
    seeds.wrap(
        "torch.cuda",
        "manual_seed_all",
        "torch.cuda.manual_seed_all",
        seeds.given("seed"),
        ("torch.cuda.random",),
    )
