"""The ``random`` adapter: ``random.seed``, which seeds the module's shared generator.

A ``random.Random(seed)`` of the script's own is not wrapped: it is a class, which a wrapper
would change for ``isinstance`` and subclassing.
"""

from __future__ import annotations

from provenance.capture import seeds


def patch() -> None:
    seeds.wrap("random", "seed", "random.seed", seeds.given("a"))
