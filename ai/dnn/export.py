"""What the DNN exporters share: checkpoints as .npz, fatal checks, sidecars and registry rows.

The fork's checkpoints are Lightning ``.ckpt`` / torch ``.pth`` files; here a checkpoint is an
``.npz`` whose ``hyper_parameters`` member is a JSON text and whose other members are the state
dict, under the architecture's parameter names.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ai.common.files import InputError, write_json
from ai.common.onnx_checks import ExportCheckError, check_export
from ai.release.registry import register
from provenance import atomic_write, current_run

HYPER_PARAMETERS = "hyper_parameters"
DEFAULT_REGISTRY = Path("model/tiny/registry.json")


class FatalCheck(RuntimeError):
    """One of the fork's fatal checks failed (missing weights, wrong digest...): exit 1."""


def fatal(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 1


def npz_bytes(arrays: Mapping[str, np.ndarray], hyper_parameters: Mapping[str, Any]) -> bytes:
    """An ``.npz`` whose bytes depend only on its arrays: fixed entry times, sorted names."""
    members = {HYPER_PARAMETERS: np.array(json.dumps(hyper_parameters, sort_keys=True))}
    members.update(arrays)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            payload = io.BytesIO()
            np.lib.format.write_array(
                payload, np.ascontiguousarray(members[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, payload.getvalue())
    return buffer.getvalue()


@dataclass(frozen=True)
class Checkpoint:
    hyper_parameters: dict[str, Any]
    state: dict[str, np.ndarray]


def load_checkpoint(path: Path) -> Checkpoint:
    """The hyper-parameters and state dict of an ``.npz`` checkpoint (float64 arrays)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not an .npz checkpoint: {err}") from None
    raw = members.pop(HYPER_PARAMETERS, None)
    hyper: Any = {}
    if raw is not None:
        if raw.dtype.kind != "U" or raw.size != 1:
            raise InputError(f"{path}: hyper_parameters is not a JSON text")
        try:
            hyper = json.loads(str(raw.reshape(-1)[0]))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: hyper_parameters is not JSON: {err.msg}") from None
        if not isinstance(hyper, dict):
            raise InputError(f"{path}: hyper_parameters is not a JSON object")
    state = {}
    for name, array in members.items():
        if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
            raise InputError(f"{path}: {name} is not an array of finite floats")
        state[name] = array.astype(np.float64)
    return Checkpoint(hyper, state)


def require(
    path: Path, state: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]
) -> None:
    """Every parameter the architecture names, with its shape; raises ``InputError``."""
    missing = [n for n in shapes if n not in state]
    if missing:
        raise InputError(f"{path}: no parameter {missing[0]} (and {len(missing) - 1} more)")
    for name, shape in shapes.items():
        if state[name].shape != shape:
            raise InputError(
                f"{path}: {name} has shape {list(state[name].shape)}, not {list(shape)}"
            )


def check(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    reference: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    atol: float,
    model_id: str,
) -> bytes:
    """Checker, allowlist and parity, as the gate ``<model_id>_checks``; raises ``FatalCheck``."""
    try:
        data, drift = check_export(model, feeds, reference, atol)
    except ExportCheckError as err:
        current_run().gate(f"{model_id}_checks", False, detail=str(err), atol=atol)
        raise FatalCheck(str(err)) from None
    current_run().gate(f"{model_id}_checks", True, max_abs_diff=round(drift, 9), atol=atol)
    return data


def require_registry(args: argparse.Namespace) -> None:
    """The fork updates a registry that must already exist: a missing one is fatal."""
    if not args.no_registry and not Path(args.registry).is_file():
        raise FatalCheck(f"{args.registry}: no such registry (create it, or pass --no-registry)")


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=Path,
        default=DEFAULT_REGISTRY,
        help=f"the registry to update, which must exist (default: {DEFAULT_REGISTRY})",
    )
    parser.add_argument(
        "--no-registry", action="store_true", help="write neither the sidecar nor a registry row"
    )


def registry_path(args: argparse.Namespace) -> Path | None:
    return None if args.no_registry else Path(args.registry)


def publish(
    args: argparse.Namespace,
    onnx_path: Path,
    data: bytes,
    sidecar: dict[str, Any],
    sidecar_path: Path,
    row: dict[str, Any],
) -> None:
    """Write the ONNX; then, unless --no-registry, its sidecar and its registry row.

    With --no-registry the sidecar's fields go into the run's record instead, so the facts it
    would have held are still kept beside the ONNX.
    """
    atomic_write(onnx_path, data)
    if args.no_registry:
        current_run().record(**{f"model_{sidecar['id']}": sidecar})
        return
    write_json(sidecar_path, sidecar)
    register(Path(args.registry), row, onnx_path, sidecar_path, extra=row)
    current_run().record(**{f"model_{sidecar['id']}": sidecar})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
