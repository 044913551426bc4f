"""Signal-quality commands: ``train`` (a per-sensor forecaster, as the analytics seed trains one)."""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import numpy as np
import redis

from .. import exitcodes
from ..bus.keys import Keys
from ..core.samples import SampleBatch, SensorInfo
from .base import arguments, command, lab, log, redis_args

#: what --bootstrap writes when the attribute's schema gives no range: (level, amplitude, noise)
BOOTSTRAP_DEFAULT = (0.0, 1.0, 0.05)


def _train_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
    p.add_argument("--sensor", required=True, metavar="ID", help="the sensor to learn")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from", dest="from_dir", metavar="SESSION", help="train on a recording (its folder)")
    src.add_argument(
        "--last",
        default="10m",
        metavar="DURATION",
        help="train on the sensor's Redis history of the last DURATION (30s, 10m, 1h; default 10m)",
    )
    p.add_argument(
        "--bootstrap",
        action="store_true",
        help="first write synthetic readings of the sensor's attribute into Redis (as the seed does)",
    )
    p.add_argument("--samples", type=int, default=512, help="readings --bootstrap writes (default 512)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--window", type=int, default=32, help="values of history the network sees (default 32)")
    p.add_argument("--stride", type=int, default=0, help="use every Nth sample (default: about 128 Hz)")
    p.add_argument(
        "--backend",
        choices=("auto", "numpy", "torch"),
        default="auto",
        help="auto: PyTorch when it imports (CUDA when present), else numpy",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="where to save the model (default: <data dir>/models/, where nodes look for it)",
    )


