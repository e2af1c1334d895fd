"""Export the FR regressor v2 ensemble: one ONNX member per seed and the direct ensemble manifest.

Only a PROMOTE verdict from validate_ensemble_seeds, for the same corpus, is exported from:
each seed's member is fit on the whole --corpus the way its LOSO folds were, written as
<out-dir>/fr_regressor_v2_ensemble_v1_seed{N}.onnx with its model sidecar (.json), and listed
in <out-dir>/fr_regressor_v2_ensemble_v1.json with the corpus, the verdict's digest, the
registry target and the run's provenance. Each member's sidecar carries the same run_provenance
block too (ADR-0661), embedded when the run ends, so a seed refresh read alone names what
justified it: the corpus and the verdict (hashed), the argv, every seed's ONNX target and the
registry target (hashed), and the outcome with the promote_verdict gate; the PROMOTE verdict
(path, value, SHA-256) sits beside the block. A HOLD verdict is a failed
promotion gate: exit 1, nothing exported. A verdict that cannot be read, is neither, names other
seeds or judged another corpus is an input error: exit 2, nothing exported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.features.libvmaf import CANONICAL_6, parse_features
from ai.fr.ensemble import PROMOTE
from ai.fr.fr_regressor import ENSEMBLE_ID, KIND, fit_member, load_frames, read_verdict
from ai.fr.fr_regressor import member_sidecar as describe
from ai.mos import onnx_head
from ai.release.registry import register
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="the per-frame pair parquet")
    parser.add_argument("--verdict", type=Path, required=True, help="the seed gate's verdict")
    parser.add_argument("--seeds", type=int, nargs="+", help="members (default: the verdict's)")
    parser.add_argument(
        "--features", type=parse_features, default=CANONICAL_6, help="comma-separated inputs"
    )
    parser.add_argument("--ridge", type=float, default=1.0, help="L2 penalty")
    parser.add_argument("--bag-fraction", type=float, default=0.8, help="frames each fit sees")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the members go")
    parser.add_argument("--registry", type=Path, help="a registry.json to add the members to")
    add_manifest_out(parser, "<out-dir>/fr_regressor_v2_ensemble_v1.json")
    return parser


def manifest_path(args: argparse.Namespace) -> Path:
    return Path(args.out_dir) / f"{ENSEMBLE_ID}.json"


def member_path(out_dir: Path, seed: int) -> Path:
    return out_dir / f"{ENSEMBLE_ID}_seed{seed}.onnx"


def named_later(args: argparse.Namespace) -> None:
    """The members and their sidecars: named from the body (add_output) once the seeds are
    known, since by default they are the verdict's."""
    return None


@recorded_run(
    inputs={"corpus": "corpus", "verdict": "verdict"},
    outputs={
        "ensemble_manifest": manifest_path,
        "members": named_later,
        "member_sidecars": named_later,
        "registry": "registry",
    },
    embed_into=("ensemble_manifest", "member_sidecars"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = current_run()
    try:
        verdict = read_verdict(args.verdict, args.corpus)
        seeds = args.seeds or verdict.seeds
        unjudged = sorted(set(seeds) - set(verdict.seeds))
        if unjudged:
            raise InputError(f"{args.verdict}: seed(s) {unjudged} were not judged by this verdict")
        frames = load_frames(args.corpus, read_parquet(args.corpus), args.features)
    except InputError as err:
        return fail(parser.prog, err)
    run.record(verdict=verdict.verdict, verdict_sha256=verdict.sha256, seeds=seeds)
    run.gate("promote_verdict", verdict.verdict == PROMOTE, verdict=verdict.verdict)
    if verdict.verdict != PROMOTE:
        print(
            f"{parser.prog}: {args.verdict} is {verdict.verdict}: nothing exported", file=sys.stderr
        )
        return 1
    onnx_paths = [member_path(args.out_dir, seed) for seed in seeds]
    sidecar_paths = [p.with_suffix(".json") for p in onnx_paths]
    run.add_output("members", onnx_paths)
    run.add_output("member_sidecars", sidecar_paths)
    verdict_of = {"path": args.verdict.name, "verdict": verdict.verdict, "sha256": verdict.sha256}
    members: list[dict[str, Any]] = []
    for seed, onnx_path, sidecar_path in zip(seeds, onnx_paths, sidecar_paths, strict=True):
        head = fit_member(frames.x, frames.y, seed, args.ridge, args.bag_fraction)
        model_id = f"{ENSEMBLE_ID}_seed{seed}"
        model = onnx_head.build_linear(
            head, tuple(args.features), args.opset, model_id, "vmaf", (0.0, 100.0)
        )
        data = model.SerializeToString(deterministic=True)
        atomic_write(onnx_path, data)
        sidecar = describe(model_id, seed, onnx_path, data, model, head, args.features)
        # The run_provenance block goes into each sidecar when the run ends (embed_into).
        write_json(
            sidecar_path,
            {**sidecar, "ensemble_manifest": manifest_path(args).name, "verdict": verdict_of},
        )
        if args.registry is not None:
            try:
                register(args.registry, sidecar, onnx_path, sidecar_path)
            except InputError as err:
                return fail(parser.prog, err)
        members.append(
            {
                "seed": seed,
                "id": model_id,
                "onnx": onnx_path.name,
                "sha256": sidecar["sha256"],
                "sidecar": sidecar_path.name,
            },
        )
    document = {
        "id": ENSEMBLE_ID,
        "kind": f"{KIND}_ensemble",
        "members": members,
        "member_outputs": [m["onnx"] for m in members],
        "corpus": {"path": args.corpus.name, "sha256": verdict.corpus_sha256},
        "verdict": verdict_of,
        "registry": None if args.registry is None else args.registry.name,
        "features": list(args.features),
        "training": {"ridge": args.ridge, "bag_fraction": args.bag_fraction},
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    write_json(manifest_path(args), document)
    run.record(members=members, registry=args.registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
