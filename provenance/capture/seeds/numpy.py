"""The numpy adapter: ``numpy.random.seed`` (the legacy global generator) and
``numpy.random.default_rng`` (a generator of the script's own, as numpy advises).

``default_rng(seed)`` is in scope because it is how numpy asks a script to seed: a script that
follows that advice seeds nothing global, and without it would record nothing. Its seed may be
a ``SeedSequence``, recorded by its entropy and spawn key. ``SeedSequence`` and
``RandomState`` themselves are classes, which a wrapper would change for ``isinstance`` and
subclassing; the seed they take reaches the record when they are given to ``default_rng``.
"""

from __future__ import annotations

from provenance.capture import seeds


def patch() -> None:
    seeds.wrap("numpy.random", "seed", "numpy.random.seed", seeds.given("seed"))
    seeds.wrap("numpy.random", "default_rng", "numpy.random.default_rng", seeds.given("seed"))
