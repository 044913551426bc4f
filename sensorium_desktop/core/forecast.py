"""A per-sensor forecaster, as the analytics seed trains it: a window of a sensor's history →
its next value, through a small fully connected network (the seed's ``SensorPredictor``:
three layers, ReLU). Large standardized errors are anomaly evidence (:mod:`.quality`).

- **Training**: :func:`train_numpy` (always available: mini-batch Adam in numpy, the same
  network) or :func:`train_torch` (PyTorch when installed, on CUDA when present); both give a
  :class:`Forecaster`.
- **The file**: :meth:`Forecaster.to_bytes` is a small ``.npz`` (weights, normalization, the
  sensor id and attribute it was trained for, the residual scale) that
  :meth:`Forecaster.from_bytes` reads with numpy alone — the bundle carries no torch.
- A model is used only for the sensor and attribute it was trained on (the node's loader
  refuses any other).

Shapes: a series is (n, channels) in the sensor's units; the network sees ``window`` values of
one channel (every ``stride``-th sample, normalized by the training mean and SD) and predicts
the next; all channels of a sensor share the model.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

FORMAT = "sensorium-forecaster/1"
HIDDEN = (64, 32)


@dataclass
class Forecaster:
    """A trained forecaster of one sensor's attribute (numpy inference)."""

    sensor_id: str
    attribute: str
    window: int
    stride: int
    mean: float
    sd: float
    weights: list[np.ndarray]  # W1 (window, h1), b1, W2 (h1, h2), b2, W3 (h2, 1), b3
    resid_sd: float  # SD of the normalized one-step error on the training data
    backend: str = "numpy"
    epochs: int = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Next normalized value for each row of normalized windows ``x`` (m, window) → (m,)."""
        w1, b1, w2, b2, w3, b3 = self.weights
        h = np.maximum(x @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return (h @ w3 + b3)[:, 0]

    def standardized_error(self, values: np.ndarray, last: int = 8) -> np.ndarray:
        """Median |error| / training error SD of the ``last`` newest one-step forecasts, per
        channel, from the sensor's recent values (n, channels) in its units; 0 when too short."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v[:, None]
        sub = v[:: -self.stride][::-1]  # every stride-th sample, ending at the newest
        need = self.window + last
        if sub.shape[0] < need:
            return np.zeros(v.shape[1])
        z = (sub[-need:] - self.mean) / self.sd  # (need, ch)
        idx = np.arange(last)[:, None] + np.arange(self.window)[None, :]  # (last, window)
        errs = []
        for ch in range(z.shape[1]):
            col = np.nan_to_num(z[:, ch])
            pred = self.predict(col[idx])
            errs.append(np.median(np.abs(col[self.window : self.window + last] - pred)))
        return np.asarray(errs) / max(self.resid_sd, 1e-9)

    def to_bytes(self) -> bytes:
        """The portable file's content (``.npz``: weights, normalization, what it was trained for)."""
        meta = {"format": FORMAT, "sensor_id": self.sensor_id, "attribute": self.attribute, "window": self.window,
                "stride": self.stride, "mean": self.mean, "sd": self.sd, "resid_sd": self.resid_sd,
                "backend": self.backend, "epochs": self.epochs}  # fmt: skip
        arrays = {f"w{i}": np.asarray(w, dtype=np.float64) for i, w in enumerate(self.weights)}
        buf = io.BytesIO()
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Forecaster:
        """Read what :meth:`to_bytes` wrote (numpy only); ValueError when it is not that — not
        a file of this format, truncated, or tampered with (weights of the wrong shape or not
        finite, a normalization that is not a positive finite number)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                weights = [np.asarray(z[f"w{i}"], dtype=np.float64) for i in range(6)]
        except Exception as exc:  # a broken zip raises BadZipFile, a bad member anything numpy does
            raise ValueError(f"not a forecaster file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT}")
        try:
            f = cls(str(meta["sensor_id"]), str(meta["attribute"]), int(meta["window"]), int(meta["stride"]),
                    float(meta["mean"]), float(meta["sd"]), weights, float(meta["resid_sd"]),
                    str(meta.get("backend", "numpy")), int(meta.get("epochs", 0)))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"its description is incomplete or wrong ({type(exc).__name__}: {exc})") from exc
        f.check()
        return f

    def check(self) -> None:
        """ValueError unless the weights have the shapes of this network and every number is usable."""
        sizes = (self.window, *HIDDEN, 1)
        want = [s for a, b in itertools.pairwise(sizes) for s in ((a, b), (b,))]
        got = [w.shape for w in self.weights]
        if self.window < 1 or self.stride < 1 or got != want:
            raise ValueError(f"weights of shapes {got} for a window of {self.window}: expected {want}")
        if not all(np.isfinite(w).all() for w in self.weights):
            raise ValueError("weights that are not finite numbers")
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd > 0 and math.isfinite(self.resid_sd)
                and self.resid_sd > 0):  # fmt: skip
            raise ValueError(f"normalization mean {self.mean}, sd {self.sd}, error sd {self.resid_sd}")


def model_name(sensor_id: str, attribute: str) -> str:
    """The file name of ``sensor_id``'s ``attribute`` model in a models folder."""
    return f"{sensor_id}__{attribute}.npz"


