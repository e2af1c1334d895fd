"""Export the FR regressor v2 ensemble: one ONNX member per seed and the direct ensemble manifest.

Only a PROMOTE verdict from validate_ensemble_seeds, for the same corpus, is exported from:
each seed's member is fit on the whole --corpus the way its LOSO folds were, written as
<out-dir>/fr_regressor_v2_ensemble_v1_seed{N}.onnx with its model sidecar (.json), and listed
in <out-dir>/fr_regressor_v2_ensemble_v1.json with the corpus, the verdict's digest, the
registry target and the run's provenance. Each member's sidecar carries the run_provenance block
too (ADR-0661), so a seed refresh read alone names what justified it: the corpus and the verdict
(hashed), the argv, every seed's ONNX target and the registry target (hashed once written); the
PROMOTE verdict (path, value, SHA-256) sits beside the block. A HOLD verdict is a failed
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
from provenance import atomic_write, build_run_provenance, current_run, recorded_run


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


def seed_provenance(
    args: argparse.Namespace, argv: list[str] | None, seeds: list[int]
) -> dict[str, Any]:
    """The run_provenance block each member's sidecar carries (ADR-0661): the corpus and the
    verdict read (hashed), the argv and arguments, every seed's ONNX target and the registry
    (hashed, all written by then). The run has not ended when it is built, so the block has no
    outcome: the verdict it was exported on sits beside it in the sidecar, and the sidecars and
    the ensemble manifest, written after it, are named by ``args`` rather than hashed."""
    outputs: dict[str, Any] = {
        f"member_seed{seed}": member_path(args.out_dir, seed) for seed in seeds
    }
    outputs["registry"] = args.registry
    return build_run_provenance(
        entrypoint=__file__,
        argv=list(sys.argv[1:] if argv is None else argv),
        args=vars(args),
        inputs={"corpus": args.corpus, "verdict": args.verdict},
        outputs=outputs,
    )


@recorded_run(
    inputs={"corpus": "corpus", "verdict": "verdict"},
    outputs={"ensemble_manifest": manifest_path, "registry": "registry"},
    embed_into="ensemble_manifest",
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
    members: list[dict[str, Any]] = []
    sidecars: list[tuple[Path, dict[str, Any]]] = []
    for seed in seeds:
        head = fit_member(frames.x, frames.y, seed, args.ridge, args.bag_fraction)
        model_id = f"{ENSEMBLE_ID}_seed{seed}"
        model = onnx_head.build_linear(
            head, tuple(args.features), args.opset, model_id, "vmaf", (0.0, 100.0)
        )
        data = model.SerializeToString(deterministic=True)
        onnx_path = member_path(args.out_dir, seed)
        sidecar_path = onnx_path.with_suffix(".json")
        atomic_write(onnx_path, data)
        sidecar = describe(model_id, seed, onnx_path, data, model, head, args.features)
        sidecars.append((sidecar_path, sidecar))
        run.add_output(f"member_seed{seed}", onnx_path)
        run.add_output(f"member_seed{seed}_sidecar", sidecar_path)
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
    # Every member and the registry are written before any sidecar, so each sidecar's block
    # hashes the same final files: the same inputs give the same bytes, run after run.
    block = seed_provenance(args, argv, seeds)
    verdict_of = {"path": args.verdict.name, "verdict": verdict.verdict, "sha256": verdict.sha256}
    for sidecar_path, sidecar in sidecars:
        write_json(
            sidecar_path,
            {
                **sidecar,
                "ensemble_manifest": manifest_path(args).name,
                "verdict": verdict_of,
                "run_provenance": block,
            },
        )
    document = {
        "id": ENSEMBLE_ID,
        "kind": f"{KIND}_ensemble",
        "members": members,
        "member_outputs": [m["onnx"] for m in members],
        "corpus": {"path": args.corpus.name, "sha256": verdict.corpus_sha256},
        "verdict": {
            "path": args.verdict.name,
            "verdict": verdict.verdict,
            "sha256": verdict.sha256,
        },
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
