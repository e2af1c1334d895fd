"""The ensemble seed gate: PROMOTE only when every seed and their mean clear the bar."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai.common.files import InputError, read_json_object

PROMOTE, HOLD = "PROMOTE", "HOLD"


def seed_report(loso_dir: Path, seed: int) -> Path:
    return loso_dir / f"loso_seed{seed}.json"


def read_seed_plcc(path: Path) -> float:
    return read_seed(path)[0]


def read_seed(path: Path) -> tuple[float, str | None]:
    """A seed report's ``mean_plcc``, and the SHA-256 of the corpus its run recorded, if any."""
    report = read_json_object(path)
    value = report.get("mean_plcc")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: mean_plcc is missing or not a finite number: {value!r}")
    block = report.get("run_provenance")
    inputs = block.get("inputs") if isinstance(block, dict) else None
    corpus = inputs.get("corpus") if isinstance(inputs, dict) else None
    digest = corpus.get("sha256") if isinstance(corpus, dict) else None
    return float(value), digest if isinstance(digest, str) else None


def common_corpus(reports: dict[int, tuple[float, str | None]]) -> str | None:
    """The corpus every seed was judged on; seeds judged on different corpora are an error."""
    digests = {digest for _, digest in reports.values()}
    if len(digests) > 1:
        raise InputError(
            "the seed reports were judged on different corpora: "
            + ", ".join(sorted(d or "none recorded" for d in digests))
        )
    return digests.pop()


@dataclass(frozen=True)
class SeedGate:
    min_mean_plcc: float = 0.95
    min_seed_plcc: float = 0.95
    max_spread: float = 0.005

    def judge(self, plccs: dict[int, float]) -> dict[str, Any]:
        values = list(plccs.values())
        mean = sum(values) / len(values)
        spread = max(values) - min(values)
        checks = {
            "mean_plcc": mean >= self.min_mean_plcc,
            "spread": spread <= self.max_spread,
            "every_seed": all(v >= self.min_seed_plcc for v in values),
        }
        return {
            "verdict": PROMOTE if all(checks.values()) else HOLD,
            "mean_plcc": round(mean, 6),
            "plcc_spread": round(spread, 6),
            "per_seed_plcc": {str(seed): plcc for seed, plcc in sorted(plccs.items())},
            "failing_seeds": sorted(s for s, v in plccs.items() if v < self.min_seed_plcc),
            "checks": checks,
            "thresholds": {
                "min_mean_plcc": self.min_mean_plcc,
                "min_seed_plcc": self.min_seed_plcc,
                "max_spread": self.max_spread,
            },
        }