def parse_duration(text: str) -> float:
    """``30s``, ``10m``, ``1h`` or plain seconds → seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (30s, 10m, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@command("train", "train a sensor's forecaster for anomaly scores (--sensor ID [--from SESSION | --last 10m])")
@arguments(_train_args)
def cmd_train(args: argparse.Namespace) -> int:
    from .. import paths
    from ..core.forecast import model_name, train_numpy, train_torch

    try:
        span = parse_duration(args.last)
    except ValueError as exc:
        log.error("--last: %s", exc)
        return exitcodes.USAGE
    if args.epochs < 1 or args.window < 2 or args.samples < 1:
        log.error("--epochs, --window and --samples must be positive (window ≥ 2)")
        return exitcodes.USAGE
    try:
        if args.from_dir:
            values, attribute, rate = _from_recording(Path(args.from_dir), args.sensor)
        else:
            values, attribute, rate = _from_redis(args, span)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    stride = args.stride or (max(1, round(rate / 128.0)) if rate > 0 else 1)
    backend = args.backend
    if backend == "auto":
        try:
            import torch  # noqa: F401

            backend = "torch"
        except ImportError:
            backend = "numpy"
    trainer = train_torch if backend == "torch" else train_numpy
    t0 = time.perf_counter()
    try:
        model = trainer(values, args.sensor, attribute, args.window, stride, args.epochs)
    except ImportError:
        log.error("--backend torch: PyTorch is not installed (pip install torch), or use --backend numpy")
        return exitcodes.FAILED
    except ValueError as exc:
        log.error("%s: %s", args.sensor, exc)
        return exitcodes.FAILED
    path = Path(args.checkpoint) if args.checkpoint else paths.data_dir() / "models" / model_name(args.sensor,
                                                                                                 attribute)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.to_bytes())
    took = time.perf_counter() - t0
    print(f"trained {args.sensor} ({attribute}) on {values.shape[0]} samples × {values.shape[1]} channels, every "
          f"{stride}th, window {args.window}: {model.backend}, {args.epochs} epochs in {took:.1f} s; "
          f"one-step error SD {model.resid_sd:.3f} (normalized units) → {path}")  # fmt: skip
    return exitcodes.OK


def _from_recording(directory: Path, sensor_id: str) -> tuple[np.ndarray, str, float]:
    from ..recording.reader import load_recording

    rec = load_recording(directory)
    data = rec.sensors.get(sensor_id)
    if data is None or not len(data):
        raise ValueError(f"{directory}: no samples of {sensor_id} (sensors: {', '.join(sorted(rec.sensors))})")
    if data.values.dtype == object:
        raise ValueError(f"{sensor_id} holds text, not a signal")
    return np.asarray(data.values, dtype=np.float64), data.info.attribute, data.info.nominal_rate


def _from_redis(args: argparse.Namespace, span: float) -> tuple[np.ndarray, str, float]:
    from ..bus.registry import list_sensors
    from ..bus.streams import read_range

    with lab(args) as endpoint:
        c = endpoint.client()
        try:
            info = next((i for i in list_sensors(c, endpoint.keys) if i.sensor_id == args.sensor), None)
            if args.bootstrap:
                info = _bootstrap(c, endpoint.keys, args.sensor, info, args.samples)
            if info is None:
                raise ValueError(f"no sensor {args.sensor!r} in the lab (sensorium status lists them; --bootstrap "
                                 "creates synthetic readings)")  # fmt: skip
            since_ms = int((time.time() - span) * 1000)
            entries = read_range(c, endpoint.keys, args.sensor, f"{since_ms}-0", "+")
        finally:
            c.close()
    if not entries:
        raise ValueError(f"{args.sensor}: no samples in Redis over the last {args.last} (streams keep only a few "
                         "seconds to minutes: record a session and use --from)")  # fmt: skip
    values = np.concatenate([e.batch.values for e in entries]).astype(np.float64)
    return values, info.attribute, info.nominal_rate


def _bootstrap(c: redis.Redis, keys: Keys, sensor_id: str, info: SensorInfo | None, samples: int) -> SensorInfo:
    """Write ``samples`` synthetic readings of the sensor's attribute into its Redis stream
    (level ± amplitude over a slow cycle, plus noise; from the attribute's range when known)."""
    from ..bus.registry import register_sensors
    from ..bus.streams import entry_fields
    from ..core.attributes import get_type

    if info is None:
        attribute = sensor_id.rsplit("-", 1)[-1]
        if get_type(attribute) is None:
            raise ValueError(f"--bootstrap: {sensor_id!r} is not registered and {attribute!r} is no known attribute")
        info = SensorInfo(sensor_id, attribute, sensor_id.rsplit("-", 1)[0], transport="bootstrap", nominal_rate=1.0,
                          channel_names=("value",), units=("",))  # fmt: skip
        register_sensors(c, keys, [info])
    at = get_type(info.attribute)
    lo = hi = None
    if at is not None and len(at.fields) == 1:
        lo, hi = at.fields[0].minimum, at.fields[0].maximum
    level, amp, noise = BOOTSTRAP_DEFAULT
    if lo is not None and hi is not None:
        level, amp, noise = (lo + hi) / 2, (hi - lo) / 20, (hi - lo) / 400
    rng = np.random.default_rng(0)
    rate = info.nominal_rate or 1.0
    t = time.time() - samples / rate + np.arange(samples) / rate
    v = level + amp * np.sin(2 * math.pi * np.arange(samples) / 64.0) + rng.normal(0, noise, samples)
    vals = np.repeat(v[:, None], max(info.channel_count, 1), axis=1).astype(np.float32)
    top = c.xrevrange(keys.stream(sensor_id), count=1)
    seq = int(top[0][1][b"seq"]) + 1 if top else 0
    for a in range(0, samples, 64):
        b = SampleBatch(sensor_id, info.attribute, t[a : a + 64], vals[a : a + 64], None, seq, a)
        c.xadd(
            keys.stream(sensor_id),
            entry_fields(b, "bootstrap", time.time()),
            id=f"{int(t[min(a + 63, samples - 1)] * 1000)}-{seq}",
        )
        seq += 1
    log.info("bootstrap: %d synthetic %s readings written to %s", samples, info.attribute, keys.stream(sensor_id))
    return info
