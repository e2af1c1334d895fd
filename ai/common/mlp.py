"""A small multilayer perceptron in numpy: seeded Adam training, and the same network in ONNX.

The fork trains its FR regressors, tiny VMAF models and predictors with torch; these are the
same architectures (Linear layers with ReLU or GELU between them) trained with numpy, so the
pipeline's install stays light. The ONNX graph computes exactly what :meth:`MLP.predict` does:
``Gemm`` per layer, ``Relu`` or GELU written with ``Erf`` (opset 17 has no ``Gelu``), optional
standardisation of the inputs baked in as constants, and several named inputs concatenated.

Training follows the fork's tiny-model loop: one ``numpy.random.default_rng(seed)`` per call,
a fresh permutation every epoch, contiguous minibatches (the last one partial), Adam without
weight decay unless asked, MSE loss (or Gaussian NLL for a two-output variance head).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # onnx takes a while to import; training alone does not need it
    import onnx

ACTIVATIONS = ("relu", "gelu")
_SQRT2 = math.sqrt(2.0)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function to float32 precision (Abramowitz and Stegun 7.1.26, |error| < 2e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)))


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.asarray(np.maximum(z, 0.0))
    return np.asarray(0.5 * z * (1.0 + erf(z / _SQRT2)))


def _act_grad(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(z.dtype)
    gauss = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.asarray(0.5 * (1.0 + erf(z / _SQRT2)) + z * gauss)


@dataclass
class MLP:
    """``Linear → act → … → Linear``, ``weights[i]`` of shape ``[in, out]``."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str = "relu"
    # Standardisation of the first ``len(mean)`` input columns, applied before the first layer.
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std: np.ndarray = field(default_factory=lambda: np.ones(0))

    @classmethod
    def create(cls, sizes: Sequence[int], seed: int, activation: str = "relu") -> MLP:
        """Layers of ``sizes`` (``[in, hidden..., out]``), initialised as torch's Linear is."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"layer sizes must be at least two positive numbers, not {sizes}")
        rng = np.random.default_rng(seed)
        weights, biases = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            biases.append(rng.uniform(-bound, bound, fan_out))
        return cls(weights, biases, activation)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[0], *(w.shape[1] for w in self.weights)]

    @property
    def n_params(self) -> int:
        return int(sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True)))

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        k = len(self.mean)
        if not k:
            return x
        out = np.array(x, dtype=np.float64, copy=True)
        out[:, :k] = (out[:, :k] - self.mean) / self.std
        return out

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        inputs, pre = [x], []
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = h @ w + b
            pre.append(z)
            h = self._output(z) if i == len(self.weights) - 1 else _act(self.activation, z)
            inputs.append(h)
        return inputs, pre

    def _output(self, z: np.ndarray) -> np.ndarray:
        """The last layer's output from its pre-activation: linear; a subclass may squash it."""
        return z

    def _output_grad(self, out: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The loss gradient by the last pre-activation, from the one by the output ``out``."""
        return grad

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``[N, out]`` for ``[N, in]`` raw inputs (standardised here when the model says so)."""
        return self._forward(self._standardise(np.asarray(x, dtype=np.float64)))[0][-1]

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        seed: int,
        weight_decay: float = 0.0,
        decoupled_decay: bool = False,
        loss: str = "mse",
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Adam (AdamW with ``decoupled_decay``) on raw inputs; returns each epoch's mean loss.

        ``y`` is ``[N]`` or ``[N, out]``. ``loss="gaussian_nll"`` needs two outputs (mean and
        log-variance), as the fork's variance head.
        """
        if loss not in ("mse", "gaussian_nll"):
            raise ValueError(f"unknown loss {loss!r}")
        xs = self._standardise(np.asarray(x, dtype=np.float64))
        target = np.asarray(y, dtype=np.float64).reshape(len(xs), -1)
        if loss == "gaussian_nll" and self.sizes[-1] != 2:
            raise ValueError("gaussian_nll needs a model with two outputs")
        params = [*self.weights, *self.biases]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        rng = np.random.default_rng(seed)
        history: list[float] = []
        step = 0
        n = len(xs)
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                acts, pre = self._forward(xs[idx])
                out, t = acts[-1], target[idx]
                if loss == "mse":
                    diff = out - t
                    total += float(np.sum(diff**2)) / out.shape[1]
                    grad = 2.0 * diff / diff.size
                else:
                    mu, logvar = out[:, :1], np.clip(out[:, 1:], -20, 20)
                    inv = np.exp(-logvar)
                    total += float(np.sum(0.5 * (logvar + (t - mu) ** 2 * inv)))
                    grad = np.concatenate(
                        [(mu - t) * inv, 0.5 * (1.0 - (t - mu) ** 2 * inv)], axis=1
                    ) / len(idx)
                grad = self._output_grad(out, grad)
                grads_w: list[np.ndarray] = [np.empty(0)] * len(self.weights)
                grads_b: list[np.ndarray] = [np.empty(0)] * len(self.weights)
                for layer in range(len(self.weights) - 1, -1, -1):
                    grads_w[layer] = acts[layer].T @ grad
                    grads_b[layer] = grad.sum(axis=0)
                    if layer:
                        grad = (grad @ self.weights[layer].T) * _act_grad(
                            self.activation, pre[layer - 1]
                        )
                step += 1
                for i, (p, g) in enumerate(zip(params, [*grads_w, *grads_b], strict=True)):
                    if weight_decay and not decoupled_decay:
                        g = g + weight_decay * p
                    m[i] = beta1 * m[i] + (1 - beta1) * g
                    v[i] = beta2 * v[i] + (1 - beta2) * g * g
                    m_hat = m[i] / (1 - beta1**step)
                    v_hat = v[i] / (1 - beta2**step)
                    if weight_decay and decoupled_decay:
                        p *= 1.0 - lr * weight_decay
                    p -= lr * m_hat / (np.sqrt(v_hat) + eps)
            history.append(total / n)
            if on_epoch is not None:
                on_epoch(epoch, history[-1])
        return history

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for ``numpy.savez``: ``w0, b0, w1, b1, …`` and the standardisation."""
        out: dict[str, np.ndarray] = {"mean": self.mean, "std": self.std}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"w{i}"], out[f"b{i}"] = w, b
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], activation: str = "relu") -> MLP:
        layers = sum(1 for k in state if k.startswith("w") and k[1:].isdigit())
        return cls(
            [np.asarray(state[f"w{i}"], dtype=np.float64) for i in range(layers)],
            [np.asarray(state[f"b{i}"], dtype=np.float64) for i in range(layers)],
            activation,
            np.asarray(state.get("mean", np.zeros(0)), dtype=np.float64),
            np.asarray(state.get("std", np.ones(0)), dtype=np.float64),
        )


