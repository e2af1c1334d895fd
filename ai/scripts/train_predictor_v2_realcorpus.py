"""Judge the per-codec vmaf-tune predictor by 5-fold source-grouped CV on real corpora.

Corpora are the --corpus files given (those that do not exist are dropped), or else every
*.jsonl under each --corpus-root. Per --codec, rows of that encoder train the predictor MLP
fold by fold; the gate (ADR-0303): mean fold PLCC >= 0.95, spread <= 0.005, every fold >= 0.95.
The report is written either way, with the run's provenance block, even for a diagnostic
--allow-empty run that found no corpus. Exit 0 only if every codec passes, else 1; a usage
error exits 2. No model is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ai.common.cli import add_manifest_out
from ai.predictor.realcorpus import (
    CODECS,
    GATE,
    SYNTHETIC,
    discover,
    evaluate,
    load_rows,
    summary,
    synthetic_rows,
)
from provenance import atomic_write, current_run, recorded_run

DEFAULT_ROOTS = (
    Path.home() / ".workingdir2" / "netflix",
    Path.home() / ".workingdir2" / "konvid-150k",
    Path.home() / ".workingdir2" / "bvi-dvc-raw",
)
DEFAULT_REPORT = Path("runs/predictor_v2_realcorpus/report.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, action="append", help="a corpus JSONL (repeat)")
    parser.add_argument(
        "--corpus-root", type=Path, action="append", help="a folder to search for *.jsonl (repeat)"
    )
    parser.add_argument("--codec", action="append", help="a codec to judge (repeat; default all)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per fold")
    parser.add_argument("--seed", type=int, default=42, help="fold shuffle and training seed")
    parser.add_argument("--report-out", type=Path, default=DEFAULT_REPORT, help="report JSON")
    parser.add_argument("--synthetic-smoke", action="store_true", help="generated rows only")
    parser.add_argument("--allow-empty", action="store_true", help="report even with no corpus")
    add_manifest_out(parser, "<report-out>")
    return parser


def roots_of(args: argparse.Namespace) -> list[Path]:
    return [] if args.corpus else list(args.corpus_root or DEFAULT_ROOTS)


def generated_at() -> str | None:
    """``SOURCE_DATE_EPOCH`` as ISO seconds with Z, or None: the wall clock would make two
    runs of the same work differ (a run's own times are volatile evidence, asked for apart)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch.isdigit():
        return None
    moment = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@recorded_run(
    inputs={"corpus_roots": roots_of, "corpora": lambda a: list(a.corpus or [])},
    outputs={"report": "report_out"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    codecs = list(dict.fromkeys(args.codec or CODECS))
    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        parser.error(f"unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODECS)}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    roots = roots_of(args)
    files = [p for p in args.corpus if p.is_file()] if args.corpus else discover(roots)
    if not files and not (args.synthetic_smoke or args.allow_empty):
        parser.error("no corpus JSONL found (give --corpus or --corpus-root, or --allow-empty)")
    run = current_run()
    run.add_input("resolved_corpora", files)
    if args.synthetic_smoke:
        by_codec = synthetic_rows(codecs, args.seed)
    else:
        by_codec = load_rows(files, codecs)
    entries = []
    for codec in codecs:
        entry = evaluate(codec, by_codec[codec], epochs=args.epochs, seed=args.seed)
        entries.append(entry)
        print(
            f"{codec}: {entry['n_rows_total']} rows, {entry['n_distinct_sources']} sources: "
            f"{entry['status']}"
        )
        run.gate(
            f"predictor_{codec}",
            entry["status"] == "pass",
            status=entry["status"],
            mean_plcc=entry["mean_plcc"],
            plcc_spread=entry["plcc_spread"],
            reasons=entry["failure_reasons"],
        )
    tally = summary(entries)
    corpus: dict[str, Any] = {
        "discovered_files": [SYNTHETIC] if args.synthetic_smoke else [str(p) for p in files],
        "roots": [str(r) for r in roots],
    }
    run.record(codecs=codecs, epochs=args.epochs, seed=args.seed, summary=tally, corpus=corpus)
    report = {
        "schema_version": 1,
        "generated_at_utc": generated_at(),
        "gate": GATE,
        "corpus": corpus,
        "codecs": entries,
        "summary": tally,
    }
    text = json.dumps(report, indent=2, sort_keys=True, allow_nan=False)
    atomic_write(args.report_out, text.encode("utf-8"))
    print(f"{'codec':<12} {'status':<22} {'mean_plcc':>9} {'spread':>8}  reasons")
    for e in entries:
        plcc = "-" if e["mean_plcc"] is None else f"{e['mean_plcc']:.4f}"
        spread = "-" if e["plcc_spread"] is None else f"{e['plcc_spread']:.4f}"
        print(
            f"{e['codec']:<12} {e['status']:<22} {plcc:>9} {spread:>8}  "
            + "; ".join(e["failure_reasons"])
        )
    print(
        f"{tally['n_pass']} pass, {tally['n_fail']} fail, {tally['n_insufficient']} insufficient, "
        f"{tally['n_missing_rows']} missing rows"
    )
    return 0 if tally["n_pass"] == len(entries) else 1


if __name__ == "__main__":
    sys.exit(main())
