"""Validate a model registry: unique ids, files present, digests matching, sidecars present.

Every entry's ONNX file and model sidecar must lie inside the registry's folder (symlinks
resolved), be a regular file within the size limits, and agree: the file's SHA-256 is the
entry's, the sidecar names the same id, digest and file. Writes the report (--out-json), each
check with its verdict, either way; exits 0 when every check passes, 1 when one fails, 2 when
the registry itself cannot be read as a JSON object (no report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.release.registry import MAX_MODEL_BYTES, read_registry, validate_registry
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, required=True, help="the registry.json")
    parser.add_argument(
        "--max-model-bytes", type=int, default=MAX_MODEL_BYTES, help="largest ONNX file read"
    )
    parser.add_argument("--out-json", type=Path, required=True, help="the report to write")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(inputs={"registry": "registry"}, outputs={"report": "out_json"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        document = read_registry(args.registry)
    except InputError as err:
        return fail(parser.prog, err)
    report, files = validate_registry(args.registry, document, args.max_model_bytes)
    run = current_run()
    run.add_input("files", sorted(set(files)))
    passed = report["verdict"] == "PASS"
    summary = report["summary"]
    run.gate("registry", passed, models=summary["models"], failed_models=summary["failed"],
             failed_registry_checks=summary["failed_registry_checks"])  # fmt: skip
    run.record(verdict=report["verdict"], checks=report["checks"], summary=report["summary"],
               models={str(m["index"]): m["verdict"] for m in report["models"]})  # fmt: skip
    write_json(args.out_json, report)
    if not passed:
        print(f"{parser.prog}: {args.registry}: {report['summary']['failed']} model(s) and "
              f"{len(report['summary']['failed_registry_checks'])} registry check(s) failed; "
              f"see {args.out_json}", file=sys.stderr)  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
