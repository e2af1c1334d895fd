"""``vmaf-train``'s pipeline subcommands: the MOS head from features to registry.

``extract-features`` (libvmaf cache and scores to a per-clip table), ``fit --config fit.yaml``
(cross-validate, gate and fit a head), ``export`` (to ONNX), ``eval`` (held-out rows, numpy and
optionally onnxruntime) and ``register`` (into a registry.json). Each is a recorded run of its
own that writes its ``--json`` report atomically with the run's provenance embedded, and exits
as the ai/ scripts do: 0 pass, 1 a gate failed (the report still written), 2 an input error.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import typer

from ai.common.files import InputError, read_json_object, read_parquet, write_json, write_parquet
from ai.corpus.scores import SCALE_RANGES, read_corpus_scores, read_scores
from ai.features.libvmaf import FULL_FEATURES, Cache, parse_features
from ai.features.tables import clip_stats, per_clip_schema
from ai.mos import fit_config
from ai.mos.mos_head import (
    INPUTS,
    MOS_SCALES,
    Dataset,
    checkpoint_bytes,
    cross_validate,
    fit,
    holdout_mask,
    load_checkpoint,
    load_dataset,
    plcc,
    rmse,
    srocc,
)
from ai.release.registry import register as add_to_registry
from provenance import atomic_write, current_run, recorded_run

PROG = "vmaf-train"
HELP = (
    "The MOS-head pipeline and the checks of a model before it ships, one subcommand each; "
    "every subcommand is a recorded run that writes its --json report with the run's "
    "provenance embedded, and exits 0 (pass), 1 (a gate failed, the report still written) "
    "or 2 (an input error)."
)

app = typer.Typer(
    name=PROG,
    help=HELP,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Report = Annotated[Path, typer.Option("--json", help="the JSON report to write")]


def _fail(command: str, err: Exception) -> int:
    """An input error in one line, the way every ai/ script reports it, and its exit code."""
    print(f"{PROG} {command}: error: {err}", file=sys.stderr)
    return 2


def _select(data: Dataset, features: tuple[str, ...]) -> Dataset:
    """The dataset with only ``features`` of the head's inputs, in that order."""
    index = [INPUTS.index(f) for f in features]
    sources = {f: data.sources[f] for f in features}
    return Dataset(data.clips, data.x[:, index], data.y, sources)


@app.command("extract-features")
@recorded_run(
    inputs={"cache": "cache_dir", "scores": "scores"},
    outputs={"table": "out", "report": "json_report"},
    embed_into="report",
)
def extract_features(
    cache_dir: Annotated[Path, typer.Option(help="the libvmaf cache, <clip_name>.json per clip")],
    scores: Annotated[Path, typer.Option(help="CSV of clip_name,mos, or corpus JSONL")],
    out: Annotated[Path, typer.Option(help="the per-clip parquet to write")],
    json_report: Report,
    corpus: Annotated[str | None, typer.Option(help="with JSONL scores: this corpus")] = None,
    mos_scale: Annotated[str, typer.Option(help="the scores' scale: 1-5 or 0-100")] = "1-5",
    features: Annotated[str, typer.Option(help="comma-separated features")] = ",".join(
        FULL_FEATURES
    ),
) -> int:
    """Per-clip feature statistics from a libvmaf cache and the clips' scores."""
    try:
        names = parse_features(features)
        if mos_scale not in SCALE_RANGES:
            raise InputError(f"--mos-scale {mos_scale}: expected one of {', '.join(SCALE_RANGES)}")
        if not cache_dir.is_dir():
            raise InputError(f"{cache_dir}: no such folder")
        mos_range = SCALE_RANGES[mos_scale]
        if scores.suffix == ".jsonl":
            by_clip = read_corpus_scores(scores, corpus, mos_range)
        else:
            by_clip = read_scores(scores, mos_range)
    except (InputError, argparse.ArgumentTypeError) as err:
        return _fail("extract-features", err)
    cache = Cache(cache_dir)
    rows, failed = [], []
    for clip in sorted(by_clip):
        try:
            rows.append(
                {"clip_name": clip, "mos": by_clip[clip], **clip_stats(cache.lookup(clip), names)}
            )
        except InputError as err:
            failed.append({"clip_name": clip, "error": str(err)})
            print(f"{PROG} extract-features: {err}", file=sys.stderr)
    table = pa.Table.from_pylist(rows, schema=per_clip_schema(names))
    write_parquet(out, table)
    counts = {
        "clips_in_scores": len(by_clip),
        "row_count": table.num_rows,
        "failed_count": len(failed),
    }
    current_run().record(features=list(names), **counts, failed=failed)
    write_json(
        json_report,
        {
            "command": "extract-features",
            "table": out.name,
            "features": list(names),
            "mos_scale": mos_scale,
            **counts,
            "failed": failed,
            "verdict": "FAIL" if failed else "PASS",
        },
    )
    return 1 if failed else 0


