"""The numpy MLP the FR, tiny and predictor families train, and its ONNX twin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ai.common.mlp import MLP, erf, to_onnx, zscore
from ai.common.onnx_checks import ExportCheckError, check_export, disallowed_ops


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * 5 + 3
    return x, x @ np.arange(1.0, 7.0) + 0.3 * x[:, 0] ** 2


def test_erf_matches_the_standard_library() -> None:
    xs = np.linspace(-5, 5, 2001)
    assert np.max(np.abs(erf(xs) - np.array([math.erf(v) for v in xs]))) < 2e-7


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_training_fits_and_onnx_computes_what_numpy_does(activation: str) -> None:
    x, y = _data()
    model = MLP.create([6, 32, 16, 1], seed=0, activation=activation)
    model.mean, model.std = zscore(x)
    history = model.fit(x, y, epochs=60, batch_size=32, lr=3e-3, seed=0)
    assert history[-1] < history[0] / 50
    assert np.corrcoef(model.predict(x)[:, 0], y)[0, 1] > 0.97
    graph = to_onnx(model, [("features", 4), ("codec", 2)], "score", graph_name="t")
    feeds = {"features": x[:7, :4].astype("f4"), "codec": x[:7, 4:].astype("f4")}
    _, drift = check_export(
        graph, feeds, lambda f: model.predict(np.concatenate([f["features"], f["codec"]], 1)), 1e-4
    )
    assert drift < 1e-4
    assert disallowed_ops(graph) == []


def test_the_same_seed_trains_the_same_weights_and_another_does_not() -> None:
    x, y = _data()
    runs = []
    for seed in (0, 0, 1):
        model = MLP.create([6, 8, 1], seed=seed)
        model.fit(x, y, epochs=3, batch_size=16, lr=1e-3, seed=seed)
        runs.append(model.weights[0])
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_gaussian_nll_learns_a_mean_and_a_variance() -> None:
    x, y = _data()
    model = MLP.create([6, 16, 2], seed=1)
    model.mean, model.std = zscore(x)
    history = model.fit(
        x, y / 10, epochs=40, batch_size=32, lr=3e-3, seed=0, loss="gaussian_nll",
        weight_decay=1e-5, decoupled_decay=True,
    )  # fmt: skip
    assert history[-1] < history[0]
    assert np.corrcoef(model.predict(x)[:, 0], y)[0, 1] > 0.9


def test_parity_failure_is_refused() -> None:
    x, _ = _data()
    model = MLP.create([6, 4, 1], seed=0)
    graph = to_onnx(model, [("features", 6)], "score", graph_name="t")
    with pytest.raises(ExportCheckError, match="differs"):
        check_export(
            graph,
            {"features": x[:3].astype("f4")},
            lambda f: model.predict(f["features"]) + 1,
            1e-4,
        )


def test_state_round_trips() -> None:
    x, _ = _data()
    model = MLP.create([6, 5, 3, 1], seed=2, activation="gelu")
    model.mean, model.std = zscore(x)
    again = MLP.from_state(dict(model.state()), activation="gelu")
    assert np.array_equal(again.predict(x), model.predict(x))
