"""The saliency family (ADR-0661): the DUTS trainers, the validator, the masks and block IoU."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ai.saliency import onnx_graph, unet
from ai.saliency.images import decode_png, png_bytes
from ai.sample.generator import Tree
from ai.sample.saliency import write_saliency
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

SMALL = ["--epochs", "2", "--batch-size", "4", "--crop-size", "32", "--min-val-images", "2",
         "--parity-size", "32"]  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def duts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_saliency(Tree(root), np.random.default_rng([0, 14]))
    return root / "saliency/duts"


@pytest.fixture(scope="module")
def trained(duts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    for script, name in (("train_saliency_student", "v1"), ("train_saliency_student_v2", "v2")):
        proc = run_script(script, "--duts-root", duts, "--output", out / f"{name}.onnx",
                          "--metrics-out", out / f"{name}.json", *SMALL)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    registry = out / "registry.json"
    registry.write_text('{"schema_version": 1, "models": []}\n')
    return {"v1": out / "v1.onnx", "v2": out / "v2.onnx", "dir": out, "registry": registry}


class TestImages:
    def test_a_written_png_reads_back_exactly(self):
        image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
        assert np.array_equal(decode_png(png_bytes(image)), image.astype(float))
        grey = image[..., 0]
        assert np.array_equal(decode_png(png_bytes(grey))[..., 0], grey.astype(float))

    @pytest.mark.parametrize("kind", [1, 2, 3, 4])
    def test_every_row_filter_is_undone(self, kind):
        image = np.random.default_rng(kind).integers(0, 256, (4, 6, 3), dtype=np.uint8)
        raw = image.reshape(4, -1).astype(np.int64)
        rows = []
        for y in range(4):
            up = raw[y - 1] if y else np.zeros(18, dtype=np.int64)
            left = np.concatenate([np.zeros(3, dtype=np.int64), raw[y, :-3]])
            upleft = np.concatenate([np.zeros(3, dtype=np.int64), up[:-3]])
            if kind == 1:
                pred = left
            elif kind == 2:
                pred = up
            elif kind == 3:
                pred = (left + up) // 2
            else:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
            rows.append(bytes([kind]) + ((raw[y] - pred) & 0xFF).astype(np.uint8).tobytes())
        header = struct.pack(">IIBBBBB", 6, 4, 8, 2, 0, 0, 0)

        def chunk(tag: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(tag + body) & 0xFFFFFFFF
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))  # fmt: skip
        assert np.array_equal(decode_png(data), image.astype(float))


def test_the_numpy_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    for variant in unet.VARIANTS:
        params = unet.init_params(variant, rng)
        net = unet.Net(variant, params, training=True)
        x, t = rng.normal(size=(2, 3, 16, 16)), (rng.random((2, 1, 16, 16)) > 0.5) * 1.0

        def loss(net: unet.Net = net, x: np.ndarray = x, t: np.ndarray = t) -> float:
            net.grads = {}
            logits, backward = net.logits(x)
            value, grad = unet.bce_dice(logits, t)
            backward(grad)
            return value

        loss()
        grads = dict(net.grads)
        for key in unet.trainable(variant):
            index = tuple(1 if d > 1 else 0 for d in params[key].shape)
            old = params[key][index]
            params[key][index] = old + 1e-6
            up = loss()
            params[key][index] = old - 1e-6
            down = loss()
            params[key][index] = old
            numeric = (up - down) / 2e-6
            assert abs(numeric - grads[key][index]) <= 1e-4 * abs(numeric) + 1e-8, key


class TestTrainers:
    @pytest.mark.parametrize("name", ["v1", "v2"])
    def test_metrics_carry_the_block_and_the_onnx_its_interface(self, trained, duts, name):
        onnx_path, metrics_path = trained[name], trained[name].with_suffix(".json")
        metrics = json.loads(metrics_path.read_text())
        block = block_of(onnx_path)
        assert metrics["run_provenance"]["inputs"] == block["inputs"]
        assert metrics["run_provenance"]["args"] == block["args"]
        assert block["inputs"]["duts_root"]["kind"] == "directory"
        assert block["outputs"]["onnx"]["sha256"] == sha256(onnx_path) == metrics["onnx_sha256"]
        assert block["args"]["crop_size"] == 32
        assert block["args"]["epochs"] == 2
        assert set(block["outcome"]["gates"]) == {"best_checkpoint", "onnx_parity"}
        assert {"best_val_iou", "param_count", "history", "total_time_sec", "onnx_bytes",
                "pt_onnx_max_abs_diff", "device"} <= set(metrics)  # fmt: skip
        assert metrics["pt_onnx_max_abs_diff"] <= 1e-5
        assert [h["epoch"] for h in metrics["history"]] == [1, 2]
        model = onnx.load(str(onnx_path))
        assert [i.name for i in model.graph.input] == ["input"]
        assert [o.name for o in model.graph.output] == ["saliency_map"]
        assert model.opset_import[0].version == 17
        ops = {n.op_type for n in model.graph.node}
        assert ("ConvTranspose" in ops) == (name == "v1")
        assert ("Resize" in ops) == (name == "v2")
        # dynamic H/W: a size the trainer never used, against the numpy model from the file
        params, missing = onnx_graph.params_from_onnx(model, name)
        assert missing == []
        x = np.random.default_rng(1).normal(size=(1, 3, 24, 40))
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"input": x.astype(np.float32)})
        assert got.shape == (1, 1, 24, 40)
        assert np.max(np.abs(got - unet.Net(name, params).predict(x))) < 1e-5

    def test_a_second_run_is_byte_identical(self, trained, duts):
        out = trained["dir"]
        before = {p: p.read_bytes() for p in (out / "v1.onnx", out / "v1.json",
                                              sidecar_of(out / "v1.onnx"))}  # fmt: skip
        proc = run_script("train_saliency_student", "--duts-root", duts, "--output",
                          out / "v1.onnx", "--metrics-out", out / "v1.json", *SMALL)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert {p: p.read_bytes() for p in before} == before

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ("no_masks", "DUTS-TR-Mask: no such folder"),
            ("jpeg", "JPEG decoding is not available"),
            ("crop", "must be a multiple of 8"),
            ("few", "less than one batch"),
        ],
    )
    def test_bad_input_is_one_line_exit_2_and_no_model(self, duts, tmp_path, change,
                                                              message):  # fmt: skip
        root = tmp_path / "duts"
        for sub in ("DUTS-TR-Image", "DUTS-TR-Mask"):
            (root / sub).mkdir(parents=True)
            for f in sorted((duts / sub).iterdir())[:6]:
                (root / sub / f.name).write_bytes(f.read_bytes())
        argv = [*SMALL]
        if change == "no_masks":
            for f in (root / "DUTS-TR-Mask").iterdir():
                f.unlink()
            (root / "DUTS-TR-Mask").rmdir()
        elif change == "jpeg":
            first = sorted((root / "DUTS-TR-Image").iterdir())[0]
            first.rename(first.with_suffix(".jpg"))
        elif change == "crop":
            argv[argv.index("--crop-size") + 1] = "30"
        else:
            argv[argv.index("--min-val-images") + 1] = "4"
        out = tmp_path / "out"
        proc = run_script("train_saliency_student", "--duts-root", root, "--output",
                          out / "m.onnx", "--metrics-out", out / "m.json", *argv)  # fmt: skip
        assert proc.returncode == 2
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (out / "m.onnx").exists()
        assert not (out / "m.json").exists()
        assert block_of(out / "m.onnx")["outcome"]["exit_code"] == 2


class TestValidator:
    def test_a_good_model_passes_the_three_steps(self, trained, tmp_path):
        report = tmp_path / "validation.json"
        proc = run_script("validate_saliency_student", "--onnx", trained["v1"],
                          "--parity-size", "32", "--registry", trained["registry"],
                          "--out-json", report)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().endswith("Result: OK")
        document = json.loads(report.read_text())
        block = load_sidecar(sidecar_of(report))["run_provenance"]
        assert document["run_provenance"]["inputs"] == block["inputs"]
        assert block["inputs"]["onnx"]["sha256"] == sha256(trained["v1"])
        assert block["inputs"]["registry"]["sha256"] == sha256(trained["registry"])
        assert all(g["passed"] for g in block["outcome"]["gates"].values())
        assert set(block["outcome"]["gates"]) == {"op_allowlist", "parity", "registry"}
        steps = document["steps"]
        assert "ConvTranspose" in steps["op_allowlist"]["ops_used"]
        assert steps["parity"]["missing_initializers"] == []
        assert document["signature"]["input_shape"] == [1, 3, "height", "width"]

    def test_a_failed_step_still_writes_its_evidence_and_exits_1(self, trained, tmp_path):
        registry = tmp_path / "registry.json"
        (tmp_path / "m.onnx").write_bytes(trained["v1"].read_bytes())
        registry.write_text(json.dumps({"schema_version": 1, "models": [
            {"id": "saliency", "kind": "saliency", "onnx": "m.onnx", "sha256": "0" * 64,
             "sidecar": "m.json"}]}))  # fmt: skip
        report = tmp_path / "validation.json"
        proc = run_script("validate_saliency_student", "--onnx", trained["v2"],
                          "--variant", "v1", "--parity-size", "32", "--registry", registry,
                          "--out-json", report)  # fmt: skip
        assert proc.returncode == 1
        assert proc.stdout.strip().endswith("Result: FAIL")
        gates = block_of(report)["outcome"]["gates"]
        assert not gates["parity"]["passed"]
        assert not gates["registry"]["passed"]
        assert gates["op_allowlist"]["passed"]
        document = json.loads(report.read_text())
        assert document["steps"]["parity"]["missing_initializers"]  # v2 has no up3.weight
        assert document["exit_code"] == 1

    def test_an_operator_outside_the_allowlist_fails_step_one(self, trained, tmp_path):
        model = onnx.load(str(trained["v1"]))
        for node in model.graph.node:
            if node.op_type == "Relu":
                node.op_type = "Elu"
        bad = tmp_path / "bad.onnx"
        onnx.save(model, str(bad))
        proc = run_script("validate_saliency_student", "--onnx", bad, "--parity-size", "32",
                          "--registry", trained["registry"])  # fmt: skip
        assert proc.returncode == 1
        assert "[1/3] op allowlist: FAIL" in proc.stdout
        assert not load_sidecar(tmp_path / "bad.onnx.validation.manifest.json")["run_provenance"][
            "outcome"]["gates"]["op_allowlist"]["passed"]  # fmt: skip

    def test_a_missing_model_is_exit_2_with_no_report(self, trained, tmp_path):
        report = tmp_path / "validation.json"
        proc = run_script("validate_saliency_student", "--onnx", tmp_path / "none.onnx",
                          "--registry", trained["registry"], "--out-json", report)  # fmt: skip
        assert proc.returncode == 2
        assert "no such file" in proc.stderr
        assert not report.exists()
        assert block_of(report)["outcome"]["exit_code"] == 2  # the failed run is on record


class TestBlockIoU:
    def test_masks_from_the_model_lead_back_to_it(self, trained, duts, tmp_path):
        masks = tmp_path / "masks"
        proc = run_script("predict_saliency_masks", "--onnx", trained["v1"], "--duts-root", duts,
                          "--out-dir", masks)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert block_of(masks)["inputs"]["onnx"]["sha256"] == sha256(trained["v1"])
        pred = np.load(masks / "pred/sample_0000.npy")
        assert pred.shape == (48, 64)
        assert pred.dtype == np.float32
        report = tmp_path / "per_mb.json"
        proc = run_script("eval_saliency_per_mb", "--pred-dir", masks / "pred", "--gt-dir",
                          masks / "gt", "--block-size", "8", "--out-json", report)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        document = json.loads(report.read_text())
        assert document["n_pairs"] == 14
        block = block_of(report)
        assert block["inputs"]["pred_dir"]["kind"] == "directory"
        assert document["run_provenance"]["inputs"] == block["inputs"]

    def test_the_scores_are_the_fork_definitions(self, tmp_path):
        pred, gt = tmp_path / "pred", tmp_path / "gt"
        pred.mkdir()
        gt.mkdir()
        a = np.zeros((32, 48))
        a[:16, :16] = 1.0  # one salient 16-block
        a[16:, 32:] = 0.4  # below the threshold
        np.save(pred / "a.npy", a)
        b = np.zeros((32, 48), dtype=np.uint8)
        b[:16, :32] = 200  # two blocks, 16-bit P2 with a comment
        values = " ".join(str(int(v) * 300) for v in b.ravel())
        (gt / "a.pgm").write_text(f"P2\n# mask\n48 32\n65535\n{values}\n")
        np.save(pred / "b.npy", np.zeros((32, 48)))
        (gt / "b.pgm").write_bytes(b"P5\n48 32\n255\n" + bytes(32 * 48))
        proc = run_script("eval_saliency_per_mb", "--pred-dir", pred, "--gt-dir", gt)
        assert proc.returncode == 0, proc.stderr
        document = json.loads(proc.stdout)
        rows = {r["stem"]: r for r in document["rows"]}
        assert rows["a"]["iou"] == 0.5
        assert rows["a"]["union_blocks"] == 2
        assert rows["b"]["iou"] == 1.0  # nothing salient on either side
        assert document["macro_iou"] == 0.75
        assert document["micro_iou"] == 0.5
        assert list(document) == sorted(document)
        assert (tmp_path / "pred.eval.manifest.json").is_file()

    @pytest.mark.parametrize(
        ("argv", "message"),
        [(["--block-size", "0"], "must be positive"), (["--threshold", "1.5"], "[0, 1]"),
         (["--block-size", "64"], "smaller than one"), ([], "does not match")],
    )  # fmt: skip
    def test_bad_input_is_exit_2_with_no_report(self, tmp_path, argv, message):
        pred, gt = tmp_path / "pred", tmp_path / "gt"
        pred.mkdir()
        gt.mkdir()
        np.save(pred / "a.npy", np.zeros((32, 48)))
        np.save(gt / "a.npy", np.zeros((32, 48) if argv else (32, 32)))
        report = tmp_path / "r.json"
        proc = run_script("eval_saliency_per_mb", "--pred-dir", pred, "--gt-dir", gt,
                          "--out-json", report, *argv)  # fmt: skip
        assert proc.returncode == 2
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not report.exists()
        assert block_of(report)["outcome"]["exit_code"] == 2  # the failed run is on record