@app.command("fit")
@recorded_run(
    config="config",
    outputs={"model": "out_model", "report": "json_report"},
    embed_into="report",
)
def fit_head(
    config: Annotated[Path, typer.Option(help="the fit config (YAML)")],
    out_model: Annotated[Path, typer.Option(help="the .npz checkpoint to write")],
    json_report: Report,
) -> int:
    """Cross-validate a MOS head as the config says, gate it and fit it once."""
    run = current_run()
    try:
        cfg = fit_config.load(config)
        run.resolved_config(cfg.resolved())  # what the fit went on with, defaults filled
        run.add_input("table", cfg.table)  # named by the config, not on the command line
        data = _select(
            load_dataset(cfg.table, read_parquet(cfg.table), cfg.mos_scale), cfg.features
        )
        train = np.flatnonzero(~holdout_mask(data.clips, cfg.split_seed))
        folds, metrics = cross_validate(data, train, cfg.seed, cfg.folds, cfg.ridge)
    except InputError as err:
        return _fail("fit", err)
    head = fit(data.x[train], data.y[train], cfg.ridge)
    checks = cfg.gate.check(metrics)
    passed = all(checks.values())
    run.gate("mos_head", passed, **metrics, **cfg.gate.as_record())
    rows = {"total": len(data.clips), "train": len(train), "held_out": len(data.clips) - len(train)}
    run.record(model_id=cfg.model_id, rows=rows, **metrics)
    atomic_write(out_model, checkpoint_bytes(head, cfg.features))
    write_json(
        json_report,
        {
            "command": "fit",
            "id": cfg.model_id,
            "kind": "mos_head",
            "checkpoint": out_model.name,
            "config": cfg.resolved(),
            "input_sources": data.sources,
            "rows": rows,
            "folds": folds,
            **metrics,
            "gate": {"preset": cfg.gate_preset, **cfg.gate.as_record(), "checks": checks},
            "verdict": "PASS" if passed else "FAIL",
        },
    )
    return 0 if passed else 1