def training_pairs(series: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(X (m, window), y (m,), mean, sd) from a series (n, channels), channels pooled, normalized."""
    v = np.asarray(series, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    v = v[::stride]
    finite = v[np.isfinite(v)]
    if finite.size < window + 2:
        raise ValueError(f"{v.shape[0]} samples (every {stride}th) are too few for a window of {window}")
    mean, sd = float(np.mean(finite)), float(np.std(finite)) or 1.0
    z = np.nan_to_num((v - mean) / sd)
    n = z.shape[0] - window
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]
    xs = [z[idx, ch] for ch in range(z.shape[1])]
    ys = [z[window:, ch] for ch in range(z.shape[1])]
    return np.concatenate(xs), np.concatenate(ys), mean, sd


def _init(window: int, rng: np.random.Generator) -> list[np.ndarray]:
    sizes = (window, *HIDDEN, 1)
    out: list[np.ndarray] = []
    for a, b in itertools.pairwise(sizes):
        out += [rng.normal(0, math.sqrt(2.0 / a), (a, b)), np.zeros(b)]
    return out


def train_numpy(series: np.ndarray, sensor_id: str, attribute: str, window: int = 32, stride: int = 1,
                epochs: int = 20, lr: float = 1e-3, batch: int = 256, seed: int = 0) -> Forecaster:  # fmt: skip
    """Train the network with mini-batch Adam (MSE) in numpy."""
    x, y, mean, sd = training_pairs(series, window, stride)
    rng = np.random.default_rng(seed)
    w = _init(window, rng)
    m = [np.zeros_like(p) for p in w]
    s = [np.zeros_like(p) for p in w]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(x.shape[0])
        for a in range(0, order.size, batch):
            sel = order[a : a + batch]
            xb, yb = x[sel], y[sel]
            h1p = xb @ w[0] + w[1]
            h1 = np.maximum(h1p, 0.0)
            h2p = h1 @ w[2] + w[3]
            h2 = np.maximum(h2p, 0.0)
            out = (h2 @ w[4] + w[5])[:, 0]
            g_out = (2.0 / sel.size) * (out - yb)[:, None]
            g = [np.empty(0)] * 6
            g[4], g[5] = h2.T @ g_out, g_out.sum(0)
            g_h2 = (g_out @ w[4].T) * (h2p > 0)
            g[2], g[3] = h1.T @ g_h2, g_h2.sum(0)
            g_h1 = (g_h2 @ w[2].T) * (h1p > 0)
            g[0], g[1] = xb.T @ g_h1, g_h1.sum(0)
            step += 1
            for i in range(6):
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                s[i] = 0.999 * s[i] + 0.001 * g[i] ** 2
                w[i] -= lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(s[i] / (1 - 0.999**step)) + 1e-8)
    f = Forecaster(sensor_id, attribute, window, stride, mean, sd, w, 1.0, "numpy", epochs)
    f.resid_sd = float(np.std(y - f.predict(x))) or 1.0
    return f


def train_torch(series: np.ndarray, sensor_id: str, attribute: str, window: int = 32, stride: int = 1,
                epochs: int = 20, lr: float = 1e-3, batch: int = 256, seed: int = 0) -> Forecaster:  # fmt: skip
    """The same network trained with PyTorch (CUDA when available); ImportError without torch."""
    import torch

    x, y, mean, sd = training_pairs(series, window, stride)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = torch.nn.Sequential(torch.nn.Linear(window, HIDDEN[0]), torch.nn.ReLU(),
                              torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
                              torch.nn.Linear(HIDDEN[1], 1)).to(device).double()  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(xt.shape[0], generator=gen)
        for a in range(0, order.numel(), batch):
            sel = order[a : a + batch].to(device)
            opt.zero_grad()
            loss = torch.mean((net(xt[sel])[:, 0] - yt[sel]) ** 2)
            loss.backward()
            opt.step()
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights: list[np.ndarray] = []
    for layer in layers:  # torch stores (out, in): transpose to x @ W
        weights += [layer.weight.detach().cpu().numpy().T.copy(), layer.bias.detach().cpu().numpy().copy()]
    f = Forecaster(sensor_id, attribute, window, stride, mean, sd, weights, 1.0, f"torch ({device})", epochs)
    f.resid_sd = float(np.std(y - f.predict(x))) or 1.0
    return f
