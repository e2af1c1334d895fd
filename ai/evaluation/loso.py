"""What both legacy LOSO evaluations share: the nine clips, the data, the models, the metrics.

The data root is a Netflix-style corpus: ``dis/<content>__<condition>.yuv`` against
``ref/<content>.yuv``, a content named ``<Clip>_<fps>`` (``BigBuckBunny_25fps``), and the
libvmaf JSON of every pair in a cache (``<data-root>/vmaf_cache`` unless told). A clip's
held-out data is every frame of its pairs: the canonical six features and libvmaf's VMAF, the
teacher score. The cache is only read here: a pair it lacks is an input error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out
from ai.common.files import InputError, write_json
from ai.features.libvmaf import CANONICAL_6, Cache
from ai.mos.mos_head import plcc, rmse, srocc
from provenance import atomic_write

CLIPS = (
    "BigBuckBunny",
    "BirdsInCage",
    "CrowdRun",
    "ElFuente1",
    "ElFuente2",
    "FoxBird",
    "OldTownCross",
    "Seeking",
    "Tennis",
)
# The fork's tiny architectures: layer widths, ReLU between layers (linear has none).
ARCHS: dict[str, tuple[int, ...]] = {
    "mlp_small": (6, 16, 8, 1),
    "mlp_medium": (6, 32, 16, 1),
    "linear": (6, 1),
}
METRICS = ("plcc", "srocc", "rmse")


def clip_of(content: str) -> str:
    """``BigBuckBunny_25fps`` -> ``BigBuckBunny``."""
    return content.split("_", 1)[0]


def fold_model_path(runs_dir: Path, arch: str, clip: str) -> Path:
    """The fork's layout: ``<runs>/loso_<arch>/fold_<clip>/<arch>_final.onnx``."""
    return runs_dir / f"loso_{arch}" / f"fold_{clip}" / f"{arch}_final.onnx"


def cache_dir(data_root: Path, given: Path | None) -> Path:
    return given if given is not None else data_root / "vmaf_cache"


@dataclass(frozen=True)
class ClipData:
    x: np.ndarray  # [N, 6] canonical-6, raw
    y: np.ndarray  # [N] libvmaf's per-frame VMAF
    pairs: int


def load_clips(data_root: Path, cache: Path) -> tuple[dict[str, ClipData], list[str]]:
    """Every clip's frames, in CLIPS order, and the pairs of contents outside the nine.

    Raises InputError for a missing root, a pair without its reference or cache entry, a
    frame without a feature or VMAF, and a clip of the nine with no pairs.
    """
    if not data_root.is_dir():
        raise InputError(f"{data_root}: no such folder")
    distorted = sorted((data_root / "dis").glob("*.yuv"))
    if not distorted:
        raise InputError(f"{data_root}: no distorted clips under dis/")
    libvmaf = Cache(cache, policy="read-only")
    xs: dict[str, list[np.ndarray]] = {clip: [] for clip in CLIPS}
    ys: dict[str, list[np.ndarray]] = {clip: [] for clip in CLIPS}
    ignored = []
    for path in distorted:
        content = path.stem.split("__", 1)[0]
        clip = clip_of(content)
        if clip not in xs:
            ignored.append(path.stem)
            continue
        if not (data_root / "ref" / f"{content}.yuv").is_file():
            raise InputError(f"{path}: no reference ref/{content}.yuv")
        result = libvmaf.lookup(path.stem)
        vmaf = result.frame_vmaf()
        if any(v is None for v in vmaf):
            raise InputError(f"{result.source}: a frame has no vmaf score")
        xs[clip].append(np.array([result.feature(f) for f in CANONICAL_6], dtype=np.float64).T)
        ys[clip].append(np.array(vmaf, dtype=np.float64))
    empty = [clip for clip in CLIPS if not xs[clip]]
    if empty:
        raise InputError(f"{data_root}: no pairs of clip(s) {', '.join(empty)} under dis/")
    data = {
        clip: ClipData(np.concatenate(xs[clip]), np.concatenate(ys[clip]), len(xs[clip]))
        for clip in CLIPS
    }
    return data, ignored


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """``{n, plcc, srocc, rmse}``; SROCC ranks ties by their average rank."""
    return {
        "n": len(target),
        "plcc": round(plcc(pred, target), 6),
        "srocc": round(srocc(pred, target), 6),
        "rmse": round(rmse(pred, target), 6),
    }


