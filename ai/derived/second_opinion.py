"""A second opinion: a shipped MOS head's score of each clip of a table, beside its own MOS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ai.common.files import InputError
from ai.mos import onnx_head
from ai.mos.mos_head import INPUTS, load_dataset, plcc, rmse, srocc

SCHEMA = pa.schema(
    [
        ("clip_name", pa.string()),
        ("mos", pa.float64()),  # the table's own MOS, on 1-5
        ("second_opinion_mos", pa.float64()),
        ("disagreement", pa.float64()),  # second opinion minus MOS
        ("agrees", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class SecondOpinion:
    table: pa.Table
    plcc: float
    srocc: float
    rmse: float
    agreement: float  # the fraction of clips that agree
    inputs_from: dict[str, str]  # model input -> the table column it came from, or "zero"


def materialize(
    table_path: Path, table: pa.Table, mos_scale: str, model: Path, max_disagreement: float
) -> SecondOpinion:
    """The model at ``model`` (a MOS head over the 11 head inputs) scores every clip."""
    exported = dict((p.key, p.value) for p in onnx_head.load(model).metadata_props)
    if exported.get("features", "").split(",") != list(INPUTS):
        raise InputError(f"{model}: not a MOS head over {','.join(INPUTS)}")
    data = load_dataset(table_path, table, mos_scale)
    opinion = np.round(onnx_head.run(model, data.x), 6)
    diff = np.round(opinion - data.y, 6)
    agrees = np.abs(diff) <= max_disagreement
    out = pa.table(
        {
            "clip_name": data.clips,
            "mos": np.round(data.y, 6),
            "second_opinion_mos": opinion,
            "disagreement": diff,
            "agrees": agrees,
        },
        schema=SCHEMA,
    )
    return SecondOpinion(
        out,
        round(plcc(opinion, data.y), 6),
        round(srocc(opinion, data.y), 6),
        round(rmse(opinion, data.y), 6),
        round(float(agrees.mean()), 6) if len(agrees) else 0.0,
        data.sources,
    )
