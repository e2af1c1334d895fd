"""``vmaf-train``: the MOS-head pipeline as one command with subcommands.

``cli`` holds the app and the pipeline's subcommands (extract-features, fit, export, eval,
register); ``model_checks`` adds the checks of a model before it ships (validate-norm, profile,
audit-learned-filter, quantize-int8, cross-backend, bisect-model-quality). Importing the package
registers both, so ``ai.vmaf_train:main``, the console script, sees every subcommand.
"""

from __future__ import annotations

from ai.vmaf_train import model_checks as model_checks
from ai.vmaf_train.cli import PROG, app, main

__all__ = ["PROG", "app", "main"]