def aggregate(per_fold: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """Mean and sample standard deviation (ddof 1; 0 with one fold) of each metric."""
    if not per_fold:
        return None
    out: dict[str, float] = {}
    for metric in METRICS:
        values = np.array([fold[metric] for fold in per_fold.values()], dtype=np.float64)
        out[f"mean_{metric}"] = round(float(values.mean()), 6)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[f"std_{metric}"] = round(std, 6)
    return out


class Model:
    """An ONNX model in an onnxruntime CPU session, built from bytes.

    External tensors are read from the sibling ``<stem>.onnx.data`` whatever file name the
    model was saved with, so a renamed model still finds its weights.
    """

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data

        if not path.is_file():
            raise InputError(f"{path}: no such model")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:  # noqa: BLE001 - onnx raises many unrelated types for bad files
            raise InputError(f"{path}: not an ONNX model: {err}") from None
        external = [t for t in _tensors(proto) if uses_external_data(t)]
        self.weights: Path | None = None
        if external:
            self.weights = external_data_path(path)
            if not self.weights.is_file():
                raise InputError(f"{path}: its external weights {self.weights.name} are missing")
            for tensor in external:
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = self.weights.name
            try:
                load_external_data_for_model(proto, str(path.parent))
            except (OSError, ValueError) as err:
                raise InputError(f"{path}: its external weights cannot be read: {err}") from None
        import onnxruntime as ort  # seconds to import: only when a model is scored

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # deterministic reductions
        try:
            self.session = ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - onnxruntime's own types are not importable
            raise InputError(f"{path}: onnxruntime cannot load it: {err}") from None
        self.path = path
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The model's output for raw features; its shape must be the target's."""
        try:
            out = self.session.run(None, {self.input_name: x.astype(np.float32)})[0]
        except Exception as err:  # noqa: BLE001 - a model whose input is not [N, 6] float
            raise InputError(f"{self.path}: cannot be run on [N, 6] features: {err}") from None
        pred = np.asarray(out, dtype=np.float64)
        if pred.shape != target.shape:
            raise InputError(
                f"{self.path}: predicts shape {list(pred.shape)}, targets are {list(target.shape)}"
            )
        return pred


def _tensors(proto: Any) -> Iterable[Any]:
    """Every tensor of the model: initializers and node attributes, in subgraphs too."""
    import onnx

    found = []
    stack = [proto.graph]
    while stack:
        graph = stack.pop()
        found += list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    found.append(attribute.t)
                found += list(attribute.tensors)
                if attribute.type == onnx.AttributeProto.GRAPH:
                    stack.append(attribute.g)
                stack += list(attribute.graphs)
    return found


def external_data_path(model: Path) -> Path:
    return model.with_name(f"{model.stem}.onnx.data")


def external_data_of(models: Sequence[Path]) -> list[Path]:
    """The ``.onnx.data`` siblings present beside ``models``: inputs the evaluation reads."""
    return [p for p in map(external_data_path, models) if p.is_file()]


def score_folds(
    data: Mapping[str, ClipData], models: Mapping[str, Model]
) -> dict[str, dict[str, Any]]:
    """Each fold model on its held-out clip, in CLIPS order."""
    out = {}
    for clip in CLIPS:
        if clip in models:
            held = data[clip]
            out[clip] = scores(models[clip].predict(held.x, held.y), held.y)
    return out


def score_everywhere(data: Mapping[str, ClipData], model: Model) -> dict[str, Any]:
    """A single-split model on every clip, and on all clips' frames concatenated."""
    per_clip = {}
    preds, targets = [], []
    for clip in CLIPS:
        held = data[clip]
        pred = model.predict(held.x, held.y)
        per_clip[clip] = scores(pred, held.y)
        preds.append(pred)
        targets.append(held.y)
    return {
        "per_clip": per_clip,
        "all_clips_concat": scores(np.concatenate(preds), np.concatenate(targets)),
    }


# -- Markdown ----------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _row(name: str, metrics: Mapping[str, Any] | None) -> str:
    if metrics is None:
        return f"| {name} | — | — | — | — |"
    cells = [str(metrics["n"]), *(_num(metrics[m]) for m in METRICS)]
    return f"| {name} | " + " | ".join(cells) + " |"


def _mean_row(agg: Mapping[str, float] | None) -> str:
    if agg is None:
        return "| **mean ± std** | — | — | — | — |"
    cells = [f"{agg[f'mean_{m}']:.4f} ± {agg[f'std_{m}']:.4f}" for m in METRICS]
    return "| **mean ± std** |  | " + " | ".join(cells) + " |"


TABLE_HEAD = ["| {} | n | PLCC | SROCC | RMSE |", "|---|---:|---:|---:|---:|"]


def fold_table(per_fold: Mapping[str, Mapping[str, Any]], agg: Mapping[str, float] | None,
               clips: Sequence[str] = CLIPS) -> list[str]:  # fmt: skip
    """Per-fold rows (``—`` for a fold that is missing), then the mean ± std row."""
    lines = [TABLE_HEAD[0].format("held-out clip"), TABLE_HEAD[1]]
    lines += [_row(clip, per_fold.get(clip)) for clip in clips]
    lines.append(_mean_row(agg))
    return lines


def baseline_table(result: Mapping[str, Any]) -> list[str]:
    lines = [TABLE_HEAD[0].format("clip"), TABLE_HEAD[1]]
    lines += [_row(clip, metrics) for clip, metrics in result["per_clip"].items()]
    lines.append(_row("**all clips (concat)**", result["all_clips_concat"]))
    return lines


# -- the command line both evaluations share ---------------------------------------------------

DEFAULT_DATA_ROOT = Path("data/netflix")
DEFAULT_OUT = Path("runs/loso_eval")


def add_data_options(parser: Any) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help=f"the Netflix corpus: ref/, dis/ (default {DEFAULT_DATA_ROOT})",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="its libvmaf JSON per pair (default <data-root>/vmaf_cache)"
    )


