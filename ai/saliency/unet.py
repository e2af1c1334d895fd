"""The fork's saliency U-Nets (``TinyUNet`` and ``TinyUNetV2``) in numpy, trained by hand.

Every layer keeps what its backward pass needs from the forward pass; the network calls
them in order and walks back in reverse. Parameters and buffers live in one dict under the
names a torch ``state_dict`` of the same modules would use (``enc1.0.0.weight`` is the first
convolution of the first encoder block), so the ONNX graph carries the same names and a
validator can rebuild the model from its initializers.

- CBR: Conv3x3 (no bias) + BatchNorm + ReLU; encoder blocks of two CBRs and a 2x2 max pool.
- v1 upsamples with ConvTranspose(k2, s2, no bias); v2 with a bilinear x2 (half-pixel, as
  torch's ``align_corners=False``) followed by a Conv3x3 (no bias), same channel counts.
- Head: Conv1x1 (with bias) to one logit; the exported graph ends in a sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

VARIANTS = ("v1", "v2")
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
PARAM_WARNING = 200_000

Params = dict[str, np.ndarray]

# (block, in, out) of every CBR, in forward order
ENCODER = (("enc1", 3, 16), ("enc2", 16, 32), ("enc3", 32, 48))
DECODER = (("up3", "dec3", 48, 32, 48), ("up2", "dec2", 32, 16, 32), ("up1", "dec1", 16, 8, 16))


# -- layers --------------------------------------------------------------------------------------


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.einsum("ik,kj->ij", a, b))


def conv3x3(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stride 1, padding 1, no bias; returns the output and the im2col matrix ``[C·9, N·H·W]``
    (laid out so the copy reads whole image rows)."""
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (h, wd), axis=(2, 3))  # [N, C, 3, 3, H, W]
    cols = windows.transpose(1, 2, 3, 0, 4, 5).reshape(c * 9, n * h * wd)
    out = _mm(w.reshape(w.shape[0], -1), cols)
    return out.reshape(-1, n, h, wd).transpose(1, 0, 2, 3), cols


def conv3x3_backward(
    dout: np.ndarray, cols: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    n, c, h, wd = x_shape
    d2 = dout.transpose(1, 0, 2, 3).reshape(w.shape[0], -1)
    dw = _mm(d2, cols.T).reshape(w.shape)
    dcols = _mm(w.reshape(w.shape[0], -1).T, d2).reshape(c, 3, 3, n, h, wd)
    dpadded = np.zeros((n, c, h + 2, wd + 2), dtype=dout.dtype)
    for i in range(3):
        for j in range(3):
            dpadded[:, :, i : i + h, j : j + wd] += dcols[:, i, j].transpose(1, 0, 2, 3)
    return dpadded[:, :, 1:-1, 1:-1], dw


def upsample_matrix(size: int) -> np.ndarray:
    """``[2·size, size]``: linear interpolation x2 at half-pixel centres, edges clamped."""
    matrix = np.zeros((2 * size, size))
    for o in range(2 * size):
        src = max((o + 0.5) / 2.0 - 0.5, 0.0)
        i0 = min(math.floor(src), size - 1)
        i1 = min(i0 + 1, size - 1)
        frac = src - i0
        matrix[o, i0] += 1.0 - frac
        matrix[o, i1] += frac
    return matrix


@dataclass
class Layer:
    """One step of the network: ``forward`` keeps its cache, ``backward`` adds to ``grads``."""

    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray], np.ndarray]


