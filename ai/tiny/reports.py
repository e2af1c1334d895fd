"""The tiny family's LOSO reports: v3/v4 recipes, v2 against v5, and several seeds at once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.tiny import data
from ai.tiny.evaluation import METRICS, aggregate, loso
from ai.tiny.models import ARCHS, VERSIONS
from ai.tiny.training import add_hyperparameters, check_hyperparameters
from provenance import current_run


def build_parser(doc: str | None, *, two_tables: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    if two_tables:
        parser.add_argument("--parquet-base", type=Path, required=True, help="the Netflix table")
        parser.add_argument("--parquet-extra", type=Path, required=True, help="the UGC table")
    else:
        parser.add_argument("--parquet", type=Path, required=True, help="table with source")
    parser.add_argument("--out-json", type=Path, required=True, help="the report to write")
    add_hyperparameters(parser)
    add_manifest_out(parser, "<out-json>")
    return parser


def _hyper(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}


def loso_version(version: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """eval_loso_vmaf_tiny_v3 / _v4: one model per held-out source, no export."""
    check_hyperparameters(parser, args)
    arch = VERSIONS[version]
    try:
        frames = data.load(args.parquet, need_source=True)
        per_fold = loso(frames, arch, **_hyper(args), seed=args.seed)
    except InputError as err:
        return fail(parser.prog, err)
    summary = aggregate(per_fold)
    current_run().record(n_folds=len(per_fold), **summary)
    write_json(args.out_json, {
        "arch": arch, "model": f"vmaf_tiny_{version}", "parquet": str(args.parquet),
        "n_folds": len(per_fold), **_hyper(args), "seed": args.seed,
        "per_fold": per_fold, "aggregate": summary,
    })  # fmt: skip
    print(f"{arch}: mean plcc={summary['mean_plcc']:.4f} ± {summary['std_plcc']:.4f} "
          f"over {len(per_fold)} folds")  # fmt: skip
    return 0


def compare_v2_v5(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """eval_loso_vmaf_tiny_v5: v2's recipe on the base table against v5's on base + UGC,
    both held out on the same Netflix sources."""
    check_hyperparameters(parser, args)
    try:
        joined = data.load_base_extra(args.parquet_base, args.parquet_extra)
        assert joined.corpus is not None
        assert joined.source is not None
        is_netflix = np.array([c == "netflix" for c in joined.corpus])
        if not is_netflix.any():
            raise InputError(f"{args.parquet_base}: no row has corpus netflix to hold out")
        folds = sorted({s for s, n in zip(joined.source, is_netflix, strict=True) if n})
        keys = [s if n else "" for s, n in zip(joined.source, is_netflix, strict=True)]
        base = joined.take(np.array([c != "ugc" for c in joined.corpus]))
        base_keys = [k for k, c in zip(keys, joined.corpus, strict=True) if c != "ugc"]
        hyper = {**_hyper(args), "seed": args.seed, "folds": folds}
        v2 = loso(base, "mlp_small", **hyper, held_out_of=base_keys)
        v5 = loso(joined, "mlp_small", **hyper, held_out_of=keys)
    except InputError as err:
        return fail(parser.prog, err)
    v2_summary, v5_summary = aggregate(v2), aggregate(v5)
    delta = round(v5_summary["mean_plcc"] - v2_summary["mean_plcc"], 6)
    sigma = v2_summary["std_plcc"]
    decision = "ship_v5" if delta >= sigma else "defer"
    current_run().record(delta_plcc=delta, v2_sigma_plcc=sigma, decision=decision)
    write_json(args.out_json, {
        "arch": "mlp_small", **_hyper(args), "seed": args.seed,
        "v2_baseline": {"per_fold": v2, "aggregate": v2_summary},
        "v5_extended": {"per_fold": v5, "aggregate": v5_summary},
        "delta_plcc": delta, "v2_sigma_plcc": sigma, "decision": decision,
    })  # fmt: skip
    print(f"delta plcc={delta:+.4f} (v2 sigma {sigma:.4f}): {decision}")
    return 0


def build_multiseed_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--arch", choices=["mlp_large", "mlp_medium"], required=True)
    parser.add_argument("--parquet", type=Path, required=True, help="table with source")
    parser.add_argument("--out-json", type=Path, required=True, help="the report to write")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds")
    parser.add_argument("--epochs", type=int, default=90, help="training epochs (default 90)")
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch rows (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--label", default="", help="a free label carried into the report")
    add_manifest_out(parser, "<out-json>")
    return parser


def _mean_std(values: list[float]) -> tuple[float, float]:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return round(float(np.mean(values)), 6), round(std, 6)


def multiseed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """eval_multiseed_v3_v4: LOSO once per seed, summarised per seed, per fold and overall."""
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("--epochs and --batch-size must be at least 1 and --lr positive")
    assert args.arch in ARCHS
    try:
        frames = data.load(args.parquet, need_source=True)
        runs = {
            str(seed): loso(frames, args.arch, **_hyper(args), seed=seed) for seed in args.seeds
        }
    except InputError as err:
        return fail(parser.prog, err)
    sources = sorted(next(iter(runs.values())))
    per_seed = {
        seed: {f"mean_{m}": _mean_std([float(f[m]) for f in folds.values()])[0] for m in METRICS}
        for seed, folds in runs.items()
    }
    per_fold: dict[str, dict[str, float]] = {}
    for source in sources:
        per_fold[source] = {}
        for m in METRICS:
            mean, std = _mean_std([float(runs[s][source][m]) for s in runs])
            per_fold[source] |= {f"mean_{m}": mean, f"std_{m}": std}
    overall: dict[str, float] = {}
    for m in METRICS:
        mean, std = _mean_std([per_seed[s][f"mean_{m}"] for s in per_seed])
        overall |= {f"mean_{m}": mean, f"std_{m}": std}
    current_run().record(arch=args.arch, n_seeds=len(runs), **overall)
    write_json(args.out_json, {
        "arch": args.arch, "label": args.label, "parquet": str(args.parquet),
        "n_folds": len(sources), "sources": sources, "seeds": list(args.seeds), **_hyper(args),
        "per_seed_per_fold": runs, "per_seed_aggregate": per_seed,
        "per_fold_aggregate": per_fold, "overall": overall,
    })  # fmt: skip
    print(f"{args.arch}: plcc {overall['mean_plcc']:.4f} ± {overall['std_plcc']:.4f} "
          f"over {len(runs)} seeds")  # fmt: skip
    return 0