def cache_input(args: Any) -> Path | None:
    """--cache-dir, recorded apart when given (the default lies in the data root, recorded)."""
    given: Path | None = args.cache_dir
    return given


def add_out_options(parser: Any, report: str) -> None:
    """--out, the report folder, and --manifest-out beside ``<out>/<report>.json``."""
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the report folder")
    add_manifest_out(parser, f"<out>/{report}.json")


def report_outputs(report: str) -> dict[str, Any]:
    """The ``recorded_run`` outputs of an evaluation: ``<out>/<report>.json`` and ``.md``."""
    return {
        "report": lambda a: a.out / f"{report}.json",
        "report_md": lambda a: a.out / f"{report}.md",
    }


def load(args: Any) -> tuple[dict[str, ClipData], list[str]]:
    """The clips of --data-root, their libvmaf JSON from --cache-dir (or the root's cache)."""
    return load_clips(args.data_root, cache_dir(args.data_root, args.cache_dir))


def write_report(out: Path, report_name: str, report: Mapping[str, Any], markdown: str) -> None:
    """``<out>/<report_name>.json`` (where the run's provenance is embedded), then its ``.md``."""
    write_json(out / f"{report_name}.json", report)
    atomic_write(out / f"{report_name}.md", markdown.encode("utf-8"))