@dataclass
class Net:
    """A TinyUNet (v1) or TinyUNetV2 over ``params``; ``training`` picks the BN statistics."""

    variant: str
    params: Params
    training: bool = False
    grads: Params = field(default_factory=dict)

    # ---- building blocks, each returning a Layer bound to this net's state ----

    def _conv(self, key: str) -> Layer:
        cache: dict[str, object] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            out, cols = conv3x3(x, self.params[key])
            cache.update(cols=cols, shape=x.shape)
            return out

        def backward(dout: np.ndarray) -> np.ndarray:
            dx, dw = conv3x3_backward(dout, cache["cols"], self.params[key], cache["shape"])  # type: ignore[arg-type]
            self._grad(key, dw)
            return dx

        return Layer(forward, backward)

    def _bn(self, prefix: str) -> Layer:
        cache: dict[str, np.ndarray] = {}
        p = self.params

        def forward(x: np.ndarray) -> np.ndarray:
            gamma, beta = p[f"{prefix}.weight"], p[f"{prefix}.bias"]
            if self.training:
                mean = x.mean(axis=(0, 2, 3))
                var = x.var(axis=(0, 2, 3))
                count = x.size // x.shape[1]
                unbiased = var * count / max(count - 1, 1)
                p[f"{prefix}.running_mean"] = (1 - BN_MOMENTUM) * p[
                    f"{prefix}.running_mean"
                ] + BN_MOMENTUM * mean
                p[f"{prefix}.running_var"] = (1 - BN_MOMENTUM) * p[
                    f"{prefix}.running_var"
                ] + BN_MOMENTUM * unbiased
                p[f"{prefix}.num_batches_tracked"] = p[f"{prefix}.num_batches_tracked"] + 1
            else:
                mean, var = p[f"{prefix}.running_mean"], p[f"{prefix}.running_var"]
            inv_std = 1.0 / np.sqrt(var + BN_EPS)
            xhat = (x - mean[None, :, None, None]) * inv_std[None, :, None, None]
            cache.update(xhat=xhat, inv_std=inv_std)
            return np.asarray(gamma[None, :, None, None] * xhat + beta[None, :, None, None])

        def backward(dout: np.ndarray) -> np.ndarray:
            xhat, inv_std = cache["xhat"], cache["inv_std"]
            gamma = p[f"{prefix}.weight"]
            self._grad(f"{prefix}.weight", (dout * xhat).sum(axis=(0, 2, 3)))
            self._grad(f"{prefix}.bias", dout.sum(axis=(0, 2, 3)))
            dxhat = dout * gamma[None, :, None, None]
            count = dout.size // dout.shape[1]
            s1 = dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
            s2 = (dxhat * xhat).sum(axis=(0, 2, 3))[None, :, None, None]
            return np.asarray(
                inv_std[None, :, None, None] * (dxhat - s1 / count - xhat * s2 / count)
            )

        return Layer(forward, backward)

    @staticmethod
    def _relu() -> Layer:
        cache: dict[str, np.ndarray] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            cache["on"] = x > 0
            return np.where(cache["on"], x, 0.0)

        return Layer(forward, lambda dout: np.where(cache["on"], dout, 0.0))

    @staticmethod
    def _pool() -> Layer:
        cache: dict[str, np.ndarray] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            n, c, h, w = x.shape
            blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
            flat = blocks.reshape(n, c, h // 2, w // 2, 4)
            first = flat.argmax(axis=-1)  # the first maximum, as torch picks it
            cache["pick"] = first
            return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]

        def backward(dout: np.ndarray) -> np.ndarray:
            pick = cache["pick"]
            n, c, h2, w2 = dout.shape
            flat = np.zeros((n, c, h2, w2, 4), dtype=dout.dtype)
            np.put_along_axis(flat, pick[..., None], dout[..., None], axis=-1)
            blocks = flat.reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
            return blocks.reshape(n, c, 2 * h2, 2 * w2)

        return Layer(forward, backward)

    def _conv_transpose(self, key: str) -> Layer:
        cache: dict[str, np.ndarray] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            cache["x"] = x
            w = self.params[key]  # [in, out, 2, 2]
            n, _, h, wd = x.shape
            out = np.asarray(np.einsum("nchw,coab->nohawb", x, w))
            return out.reshape(n, w.shape[1], 2 * h, 2 * wd)

        def backward(dout: np.ndarray) -> np.ndarray:
            x, w = cache["x"], self.params[key]
            n, o, h2, w2 = dout.shape
            d6 = dout.reshape(n, o, h2 // 2, 2, w2 // 2, 2)
            self._grad(key, np.einsum("nchw,nohawb->coab", x, d6))
            return np.asarray(np.einsum("nohawb,coab->nchw", d6, w))

        return Layer(forward, backward)

    @staticmethod
    def _upsample() -> Layer:
        cache: dict[str, np.ndarray] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            uh, uw = upsample_matrix(x.shape[2]), upsample_matrix(x.shape[3])
            cache.update(uh=uh, uw=uw)
            return np.asarray(np.einsum("oh,nchp->ncop", uh, np.einsum("nchw,pw->nchp", x, uw)))

        def backward(dout: np.ndarray) -> np.ndarray:
            rows = np.einsum("oh,ncop->nchp", cache["uh"], dout)
            return np.asarray(np.einsum("nchp,pw->nchw", rows, cache["uw"]))

        return Layer(forward, backward)

    def _head(self) -> Layer:
        cache: dict[str, np.ndarray] = {}

        def forward(x: np.ndarray) -> np.ndarray:
            cache["x"] = x
            w = self.params["head.weight"].reshape(1, -1)
            logits = np.einsum("oc,nchw->nohw", w, x)
            return np.asarray(logits + self.params["head.bias"][None, :, None, None])

        def backward(dout: np.ndarray) -> np.ndarray:
            x = cache["x"]
            w = self.params["head.weight"]
            self._grad("head.weight", np.einsum("nohw,nchw->oc", dout, x).reshape(w.shape))
            self._grad("head.bias", dout.sum(axis=(0, 2, 3)))
            return np.asarray(np.einsum("oc,nohw->nchw", w.reshape(1, -1), dout))

        return Layer(forward, backward)

    def _cbr(self, prefix: str) -> list[Layer]:
        return [self._conv(f"{prefix}.0.weight"), self._bn(f"{prefix}.1"), self._relu()]

    def _grad(self, key: str, value: np.ndarray) -> None:
        self.grads[key] = self.grads[key] + value if key in self.grads else value

    # ---- the network ----

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], None]]:
        """The head's logits ``[N, 1, H, W]`` and a function taking their gradient back."""
        encoders, pools, skips = [], [], []
        value = x
        for name, _, _ in ENCODER:
            block = [*self._cbr(f"{name}.0"), *self._cbr(f"{name}.1")]
            value = _forward(block, value)
            skips.append(value)
            pool = self._pool()
            value = pool.forward(value)
            encoders.append(block)
            pools.append(pool)
        bottleneck = self._cbr("bottleneck")
        value = _forward(bottleneck, value)
        decoders = []
        for (up, dec, _, _, _), skip in zip(DECODER, reversed(skips), strict=True):
            if self.variant == "v1":
                upper = [self._conv_transpose(f"{up}.weight")]
            else:
                upper = [self._upsample(), self._conv(f"{up}.1.weight")]
            value = _forward(upper, value)
            width = value.shape[1]
            block = self._cbr(dec)
            value = _forward(block, np.concatenate([value, skip], axis=1))
            decoders.append((upper, width, block))
        head = self._head()
        value = head.forward(value)

        def backward(grad: np.ndarray) -> None:
            grad = head.backward(grad)
            skip_grads = []
            for upper, width, block in reversed(decoders):
                grad = _backward(block, grad)
                skip_grads.append(grad[:, width:])
                grad = _backward(upper, grad[:, :width])
            grad = _backward(bottleneck, grad)
            for block, pool, skip_grad in zip(
                reversed(encoders), reversed(pools), reversed(skip_grads), strict=True
            ):
                grad = _backward(block, pool.backward(grad) + skip_grad)

        return value, backward

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The saliency map ``[N, 1, H, W]`` in [0, 1] (BN as the net's mode says)."""
        return sigmoid(self.logits(x)[0])


def _forward(layers: list[Layer], value: np.ndarray) -> np.ndarray:
    for layer in layers:
        value = layer.forward(value)
    return value


def _backward(layers: list[Layer], grad: np.ndarray) -> np.ndarray:
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return grad


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


# -- parameters ------------------------------------------------------------------------------------


def shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Every trainable parameter's name and shape, in state-dict order (buffers not included)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    out: dict[str, tuple[int, ...]] = {}

    def cbr(prefix: str, cin: int, cout: int) -> None:
        out[f"{prefix}.0.weight"] = (cout, cin, 3, 3)
        out[f"{prefix}.1.weight"] = (cout,)
        out[f"{prefix}.1.bias"] = (cout,)

    for name, cin, cout in ENCODER:
        cbr(f"{name}.0", cin, cout)
        cbr(f"{name}.1", cout, cout)
    cbr("bottleneck", 48, 48)
    for up, dec, cin, cout, skip in DECODER:
        if variant == "v1":
            out[f"{up}.weight"] = (cin, cout, 2, 2)
        else:
            out[f"{up}.1.weight"] = (cout, cin, 3, 3)
        cbr(dec, cout + skip, cout)
    out["head.weight"] = (1, 8, 1, 1)
    out["head.bias"] = (1,)
    return out


def bn_prefixes(variant: str) -> list[str]:
    return [k[: -len(".weight")] for k, s in shapes(variant).items() if k.endswith(".1.weight")
            and len(s) == 1]  # fmt: skip


def init_params(variant: str, rng: np.random.Generator) -> Params:
    """torch's default initialisation: uniform ±1/sqrt(fan_in) for weights and the head's bias
    (kaiming_uniform with a=sqrt(5)), BN scale 1 and shift 0, running statistics 0 and 1."""
    params: Params = {}
    for key, shape in shapes(variant).items():
        if len(shape) == 1:
            continue
        # ConvTranspose weights are [in, out, k, k]: torch takes fan_in from dimension 1
        fan_in = int(np.prod(shape[1:]))
        bound = 1.0 / math.sqrt(fan_in)
        params[key] = rng.uniform(-bound, bound, size=shape)
    params["head.bias"] = rng.uniform(-1 / math.sqrt(8), 1 / math.sqrt(8), size=(1,))
    for prefix in bn_prefixes(variant):
        width = shapes(variant)[f"{prefix}.weight"][0]
        params[f"{prefix}.weight"] = np.ones(width)
        params[f"{prefix}.bias"] = np.zeros(width)
        params[f"{prefix}.running_mean"] = np.zeros(width)
        params[f"{prefix}.running_var"] = np.ones(width)
        params[f"{prefix}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return params


def trainable(variant: str) -> list[str]:
    return list(shapes(variant))


def param_count(variant: str) -> int:
    return int(sum(np.prod(s) for s in shapes(variant).values()))


# -- loss, metric, optimiser -------------------------------------------------------------------


def bce_dice(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """BCE (mean over every pixel) + (1 - Dice), Dice per sample with smoothing 1, averaged;
    the loss and its gradient with respect to the logits."""
    n = logits.shape[0]
    prob = sigmoid(logits)
    bce = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    inter = (prob * target).reshape(n, -1).sum(axis=1)
    total = prob.reshape(n, -1).sum(axis=1) + target.reshape(n, -1).sum(axis=1)
    dice = (2 * inter + 1) / (total + 1)
    loss = float(bce.mean() + 1.0 - dice.mean())
    dbce = (prob - target) / logits.size
    t1, i1 = (total + 1)[:, None, None, None], (2 * inter + 1)[:, None, None, None]
    ddice_dprob = (2 * target * t1 - i1) / t1**2
    grad = dbce - ddice_dprob / n * prob * (1 - prob)
    return loss, grad


def batch_iou(prob: np.ndarray, target: np.ndarray) -> float:
    """Per-sample IoU at 0.5, (inter + 1e-6) / (union + 1e-6), averaged over the batch."""
    n = prob.shape[0]
    pred, truth = (prob > 0.5).reshape(n, -1), (target > 0.5).reshape(n, -1)
    inter = (pred & truth).sum(axis=1)
    union = (pred | truth).sum(axis=1)
    return float(np.mean((inter + 1e-6) / (union + 1e-6)))


@dataclass
class Adam:
    """torch's Adam (betas 0.9/0.999, eps 1e-8, no weight decay); ``lr`` set per epoch."""

    keys: list[str]
    lr: float
    step_count: int = 0
    m: Params = field(default_factory=dict)
    v: Params = field(default_factory=dict)

    def step(self, params: Params, grads: Params) -> None:
        self.step_count += 1
        b1, b2 = 0.9, 0.999
        for key in self.keys:
            g = grads[key]
            self.m[key] = b1 * self.m.get(key, 0.0) + (1 - b1) * g
            self.v[key] = b2 * self.v.get(key, 0.0) + (1 - b2) * g * g
            m_hat = self.m[key] / (1 - b1**self.step_count)
            v_hat = self.v[key] / (1 - b2**self.step_count)
            params[key] = params[key] - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def cosine_lr(base: float, epoch: int, total: int) -> float:
    """CosineAnnealingLR(T_max=total, eta_min=0) after ``epoch`` per-epoch steps."""
    return base * (1 + math.cos(math.pi * epoch / total)) / 2
