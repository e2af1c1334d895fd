"""Audit how the signals of a training table mix: corpora, and each joined derived signal.

--table is the training table (key --key, target --target, corpus column --corpus-column);
each --signal NAME=PATH is a derived parquet (labels, saliency, second opinion) joined on
--key. The report --out-json (with the run's provenance block; its sidecar beside it) gives
each corpus's share of the rows and, per signal, its coverage of the table (overall and per
corpus), its rows that join nothing, and each numeric column's PLCC with the target. The gate:
no corpus holds more than --max-corpus-share of the rows, and every signal covers at least
--min-coverage of them. A failed gate exits 1 with the report written; an input error exits
2 with none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.derived.signal_mix import audit
from provenance import current_run, recorded_run


def signal(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the training table (parquet)")
    parser.add_argument("--signal", type=signal, action="append", default=[], help="NAME=PATH")
    parser.add_argument("--key", default="clip_name", help="the column the signals join on")
    parser.add_argument("--target", default="mos", help="the label column")
    parser.add_argument("--corpus-column", default="corpus", help="the corpus of each row")
    parser.add_argument("--max-corpus-share", type=float, default=0.95, help="one corpus, most")
    parser.add_argument("--min-coverage", type=float, default=0.05, help="each signal, least")
    parser.add_argument("--out-json", type=Path, required=True, help="the audit report")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(
    inputs={"table": "table", "signals": lambda a: [p for _, p in a.signal]},
    outputs={"report": "out_json"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = [n for n, _ in args.signal]
    if len(set(names)) != len(names):
        parser.error("each --signal needs its own name")
    for option in ("max_corpus_share", "min_coverage"):
        if not 0.0 <= getattr(args, option) <= 1.0:
            parser.error(f"--{option.replace('_', '-')} must be within 0-1")
    try:
        base = read_parquet(args.table)
        signals = [(n, p, read_parquet(p)) for n, p in args.signal]
        found = audit(args.table, base, signals, args.key, args.target, args.corpus_column)
    except InputError as err:
        return fail(parser.prog, err)
    largest = max(found["corpus_shares"].values(), default=0.0)
    thin = [s["name"] for s in found["signals"] if s["coverage"] < args.min_coverage]
    passed = largest <= args.max_corpus_share and not thin
    thresholds = {"max_corpus_share": args.max_corpus_share, "min_coverage": args.min_coverage}
    run = current_run()
    run.gate("signal_mix", passed, largest_corpus_share=largest, thin_signals=thin, **thresholds)
    run.record(
        source_table=args.table,
        joined={n: str(p) for n, p in args.signal},
        corpus_shares=found["corpus_shares"],
        coverage={s["name"]: s["coverage"] for s in found["signals"]},
    )
    write_json(
        args.out_json,
        {
            "kind": "signal_mix_audit",
            "source_tables": {"table": args.table.name},
            "joined_inputs": {n: p.name for n, p in args.signal},
            "key": args.key,
            "target": args.target,
            "thresholds": thresholds,
            **found,
            "gate": {"passed": passed, "largest_corpus_share": largest, "thin_signals": thin},
        },
    )
    if not passed:
        print(f"{parser.prog}: largest corpus {largest:.3f}, thin: {thin}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
