"""What the tiny trainers share: their options, the fit on the whole corpus, ckpt and stats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.features.libvmaf import CANONICAL_6
from ai.tiny import data
from ai.tiny.evaluation import scores
from ai.tiny.models import ARCHS, VERSIONS, checkpoint_bytes, epoch_printer, predict, train
from provenance import atomic_write, current_run


def add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=90, help="training epochs (default 90)")
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch rows (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="init and shuffle seed (default 0)")


def check_hyperparameters(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("--epochs and --batch-size must be at least 1 and --lr positive")


def build_parser(doc: str | None, *, two_tables: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    if two_tables:
        parser.add_argument("--parquet-base", type=Path, required=True, help="the base table")
        parser.add_argument("--parquet-extra", type=Path, required=True, help="the UGC table")
    else:
        parser.add_argument("--parquet", type=Path, required=True, help="the per-frame table")
    parser.add_argument("--out-ckpt", type=Path, required=True, help="the .npz checkpoint")
    parser.add_argument("--out-stats", type=Path, required=True, help="the stats JSON")
    add_hyperparameters(parser)
    add_manifest_out(parser, "<out-ckpt>")
    return parser


def fit_version(version: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Train ``version``'s architecture on every row; write the checkpoint, then the stats."""
    check_hyperparameters(parser, args)
    arch = VERSIONS[version]
    try:
        if version == "v5":
            try:
                frames = data.load_base_extra(args.parquet_base, args.parquet_extra)
            except data.MissingColumns as err:
                print(f"{parser.prog}: {err}", file=sys.stderr)
                return 1  # the fork stops v5 with a message: exit 1, not an input error's 2
        else:
            frames = data.load(args.parquet)
    except InputError as err:
        return fail(parser.prog, err)
    model = train(
        arch, frames.x, frames.y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, log=epoch_printer(args.epochs),
    )  # fmt: skip
    metrics = scores(predict(model, frames.x), frames.y)
    meta: dict[str, Any] = {
        "features": list(CANONICAL_6),
        "input_mean": [float(v) for v in model.mean],
        "input_std": [float(v) for v in model.std],
        "train_metrics": metrics,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    if version in ("v3", "v4"):
        meta |= {"arch": arch, "n_params": model.n_params}
    assert model.n_params == sum(
        a * b + b for a, b in zip(ARCHS[arch], ARCHS[arch][1:], strict=False)
    )
    stats = {**meta, "n_train_rows": len(frames)}
    if version == "v5":
        stats |= {"parquet_base": str(args.parquet_base), "parquet_extra": str(args.parquet_extra)}
    current_run().record(arch=arch, n_train_rows=len(frames), train_metrics=metrics)
    atomic_write(args.out_ckpt, checkpoint_bytes(model, meta))
    write_json(args.out_stats, stats)
    print(
        f"train plcc={metrics['plcc']:.4f} srocc={metrics['srocc']:.4f} rmse={metrics['rmse']:.3f}"
    )
    return 0
