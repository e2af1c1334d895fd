"""Quantize an fp32 ONNX model to int8 with onnxruntime's dynamic post-training quantization.

Weights become int8 ahead of time; activations are quantized at run time, so no calibration
data is needed. Writes the int8 model (--out) and its model sidecar (<out>.json unless
--model-sidecar), which names the fp32 model by digest, the quantization config and the sizes;
--registry adds the model to a registry, --report-out writes the same evidence as a report.
Settings come from the defaults, then --config (a JSON object), then the options given.
"""

from __future__ import annotations

import argparse
import sys

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.mos import onnx_head
from ai.quantization import ptq
from provenance import current_run, recorded_run

SETTINGS = ("weight_type", "per_channel", "reduce_range")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    ptq.add_common_options(parser)
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={"fp32": "fp32", "fp32_sidecar": ptq.fp32_sidecar_path, "config": "config"},
    outputs={
        "int8": "out",
        "model_sidecar": ptq.model_sidecar_path,
        "registry": "registry",
        "report": "report_out",
    },
    embed_into=("model_sidecar", "report"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ptq.check_paths(args)
        config = ptq.resolve_config(ptq.DYNAMIC, ptq.given_settings(args, SETTINGS), args.config)
        fp32_side = ptq.fp32_sidecar(ptq.fp32_sidecar_path(args))
        onnx_head.load(args.fp32)
        data = ptq.quantize(args.fp32, config)
        sidecar = ptq.write_int8(
            args, list(sys.argv[1:] if argv is None else argv), data, fp32_side, config, None
        )
    except InputError as err:
        return fail(parser.prog, err)
    current_run().record(**ptq.manifest_fields(sidecar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