def zscore(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations, a deviation under 1e-8 taken as 1."""
    mean = np.asarray(x, dtype=np.float64).mean(axis=0)
    std = np.asarray(x, dtype=np.float64).std(axis=0)
    return mean, np.where(std < 1e-8, 1.0, std)


def to_onnx(
    model: MLP,
    inputs: Sequence[tuple[str, int]],
    output: str,
    *,
    graph_name: str,
    opset: int = 17,
    squeeze: bool = True,
    output_transform: Callable[[list[onnx.NodeProto], str, str], None] | None = None,
    batch_dim: str = "batch",
) -> onnx.ModelProto:
    """The network as an ONNX model taking ``inputs`` (name, width), in that order, concatenated.

    With ``squeeze`` a one-output network's ``[N, 1]`` becomes ``[N]``. ``output_transform``
    may append nodes from the network's raw output name to ``output`` (a ``Sigmoid`` scaled to
    0-100, say); it is given the node list, the raw name and the final name.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if sum(width for _, width in inputs) != model.sizes[0]:
        raise ValueError(f"inputs {list(inputs)} do not add up to the model's {model.sizes[0]}")
    f32 = np.float32
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    current = inputs[0][0]
    if len(inputs) > 1:
        nodes.append(helper.make_node("Concat", [n for n, _ in inputs], ["concat"], axis=1))
        current = "concat"
    k = len(model.mean)
    if k:
        width = model.sizes[0]
        mean = np.zeros(width, dtype=f32)
        std = np.ones(width, dtype=f32)
        mean[:k], std[:k] = model.mean, model.std
        inits += [
            numpy_helper.from_array(mean, "input_mean"),
            numpy_helper.from_array(std, "input_std"),
        ]
        nodes += [
            helper.make_node("Sub", [current, "input_mean"], ["centred"]),
            helper.make_node("Div", ["centred", "input_std"], ["standardised"]),
        ]
        current = "standardised"
    last = len(model.weights) - 1
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        inits += [
            numpy_helper.from_array(w.astype(f32), f"layer{i}.weight"),
            numpy_helper.from_array(b.astype(f32), f"layer{i}.bias"),
        ]
        z = f"layer{i}.out"
        nodes.append(helper.make_node("Gemm", [current, f"layer{i}.weight", f"layer{i}.bias"], [z]))
        if i == last:
            current = z
        elif model.activation == "relu":
            nodes.append(helper.make_node("Relu", [z], [f"act{i}"]))
            current = f"act{i}"
        else:
            current = _gelu_nodes(nodes, inits, z, f"act{i}")
    out_dims: list[str | int] = (
        [batch_dim] if squeeze and model.sizes[-1] == 1 else [batch_dim, model.sizes[-1]]
    )
    raw = current
    if squeeze and model.sizes[-1] == 1:
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze_axes"))
        nodes.append(helper.make_node("Squeeze", [current, "squeeze_axes"], ["squeezed"]))
        raw = "squeezed"
    if output_transform is not None:
        output_transform(nodes, raw, output)
    else:
        nodes.append(helper.make_node("Identity", [raw], [output]))
    graph = helper.make_graph(
        nodes,
        graph_name,
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch_dim, width])
            for n, width in inputs
        ],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_dims)],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ai.common.mlp"
    )
    onnx_model.ir_version = min(onnx_model.ir_version, 10)  # readable by onnxruntime in use
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _gelu_nodes(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], z: str, out: str
) -> str:
    """``0.5 · z · (1 + erf(z / √2))`` from opset-17 operators."""
    from onnx import helper, numpy_helper

    if not any(t.name == "gelu.sqrt2" for t in inits):
        inits += [
            numpy_helper.from_array(np.array(_SQRT2, dtype=np.float32), "gelu.sqrt2"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "gelu.one"),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "gelu.half"),
        ]
    nodes += [
        helper.make_node("Div", [z, "gelu.sqrt2"], [f"{out}.scaled"]),
        helper.make_node("Erf", [f"{out}.scaled"], [f"{out}.erf"]),
        helper.make_node("Add", [f"{out}.erf", "gelu.one"], [f"{out}.plus1"]),
        helper.make_node("Mul", [z, f"{out}.plus1"], [f"{out}.prod"]),
        helper.make_node("Mul", [f"{out}.prod", "gelu.half"], [out]),
    ]
    return out
