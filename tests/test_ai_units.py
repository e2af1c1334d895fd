"""The ai/ modules on their own: scales, splits, statistics, stems, checkpoints, libvmaf JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai.common.files import InputError, jsonl_bytes
from ai.corpus.bvi_dvc import parse_stem
from ai.corpus.corpora import SCALES
from ai.features.libvmaf import Cache, Pair, load, parse_features, vmaf_command
from ai.features.tables import (
    content_name,
    motion_fps_weight,
    output_order,
    split_fraction,
    split_of,
)
from ai.mos.mos_head import Head, checkpoint_bytes, fit, load_checkpoint, plcc, rankdata, srocc


@pytest.mark.parametrize(
    ("fps", "weight"),
    [(24, 1.0), (32, 1.0), (30, 1.0), (60, 0.5), (15, 2.0), (120, 0.25), (5, 4.0), (None, None),
     (0, None)],
)  # fmt: skip
def test_motion_fps_weight(fps, weight):
    assert motion_fps_weight(fps) == weight


@pytest.mark.parametrize(
    ("corpus", "native", "unified"),
    [("konvid-1k", 1.0, 0.0), ("lsvq", 5.0, 100.0), ("konvid-150k", 3.0, 50.0),
     ("youtube-ugc", 5.05, 101.25), ("youtube-ugc", 5.06, None), ("konvid-1k", 0.94, None),
     ("waterloo-ivc-4k", 73.5, 73.5), ("netflix-public", 100.05, 100.05)],
)  # fmt: skip
def test_scales_map_onto_0_100_within_tolerance(corpus, native, unified):
    assert SCALES[corpus].unify(native) == unified


def test_a_content_never_straddles_the_split():
    rungs = [f"chug_c{c:02d}__{r}.mp4" for c in range(40) for r in ("2160p", "720p", "540p")]
    by_content: dict[str, set[str]] = {}
    for clip in rungs:
        by_content.setdefault(content_name(clip), set()).add(split_of(0, clip))
    assert all(len(splits) == 1 for splits in by_content.values())
    assert content_name("chug_c07__1080p_4000k.mp4") == "chug_c07"
    assert content_name("k150k_00012.mp4") == "k150k_00012"


def test_the_split_depends_on_the_seed_and_follows_its_fractions():
    clips = [f"clip{i}.mp4" for i in range(4000)]
    zero = [split_of(0, c) for c in clips]
    assert zero == [split_of(0, c) for c in clips]
    assert zero != [split_of(1, c) for c in clips]
    assert 0.77 < zero.count("train") / 4000 < 0.83
    assert 0.08 < zero.count("val") / 4000 < 0.12


# The fork's rule, BLAKE2s over b"<seed>\0<content>", worked out outside Python with
# `printf '<seed>\0<content>' | openssl dgst -blake2s256`: the digest's first 8 bytes, as hex.
FORK_SPLIT = [
    (0, "chug_c07__2160p.mp4", "2be4eda946e9bf4b", "train"),
    (7, "chug_c07__540p.mp4", "226fc32ad27927ad", "train"),
    (0, "k150k_0001.mp4", "adb1393da71f44c8", "train"),
    (0, "konvid_42.mp4", "d3536b75fd66f4d6", "val"),
    (7, "konvid_42.mp4", "43b916ddbbcf74f5", "train"),
    (0, "clip_14.mp4", "d5efebd04b34d400", "val"),
    (0, "clip_7.mp4", "e7264b9739896ced", "test"),
    (0, "clip_10__1080p.mp4", "f7297f8291b9690e", "test"),
]


@pytest.mark.parametrize(("seed", "clip", "prefix", "expected"), FORK_SPLIT)
def test_the_content_split_is_the_forks_blake2s_rule(seed, clip, prefix, expected):
    assert split_fraction(seed, content_name(clip)) == int(prefix, 16) / 2.0**64
    assert split_of(seed, clip) == expected


def test_rankdata_gives_ties_their_average_rank():
    assert rankdata(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]


@given(st.lists(st.integers(-(10**6), 10**6), min_size=3, max_size=40, unique=True))
def test_srocc_of_a_monotone_map_is_one(values):
    a = np.array(values, dtype=float)
    assert srocc(a, a**3) == pytest.approx(1.0)
    assert srocc(a, -a) == pytest.approx(-1.0)


def test_plcc_of_a_constant_is_zero_not_nan():
    assert plcc(np.ones(5), np.arange(5.0)) == 0.0


def test_fit_recovers_a_linear_relation_and_ignores_constant_inputs():
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=200), rng.normal(size=200), np.zeros(200)])
    y = 3.0 + 0.5 * x[:, 0] - 0.25 * x[:, 1]
    head = fit(x, y, ridge=1e-9)
    assert head.predict(x) == pytest.approx(np.clip(y, 1, 5), abs=1e-6)
    assert head.weights[2] == 0.0


def test_checkpoints_are_byte_stable_and_round_trip(tmp_path):
    head = Head(np.arange(3.0), np.ones(3), np.array([0.1, -0.2, 0.3]), 3.2)
    data = checkpoint_bytes(head, ("a", "b", "c"))
    assert data == checkpoint_bytes(head, ("a", "b", "c"))
    path = tmp_path / "h.npz"
    path.write_bytes(data)
    loaded, features = load_checkpoint(path)
    assert features == ("a", "b", "c")
    assert loaded.weights.tolist() == [0.1, -0.2, 0.3]
    assert loaded.bias == 3.2


@pytest.mark.parametrize(
    ("stem", "expected"),
    [("Library_1920x1080_25fps_libx265_medium_crf27", ("Library_1920x1080_25fps", 1920, 1080, 25.0,
      "libx265", "medium", 27)),
     ("Bar_Baz_3840x2160_59.94fps", ("Bar_Baz_3840x2160_59.94fps", 3840, 2160, 59.94, None, None,
      None))],
)  # fmt: skip
def test_bvi_stems(stem, expected):
    parsed = parse_stem(stem)
    assert (parsed.source, parsed.width, parsed.height, parsed.fps, parsed.encoder, parsed.preset,
            parsed.crf) == expected  # fmt: skip


def test_a_stem_without_geometry_is_refused():
    with pytest.raises(InputError, match="not a BVI-DVC stem"):
        parse_stem("Library_crf27")


def test_feature_lists_are_checked():
    assert parse_features("adm2, motion2") == ("adm2", "motion2")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown feature"):
        parse_features("adm2,vmaf")
    with pytest.raises(argparse.ArgumentTypeError, match="twice"):
        parse_features("adm2,adm2")


@pytest.mark.parametrize(
    ("document", "message"),
    [([], "expected a JSON object"), ({"frames": []}, "no frames"),
     ({"frames": [{"metrics": None}]}, "frame 0 has no metrics"),
     ({"frames": [{"metrics": {"vmaf": True}}]}, "vmaf is not a number"),
     ({"frames": [{"metrics": {"vmaf": 1}}], "pooled_metrics": {"vmaf": {"mean": "x"}}},
      "pooled_metrics.vmaf.mean is not a number")],
)  # fmt: skip
def test_libvmaf_json_is_checked(tmp_path, document, message):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=message):
        load(path)


def test_the_vmaf_command_asks_for_each_extractor_once():
    pair = Pair("k", Path("r.yuv"), Path("d.yuv"), 640, 360)
    command = vmaf_command("vmaf", pair, ["adm2", "psnr_y", "psnr_cb", "ciede2000"], Path("o.json"))
    assert command[:3] == ["vmaf", "--reference", "r.yuv"]
    assert command[command.index("--width") + 1] == "640"
    features = [command[i + 1] for i, word in enumerate(command) if word == "--feature"]
    assert features == ["psnr", "ciede"]


def test_a_cache_without_a_binary_says_so(tmp_path):
    cache = Cache(tmp_path)
    with pytest.raises(InputError, match=r"not in the libvmaf cache .* and no --vmaf-bin"):
        cache.get(Pair("k", tmp_path / "r", tmp_path / "d", 1, 1), ["adm2"])


def test_jsonl_rows_keep_their_key_order_and_write_non_finite_as_null():
    data = jsonl_bytes([{"b": 1, "a": float("nan")}, {"z": float("inf")}])
    assert data == b'{"b": 1, "a": null}\n{"z": null}\n'


def test_combined_columns_keep_the_usual_order():
    first = ["clip_name", "vmaf", "adm2_mean", "extra"]
    order = output_order("clip_name", [first, ["clip_name", "mos", "adm2_std", "psnr_y_mean"]])
    assert order == ["clip_name", "corpus", "mos", "adm2_mean", "adm2_std", "psnr_y_mean", "vmaf",
                     "extra"]  # fmt: skip
