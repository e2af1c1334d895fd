"""The ``vmaf-train fit`` config: a YAML file naming the table, features, ridge, folds and gate.

Relative paths in it resolve from the config file's own folder, so a config and the table it
names can move together. Every key is checked; an unknown key or a value of the wrong type is
an input error that names the file, the key and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ai.common.files import InputError
from ai.mos.mos_head import GATES, INPUTS, MOS_SCALES, Gate

GATE_KEYS = ("preset", "min_plcc", "min_srocc", "max_rmse", "max_plcc_spread")
KEYS = (
    "table",
    "features",
    "mos_scale",
    "ridge",
    "folds",
    "seed",
    "split_seed",
    "model_id",
    "gate",
)


@dataclass(frozen=True)
class FitConfig:
    table: Path  # resolved from the config's folder
    table_as_written: str
    features: tuple[str, ...]
    mos_scale: str
    ridge: float
    folds: int
    seed: int
    split_seed: int
    model_id: str
    gate_preset: str
    gate: Gate

    def resolved(self) -> dict[str, Any]:
        """The config after defaults, as the report shows it."""
        return {
            "table": self.table_as_written,  # a path that does not depend on the folder
            "features": list(self.features),
            "mos_scale": self.mos_scale,
            "ridge": self.ridge,
            "folds": self.folds,
            "seed": self.seed,
            "split_seed": self.split_seed,
            "model_id": self.model_id,
            "gate": {"preset": self.gate_preset, **self.gate.as_record()},
        }


def read_document(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``, read with the safe loader (no tags that build objects)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a config file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8: {err}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark is not None else 0
        raise InputError(f"{path}:{line}: not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a YAML mapping, found {type(document).__name__}")
    return document


def load(path: Path) -> FitConfig:
    """The fit config in ``path``, every key checked and defaulted."""
    document = read_document(path)
    _known(path, "", document, KEYS)
    table = _typed(path, document, "table", str, None)
    if table is None:
        raise InputError(f"{path}: table: required (the per-clip feature parquet)")
    features = document.get("features", list(INPUTS))
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise InputError(f"{path}: features: expected a non-empty list of names")
    unknown = [f for f in features if f not in INPUTS]
    if unknown or len(set(features)) != len(features):
        raise InputError(
            f"{path}: features: {', '.join(unknown) or 'a name twice'}; known: {', '.join(INPUTS)}"
        )
    mos_scale = _typed(path, document, "mos_scale", str, "1-5")
    if mos_scale not in MOS_SCALES:
        raise InputError(f"{path}: mos_scale: {mos_scale!r} is not one of {', '.join(MOS_SCALES)}")
    folds = _typed(path, document, "folds", int, 5)
    if folds < 2:
        raise InputError(f"{path}: folds: must be at least 2, not {folds}")
    ridge = float(_typed(path, document, "ridge", float, 1.0))
    if ridge < 0:
        raise InputError(f"{path}: ridge: must not be negative, not {ridge}")
    preset, gate = _gate(path, document.get("gate", "real"))
    return FitConfig(
        table=path.parent / table,
        table_as_written=table,
        features=tuple(features),
        mos_scale=mos_scale,
        ridge=ridge,
        folds=folds,
        seed=_typed(path, document, "seed", int, 0),
        split_seed=_typed(path, document, "split_seed", int, 0),
        model_id=_typed(path, document, "model_id", str, "konvid_mos_head"),
        gate_preset=preset,
        gate=gate,
    )


def _gate(path: Path, value: Any) -> tuple[str, Gate]:
    """``gate: real`` (a preset), or a mapping of a preset and thresholds that override it."""
    if isinstance(value, str):
        value = {"preset": value}
    if not isinstance(value, dict):
        raise InputError(f"{path}: gate: expected a preset name or a mapping")
    _known(path, "gate.", value, GATE_KEYS)
    preset = _typed(path, value, "preset", str, "real", where="gate.")
    if preset not in GATES:
        raise InputError(f"{path}: gate.preset: {preset!r} is not one of {', '.join(GATES)}")
    base = GATES[preset]
    floats = {
        k: None if value[k] is None else _typed(path, value, k, float, None, where="gate.")
        for k in GATE_KEYS[1:]
        if k in value
    }
    # null turns a preset's threshold off; the PLCC floor is the one that cannot be.
    thresholds = {**base.as_record(), **{k: _float(v) for k, v in floats.items()}}
    min_plcc = thresholds.pop("min_plcc")
    if min_plcc is None:
        raise InputError(f"{path}: gate.min_plcc: every gate needs a PLCC floor")
    return preset, Gate(min_plcc, **thresholds)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _known(path: Path, where: str, document: dict[Any, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in document if k not in keys)
    if unknown:
        raise InputError(
            f"{path}: unknown key(s) {', '.join(where + k for k in unknown)}; "
            f"known: {', '.join(where + k for k in keys)}"
        )


def _typed(
    path: Path, document: dict[str, Any], key: str, kind: type, default: Any, where: str = ""
) -> Any:
    value = document.get(key, default)
    if value is None and default is None:
        return None
    # YAML's true/false are ints to Python; a float key takes an integer as written.
    accepted = (int, float) if kind is float else kind
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise InputError(
            f"{path}: {where}{key}: expected {kind.__name__}, found {type(value).__name__}"
        )
    return value
