"""MOS score tables: reading them and summarising their distribution."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from ai.common.files import InputError, iter_jsonl

ACR_RANGE = (1.0, 5.0)
SCALE_RANGES = {"1-5": ACR_RANGE, "0-100": (0.0, 100.0)}


class ScoreTableError(InputError):
    """A scores CSV that cannot be used: the message says which row and why."""


@dataclass(frozen=True)
class ScoreSummary:
    clips: int
    mos_mean: float
    mos_std: float
    mos_min: float
    mos_max: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def read_scores(path: Path, mos_range: tuple[float, float] = ACR_RANGE) -> dict[str, float]:
    """Read ``clip_name,mos`` rows; a duplicate clip, a missing or off-scale MOS is an error."""
    scores: dict[str, float] = {}
    low, high = mos_range
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ScoreTableError(f"{path}: no such file") from None
    except OSError as err:
        raise ScoreTableError(f"{path}: cannot be read: {err.strerror or err}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"clip_name", "mos"} - set(reader.fieldnames or ())
        if missing:
            raise ScoreTableError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            clip = (row["clip_name"] or "").strip()
            try:
                mos = float(row["mos"])
            except (TypeError, ValueError):
                raise ScoreTableError(
                    f"{path}:{line}: mos {row['mos']!r} is not a number"
                ) from None
            if not clip:
                raise ScoreTableError(f"{path}:{line}: empty clip_name")
            if not (math.isfinite(mos) and low <= mos <= high):
                raise ScoreTableError(
                    f"{path}:{line}: mos {mos} is outside the {low:g}-{high:g} scale"
                )
            if clip in scores:
                raise ScoreTableError(f"{path}:{line}: clip {clip!r} appears twice")
            scores[clip] = mos
    if not scores:
        raise ScoreTableError(f"{path}: no rows")
    return scores


def summarise(scores: dict[str, float]) -> ScoreSummary:
    values = [scores[clip] for clip in sorted(scores)]
    return ScoreSummary(
        clips=len(values),
        mos_mean=round(statistics.fmean(values), 6),
        mos_std=round(statistics.pstdev(values), 6),
        mos_min=min(values),
        mos_max=max(values),
    )


def read_corpus_scores(
    path: Path, corpus: str | None, mos_range: tuple[float, float] = ACR_RANGE
) -> dict[str, float]:
    """Scores from corpus JSONL rows (an aggregate_corpora output, or a MOS shard).

    A row's clip is the basename of its ``src``; its MOS is ``mos_native`` where the row has
    been aggregated (``mos`` is then on the 0-100 axis), else ``mos``. ``corpus`` keeps only the
    rows of that ``corpus_source`` (or ``corpus``).
    """
    scores: dict[str, float] = {}
    for number, row in iter_jsonl(path):
        label = row.get("corpus_source", row.get("corpus"))
        if corpus is not None and label != corpus:
            continue
        where = f"{path}:{number}"
        src = row.get("src")
        if not isinstance(src, str) or not src:
            raise ScoreTableError(f"{where}: no src to name the clip by")
        clip = src.replace("\\", "/").rsplit("/", 1)[-1]
        mos = row.get("mos_native", row.get("mos"))
        if isinstance(mos, bool) or not isinstance(mos, (int, float)) or not math.isfinite(mos):
            raise ScoreTableError(f"{where}: mos {mos!r} is not a number")
        if not mos_range[0] <= mos <= mos_range[1]:
            raise ScoreTableError(
                f"{where}: mos {mos} is outside the {mos_range[0]:g}-{mos_range[1]:g} scale"
            )
        if clip in scores:
            raise ScoreTableError(f"{where}: clip {clip!r} appears twice")
        scores[clip] = float(mos)
    if not scores:
        wanted = f" of corpus {corpus!r}" if corpus is not None else ""
        raise ScoreTableError(f"{path}: no rows{wanted}")
    return scores