@app.command("export")
@recorded_run(
    inputs={"checkpoint": "checkpoint"},
    outputs={"onnx": "out", "report": "json_report"},
    embed_into="report",
)
def export(
    checkpoint: Annotated[Path, typer.Option(help="the .npz checkpoint")],
    out: Annotated[Path, typer.Option(help="the .onnx file to write")],
    json_report: Report,
    model_id: Annotated[str | None, typer.Option(help="default: the checkpoint's stem")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset, 13 to 21")] = 17,
) -> int:
    """Export a checkpoint to ONNX; the report is the model's sidecar."""
    from ai.mos import (
        onnx_head,  # onnx takes seconds to import: only export and eval --onnx need it
    )

    model_id = model_id or checkpoint.stem
    try:
        if not 13 <= opset <= 21:
            raise InputError(f"--opset {opset}: supported opsets are 13 to 21")
        head, features = load_checkpoint(checkpoint)
        model = onnx_head.build(head, features, opset, model_id)
    except InputError as err:
        return _fail("export", err)
    data = model.SerializeToString(deterministic=True)
    atomic_write(out, data)
    sidecar = onnx_head.model_sidecar(model_id, "mos_head", out.name, data, model, head, features)
    current_run().record(model_id=model_id, opset=sidecar["opset"], features=list(features))
    write_json(json_report, sidecar)
    return 0


@app.command("eval")
@recorded_run(
    inputs={"checkpoint": "checkpoint", "table": "table", "onnx": "onnx"},
    outputs={"report": "json_report"},
    embed_into="report",
)
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="the .npz checkpoint")],
    table: Annotated[Path, typer.Option(help="the per-clip feature parquet")],
    json_report: Report,
    onnx: Annotated[Path | None, typer.Option(help="its ONNX export, checked for parity")] = None,
    mos_scale: Annotated[str, typer.Option(help="the table's MOS: 1-5 or 0-100")] = "1-5",
    split_seed: Annotated[int, typer.Option(help="seed of the held-out split")] = 0,
    min_plcc: Annotated[float, typer.Option(help="gate on held-out PLCC")] = 0.75,
    parity_tol: Annotated[float, typer.Option(help="max |onnx - numpy| MOS")] = 1e-4,
) -> int:
    """Score a head on the held-out rows; with --onnx, also onnxruntime against numpy."""
    try:
        if mos_scale not in MOS_SCALES:
            raise InputError(f"--mos-scale {mos_scale}: expected one of {', '.join(MOS_SCALES)}")
        head, features = load_checkpoint(checkpoint)
        unknown = [f for f in features if f not in INPUTS]
        if unknown:
            raise InputError(f"{checkpoint}: unknown input(s) {', '.join(unknown)}")
        data = _select(load_dataset(table, read_parquet(table), mos_scale), features)
        held_out = holdout_mask(data.clips, split_seed)
        if held_out.sum() < 3:
            raise InputError(f"{table}: only {int(held_out.sum())} held-out rows")
        x, y = data.x[held_out], data.y[held_out]
        by_onnx = None
        if onnx is not None:
            from ai.mos import onnx_head

            exported = {p.key: p.value for p in onnx_head.load(onnx).metadata_props}
            if exported.get("features", "").split(",") != list(features):
                raise InputError(f"{onnx} was not exported from {checkpoint}: its features differ")
            by_onnx = onnx_head.run(onnx, x)
    except InputError as err:
        return _fail("eval", err)
    predicted = head.predict(x)
    metrics = {
        "plcc": round(plcc(predicted, y), 6),
        "srocc": round(srocc(predicted, y), 6),
        "rmse": round(rmse(predicted, y), 6),
    }
    run = current_run()
    passed = metrics["plcc"] >= min_plcc
    run.gate("held_out_plcc", passed, plcc=metrics["plcc"], min_plcc=min_plcc)
    report: dict[str, Any] = {"command": "eval", "checkpoint": checkpoint.name}
    if by_onnx is not None:
        max_diff = float(np.max(np.abs(by_onnx - predicted)))
        parity = max_diff <= parity_tol
        run.gate("parity", parity, max_abs_diff=max_diff, tolerance=parity_tol)
        report["parity"] = {"max_abs_diff": max_diff, "tolerance": parity_tol, "passed": parity}
        passed = passed and parity
    run.record(held_out_rows=int(held_out.sum()), **metrics)
    report |= {
        "held_out_rows": int(held_out.sum()),
        "split_seed": split_seed,
        **metrics,
        "gate": {"min_plcc": min_plcc, "passed": metrics["plcc"] >= min_plcc},
        "verdict": "PASS" if passed else "FAIL",
    }
    write_json(json_report, report)
    return 0 if passed else 1


@app.command("register")
@recorded_run(
    inputs={"model": "model"},
    outputs={"report": "json_report", "registry": "registry"},
    embed_into="report",
)
def register(
    model: Annotated[Path, typer.Option(help="the model sidecar that export wrote")],
    registry: Annotated[Path, typer.Option(help="the registry.json to add it to")],
    json_report: Report,
) -> int:
    """Add an exported model to a registry, once its ONNX file matches its sidecar's digest."""
    run = current_run()
    try:
        sidecar = read_json_object(model)
        name = sidecar.get("onnx")
        if not isinstance(name, str) or not isinstance(sidecar.get("id"), str):
            raise InputError(f"{model}: not a model sidecar (no id or onnx)")
        onnx = model.parent / name
        run.add_input("onnx", onnx)
        try:
            digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
        except OSError as err:
            raise InputError(f"{onnx}: cannot be read: {err.strerror or err}") from None
        if digest != sidecar.get("sha256"):
            raise InputError(f"{onnx}: its SHA-256 is not the one {model} records")
        add_to_registry(registry, sidecar, onnx, model)
    except InputError as err:
        return _fail("register", err)
    run.record(model_id=sidecar["id"], sha256=digest)
    write_json(
        json_report,
        {"command": "register", "id": sidecar["id"], "sha256": digest, "registry": registry.name},
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script: the subcommand's exit code; usage errors in one line, exit 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except typer.TyperException as err:  # a usage error, as typer's click reports it
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx is not None else PROG
        print(f"{where}: error: {' '.join(err.format_message().split())}", file=sys.stderr)
        return int(err.exit_code)
    except typer.Abort:
        return 130  # Ctrl-C: the run's record says interrupted
    return result if isinstance(result, int) else 0
