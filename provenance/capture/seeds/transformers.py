"""The transformers adapter: ``transformers.set_seed``, which seeds ``random``, numpy and, when
installed, torch.

It is patched once ``transformers.trainer_utils``, where it lives, is imported: the lazy
``transformers`` package resolves ``set_seed`` from there, so patching on the package's import
would import that module (and torch) for a script that never seeds.
"""

from __future__ import annotations

from provenance.capture import seeds


def patch() -> None:
    seeds.wrap(
        "transformers.trainer_utils",
        "set_seed",
        "transformers.set_seed",
        seeds.given("seed"),
        ("transformers",),
    )
