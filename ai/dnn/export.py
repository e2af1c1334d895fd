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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ai.common.cli import fail
from ai.common.files import InputError, sha256_file, write_json
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
    feeds: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
    reference: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    atol: float,
    model_id: str,
) -> bytes:
    """Checker, allowlist and parity, as the gate ``<model_id>_checks``; raises ``FatalCheck``.

    ``feeds`` is one input or several: the gate holds the worst drift over them.
    """
    batches = [feeds] if isinstance(feeds, Mapping) else list(feeds)
    data, worst = b"", 0.0
    try:
        for batch in batches:
            data, drift = check_export(model, batch, reference, atol)
            worst = max(worst, drift)
    except ExportCheckError as err:
        current_run().gate(f"{model_id}_checks", False, detail=str(err), atol=atol)
        raise FatalCheck(str(err)) from None
    current_run().gate(f"{model_id}_checks", True, max_abs_diff=round(worst, 9), atol=atol)
    return data


def check_opset(parser: argparse.ArgumentParser, opset: int) -> None:
    """The opsets the exporters write: 13 to 21; another is a usage error (exit 2)."""
    if not 13 <= opset <= 21:
        parser.error(f"--opset {opset}: supported opsets are 13 to 21")


def load_pinned(weights: Path, pin: str | None, architecture: str) -> tuple[str, Checkpoint]:
    """The upstream weights' sha256 and checkpoint, fatal when missing, off the pin (when one
    is given) or not of ``architecture``."""
    if not weights.is_file():
        raise FatalCheck(f"{weights}: no such weights file")
    digest = sha256_file(weights)
    if pin is not None and digest != pin:
        raise FatalCheck(f"{weights}: sha256 {digest} is not the pinned {pin}")
    checkpoint = load_checkpoint(weights)
    if checkpoint.hyper_parameters.get("architecture") != architecture:
        raise FatalCheck(f"{weights}: holds no {architecture} architecture")
    return digest, checkpoint


def upstream(repo: str, commit: str, weights_sha256: str) -> dict[str, str]:
    """The sidecar fields that say where converted upstream weights come from (MIT code)."""
    return {
        "license": "MIT",
        "license_url": license_url(repo, commit),
        "upstream_repo": repo,
        "upstream_commit": commit,
        "upstream_weights_sha256": weights_sha256,
    }


def license_url(repo: str, commit: str) -> str:
    return f"{repo}/blob/{commit}/LICENSE"


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


def sidecar_path(args: argparse.Namespace) -> Path | None:
    """``<output>.json``, unless --no-registry (then no sidecar is written)."""
    return None if args.no_registry else Path(args.output).with_suffix(".json")


def contract(
    args: argparse.Namespace,
    model_id: str,
    kind: str,
    data: bytes,
    input_name: str,
    output_name: str,
) -> dict[str, Any]:
    """The fields every exporter's sidecar opens with: what the model is and its I/O names."""
    return {
        "id": model_id,
        "kind": kind,
        "onnx": Path(args.output).name,
        "opset": args.opset,
        "sha256": sha256_bytes(data),  # the registry validator matches it
        "input_name": input_name,
        "output_name": output_name,
    }


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


def write_model(
    prog: str,
    args: argparse.Namespace,
    data: bytes,
    sidecar: dict[str, Any],
    row: dict[str, Any],
    kind: str | None = None,
) -> int:
    """Write ``--output`` with its sidecar and registry row (``publish``); the exit status.

    The row holds the sidecar's id, kind (or ``kind``, where the fork's row says another),
    opset and sha256, then ``row``'s fields.
    """
    head = {"id": sidecar["id"], "kind": kind or sidecar["kind"], "opset": args.opset}
    entry = {**head, "sha256": sidecar["sha256"], **row}
    try:
        publish(
            args, Path(args.output), data, sidecar, Path(args.output).with_suffix(".json"), entry
        )
    except InputError as err:
        return fail(prog, err)
    return 0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
