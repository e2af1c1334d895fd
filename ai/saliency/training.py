"""The saliency-student training loop both trainers share (v1 and v2 differ only in the net).

Follows the fork's loop: Adam, cosine annealing stepped per epoch, BCE + Dice loss, IoU at
0.5 on the validation images each epoch, the best state kept when its IoU is strictly
higher, exported to ONNX and checked against the numpy model on a seeded random input.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.common.onnx_checks import run_bytes
from ai.saliency import duts, onnx_graph, unet
from provenance import atomic_write, current_run

MODEL_NAMES = {"v1": "TinyUNet", "v2": "TinyUNetV2"}
PARITY_TOLERANCE = 1e-5


def build_parser(variant: str, doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--duts-root", type=Path, required=True, help="the DUTS-TR root")
    parser.add_argument("--output", type=Path, required=True, help="the ONNX file to write")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop-size", type=int, default=256, help="a multiple of 8")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument(
        "--min-val-images", type=int, default=64, help="the validation split's floor (default 64)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=4, help="accepted for the fork's command lines; "
        "images are prepared in-process"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--device", choices=["cpu"], default="cpu", help="numpy runs on the CPU")
    parser.add_argument(
        "--parity-size", type=int, default=256, help="side of the random parity input"
    )
    parser.add_argument(
        "--record-timings", action="store_true",
        help="write elapsed seconds into the metrics (they then differ from run to run)",
    )  # fmt: skip
    parser.add_argument("--metrics-out", type=Path, help="the metrics JSON to write")
    add_manifest_out(parser, "<output>")
    parser.set_defaults(variant=variant)
    return parser


def check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "crop_size", "parity_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("crop_size", "parity_size"):
        if getattr(args, name) % 8:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: the U-Net "
                             "pools three times, so it must be a multiple of 8")  # fmt: skip
    if not 0.0 <= args.val_fraction < 1.0 or args.min_val_images < 1:
        raise InputError("--val-fraction must be in [0, 1) and --min-val-images at least 1")
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise InputError(f"--lr {args.lr}: must be a positive number")
    if not 13 <= args.opset <= 21:
        raise InputError(f"--opset {args.opset}: supported opsets are 13 to 21")


@dataclass
class Data:
    train: list[tuple[np.ndarray, np.ndarray]]  # resized to crop + 32, cropped per epoch
    val_x: np.ndarray
    val_y: np.ndarray


def load_data(args: argparse.Namespace) -> Data:
    pairs = duts.find_pairs(args.duts_root)
    train, val = duts.split(pairs, args.seed, args.val_fraction, args.min_val_images)
    if len(train) < args.batch_size:
        raise InputError(
            f"{args.duts_root}: {len(pairs)} image pairs leave {len(train)} for training after "
            f"{len(val)} for validation, less than one batch of {args.batch_size} "
            "(lower --min-val-images or --batch-size)"
        )
    if not val:
        raise InputError(f"{args.duts_root}: no image left for validation")
    crop = args.crop_size
    centred = [duts.centre(*duts.load_pair(p, crop), crop) for p in val]
    return Data(
        train=[duts.load_pair(p, crop + 32) for p in train],
        val_x=np.stack([x for x, _ in centred]),
        val_y=np.stack([y for _, y in centred]),
    )


def evaluate(net: unet.Net, data: Data, batch: int) -> tuple[float, float]:
    net.training = False
    losses, ious = [], []
    for start in range(0, len(data.val_x), batch):
        x, y = data.val_x[start : start + batch], data.val_y[start : start + batch]
        logits, _ = net.logits(x)
        losses.append(unet.bce_dice(logits, y)[0])
        ious.append(unet.batch_iou(unet.sigmoid(logits), y))
    return float(np.mean(losses)), float(np.mean(ious))


def train(args: argparse.Namespace, data: Data) -> tuple[unet.Params | None, float, list[Any]]:
    """The best state (None when no epoch gave a finite IoU), its IoU and the history."""
    variant = args.variant
    params = unet.init_params(variant, np.random.default_rng(args.seed))
    net = unet.Net(variant, params)
    optimiser = unet.Adam(unet.trainable(variant), args.lr)
    shuffle, augment = np.random.default_rng(args.seed), random.Random(args.seed)
    best: unet.Params | None = None
    best_iou, history = -math.inf, []
    started = time.monotonic()
    for epoch in range(args.epochs):
        optimiser.lr = unet.cosine_lr(args.lr, epoch, args.epochs)
        net.training = True
        order = shuffle.permutation(len(data.train))
        losses = []
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):  # drop_last
            pairs = []
            for i in order[start : start + args.batch_size]:
                image, mask = data.train[int(i)]
                pairs.append(duts.augment(image, mask, args.crop_size, augment))
            x, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
            net.grads = {}
            logits, backward = net.logits(x)
            loss, grad = unet.bce_dice(logits, y)
            backward(grad)
            optimiser.step(net.params, net.grads)
            losses.append(loss)
        val_loss, val_iou = evaluate(net, data, args.batch_size)
        history.append({
            "epoch": epoch + 1,
            "train_loss": _finite(float(np.mean(losses))),
            "val_loss": _finite(val_loss),
            "val_iou": _finite(val_iou),
            "elapsed_sec": round(time.monotonic() - started, 3) if args.record_timings else None,
        })  # fmt: skip
        if val_iou > best_iou:  # NaN never is
            best_iou = val_iou
            best = {k: np.array(v, copy=True) for k, v in net.params.items()}
    return best, best_iou, history


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def parity(args: argparse.Namespace, params: unet.Params, data: bytes) -> float:
    """Max |numpy - onnxruntime| on the fork's seeded random input."""
    size = args.parity_size
    x = np.random.RandomState(args.seed).randn(1, 3, size, size)
    want = unet.Net(args.variant, params).predict(x)
    got = run_bytes(data, {onnx_graph.INPUT_NAME: x.astype(np.float32)})[0]
    return float(np.max(np.abs(got.astype(np.float64) - want)))


def main(args: argparse.Namespace, prog: str) -> int:
    """Train, export and check; the metrics JSON is written whatever the verdict."""
    started = time.monotonic()
    variant = args.variant
    try:
        check_args(args)
        data = load_data(args)
    except InputError as err:
        return fail(prog, err)
    count = unet.param_count(variant)
    if count > unet.PARAM_WARNING:
        print(f"{prog}: warning: {count} parameters, over {unet.PARAM_WARNING}", file=sys.stderr)
    best, best_iou, history = train(args, data)
    run = current_run()
    metrics: dict[str, Any] = {
        "model": MODEL_NAMES[variant],
        "best_val_iou": _finite(best_iou),
        "param_count": count,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "crop_size": args.crop_size,
        "seed": args.seed,
        "opset": args.opset,
        "images": {"train": len(data.train), "val": len(data.val_x)},
        "history": history,
        "total_time_sec": None,
        "onnx_bytes": None,
        "onnx_sha256": None,
        "pt_onnx_max_abs_diff": None,
        "parity_tolerance": PARITY_TOLERANCE,
        "device": args.device,
    }
    run.gate("best_checkpoint", best is not None, best_val_iou=metrics["best_val_iou"])
    passed = best is not None
    if best is None:
        print(f"{prog}: FATAL: no epoch gave a finite validation IoU; nothing exported",
              file=sys.stderr)  # fmt: skip
    else:
        model = onnx_graph.build(variant, best, args.opset, f"saliency_student_{variant}")
        onnx_bytes = model.SerializeToString(deterministic=True)
        atomic_write(args.output, onnx_bytes)
        drift = parity(args, best, onnx_bytes)
        passed = drift <= PARITY_TOLERANCE
        run.gate("onnx_parity", passed, max_abs_diff=drift, tolerance=PARITY_TOLERANCE)
        metrics.update(
            onnx_bytes=len(onnx_bytes),
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            pt_onnx_max_abs_diff=drift,
        )
        if not passed:
            print(f"{prog}: onnxruntime differs from the numpy model by {drift:.3g} > "
                  f"{PARITY_TOLERANCE:g}", file=sys.stderr)  # fmt: skip
    if args.record_timings:
        metrics["total_time_sec"] = round(time.monotonic() - started, 3)
    run.record(best_val_iou=metrics["best_val_iou"], param_count=count,
               images=metrics["images"])  # fmt: skip
    if args.metrics_out is not None:
        write_json(args.metrics_out, metrics)
    return 0 if passed else 1
