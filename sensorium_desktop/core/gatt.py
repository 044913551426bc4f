"""Bluetooth GATT payload parsers (pure): standard SIG characteristics and Polar PMD frames.

Formats from the Bluetooth SIG GATT Specification Supplement and Polar's Measurement Data
specification; every function takes the raw notification bytes and raises
:class:`GattError` (with the reason) on malformed input.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

BASE_UUID = "0000{:04x}-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """Full 128-bit UUID string of a 16-bit SIG UUID."""
    return BASE_UUID.format(short)


HEART_RATE_SERVICE = uuid16(0x180D)
HEART_RATE_MEASUREMENT = uuid16(0x2A37)
BODY_SENSOR_LOCATION = uuid16(0x2A38)
BATTERY_SERVICE = uuid16(0x180F)
BATTERY_LEVEL = uuid16(0x2A19)
ENVIRONMENTAL_SENSING_SERVICE = uuid16(0x181A)
TEMPERATURE = uuid16(0x2A6E)
HUMIDITY = uuid16(0x2A6F)
PRESSURE = uuid16(0x2A6D)
DEVICE_INFORMATION_SERVICE = uuid16(0x180A)
DEVICE_INFO_CHARS = {
    uuid16(0x2A29): "manufacturer",
    uuid16(0x2A24): "model",
    uuid16(0x2A25): "serial",
    uuid16(0x2A27): "hardware",
    uuid16(0x2A26): "firmware",
    uuid16(0x2A28): "software",
}
PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

#: Polar sensor time: nanoseconds since 2000-01-01 00:00:00 UTC.
POLAR_EPOCH_UNIX_S = 946684800.0
RR_UNIT_S = 1.0 / 1024.0


class GattError(ValueError):
    """Malformed characteristic value."""


@dataclass(frozen=True, slots=True)
class HeartRate:
    """Heart Rate Measurement (0x2A37): bpm, contact (None = not supported), energy (kJ),
    RR intervals (s)."""

    bpm: int
    contact: bool | None
    energy_kj: int | None
    rr_s: tuple[float, ...]


def parse_heart_rate(data: bytes | bytearray) -> HeartRate:
    """Decode 0x2A37: flags bit0 uint16 HR, bits1-2 contact (bit2 supported, bit1 detected),
    bit3 energy expended (uint16 kJ), bit4 RR intervals (uint16, 1/1024 s each)."""
    b = bytes(data)
    if len(b) < 2:
        raise GattError(f"heart rate measurement of {len(b)} bytes is too short")
    flags = b[0]
    off = 1
    if flags & 0x01:
        if len(b) < 3:
            raise GattError("uint16 heart rate announced but missing")
        bpm = struct.unpack_from("<H", b, off)[0]
        off += 2
    else:
        bpm = b[off]
        off += 1
    contact = bool(flags & 0x02) if flags & 0x04 else None
    energy = None
    if flags & 0x08:
        if len(b) < off + 2:
            raise GattError("energy expended announced but missing")
        energy = struct.unpack_from("<H", b, off)[0]
        off += 2
    rr: tuple[float, ...] = ()
    if flags & 0x10:
        rest = b[off:]
        if len(rest) % 2:
            raise GattError("RR-interval field has an odd number of bytes")
        rr = tuple(v * RR_UNIT_S for v in struct.unpack(f"<{len(rest) // 2}H", rest))
    elif len(b) > off:
        raise GattError(f"{len(b) - off} unexpected trailing bytes")
    return HeartRate(bpm, contact, energy, rr)


def parse_battery_level(data: bytes | bytearray) -> int:
    """0x2A19: uint8 percent (0-100)."""
    if len(data) != 1:
        raise GattError(f"battery level must be 1 byte, got {len(data)}")
    level = data[0]
    if level > 100:
        raise GattError(f"battery level {level} % is out of range")
    return level


def parse_temperature(data: bytes | bytearray) -> float:
    """0x2A6E: sint16, 0.01 degC; 0x8000 means unknown (NaN)."""
    if len(data) != 2:
        raise GattError(f"temperature must be 2 bytes, got {len(data)}")
    raw = struct.unpack("<h", bytes(data))[0]
    return math.nan if raw == -0x8000 else raw * 0.01


def parse_humidity(data: bytes | bytearray) -> float:
    """0x2A6F: uint16, 0.01 %; 0xFFFF means unknown (NaN)."""
    if len(data) != 2:
        raise GattError(f"humidity must be 2 bytes, got {len(data)}")
    raw = struct.unpack("<H", bytes(data))[0]
    return math.nan if raw == 0xFFFF else raw * 0.01


def parse_pressure(data: bytes | bytearray) -> float:
    """0x2A6D: uint32, 0.1 Pa → hPa."""
    if len(data) != 4:
        raise GattError(f"pressure must be 4 bytes, got {len(data)}")
    return struct.unpack("<I", bytes(data))[0] * 0.1 / 100.0


def parse_string(data: bytes | bytearray) -> str:
    """UTF-8 string characteristics (Device Information), NUL padding removed."""
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------------------------
# Polar Measurement Data (PMD)
# ---------------------------------------------------------------------------------------------

PMD_ECG, PMD_PPG, PMD_ACC, PMD_PPI, PMD_GYRO, PMD_MAG = 0, 1, 2, 3, 5, 6
SETTING_SAMPLE_RATE, SETTING_RESOLUTION, SETTING_RANGE, SETTING_CHANNELS = 0, 1, 2, 4


def pmd_start_command(measurement: int, settings: dict[int, int]) -> bytes:
    """Control-point request to start a stream: ``02 <type> (<setting> 01 <u16 value>)*``."""
    out = bytearray([0x02, measurement])
    for setting, value in settings.items():
        out += bytes([setting, 1]) + struct.pack("<H", value)
    return bytes(out)


def pmd_stop_command(measurement: int) -> bytes:
    return bytes([0x03, measurement])


@dataclass(frozen=True, slots=True)
class PmdResponse:
    op_code: int
    measurement: int
    status: int  # 0 = success

    @property
    def ok(self) -> bool:
        return self.status == 0


def parse_pmd_response(data: bytes | bytearray) -> PmdResponse:
    """Control-point response: ``F0 <op> <type> <status> ...``."""
    b = bytes(data)
    if len(b) < 4 or b[0] != 0xF0:
        raise GattError(f"not a PMD control point response: {b.hex()}")
    return PmdResponse(b[1], b[2], b[3])


@dataclass(slots=True)
class PmdFrame:
    """One PMD data notification: ``values`` (n, channels) in the stream's unit (uV for ECG,
    mG for ACC) and ``t_local`` (n,) in seconds since the Polar epoch."""

    measurement: int
    timestamp_ns: int
    frame_type: int
    compressed: bool
    values: np.ndarray
    t_local: np.ndarray = field(default_factory=lambda: np.empty(0))


def _signed(raw: np.ndarray, bits: int) -> np.ndarray:
    raw = raw.astype(np.int64)
    return np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw)


def _le_ints(b: bytes, width: int) -> np.ndarray:
    """Consecutive little-endian signed integers of ``width`` bytes."""
    if len(b) % width:
        raise GattError(f"{len(b)} bytes is not a multiple of {width}-byte samples")
    a = np.frombuffer(b, dtype=np.uint8).reshape(-1, width).astype(np.int64)
    raw = np.zeros(a.shape[0], dtype=np.int64)
    for i in range(width):
        raw |= a[:, i] << (8 * i)
    return _signed(raw, 8 * width)


def parse_delta_frames(b: bytes, channels: int, resolution: int) -> np.ndarray:
    """Polar delta compression: a reference sample (``channels`` signed values of
    ceil(resolution/8) bytes), then blocks ``<bits per delta> <count>`` + bit-packed
    (LSB first) signed deltas, each sample = previous + delta. Returns (n, channels)."""
    width = math.ceil(resolution / 8)
    if len(b) < channels * width:
        raise GattError("delta frame shorter than its reference sample")
    ref = _signed(_le_ints(b[: channels * width], width) & ((1 << resolution) - 1), resolution)
    samples = [ref.reshape(1, channels)]
    off = channels * width
    while off < len(b):
        if off + 2 > len(b):
            raise GattError("truncated delta block header")
        bits, count = b[off], b[off + 1]
        off += 2
        if bits == 0 or bits > 32:
            raise GattError(f"delta width {bits} bits is invalid")
        n_bits = bits * count * channels
        n_bytes = math.ceil(n_bits / 8)
        if off + n_bytes > len(b):
            raise GattError("truncated delta block")
        bitstream = np.unpackbits(np.frombuffer(b[off : off + n_bytes], dtype=np.uint8), bitorder="little")[:n_bits]
        off += n_bytes
        weights = (1 << np.arange(bits, dtype=np.int64)).astype(np.int64)
        deltas = _signed(bitstream.reshape(-1, bits).astype(np.int64) @ weights, bits).reshape(count, channels)
        samples.append(samples[-1][-1:] + np.cumsum(deltas, axis=0))
    return np.concatenate(samples)


def parse_pmd_frame(data: bytes | bytearray) -> PmdFrame:
    """Decode a PMD data notification: type u8, last-sample time u64 ns, frame type u8 (bit 7
    = delta compressed), then samples. ECG type 0: 3-byte signed uV; ACC types 0/1/2:
    1/2/3-byte signed x,y,z mG; compressed ACC/ECG use delta frames."""
    b = bytes(data)
    if len(b) < 10:
        raise GattError(f"PMD frame of {len(b)} bytes is shorter than its 10-byte header")
    measurement = b[0]
    ts = struct.unpack_from("<Q", b, 1)[0]
    ftype_byte = b[9]
    compressed = bool(ftype_byte & 0x80)
    ftype = ftype_byte & 0x7F
    body = b[10:]
    if measurement == PMD_ECG:
        if compressed:
            values = parse_delta_frames(body, 1, 14)
        elif ftype == 0:
            values = _le_ints(body, 3).reshape(-1, 1)
        else:
            raise GattError(f"unsupported ECG frame type {ftype}")
    elif measurement in (PMD_ACC, PMD_GYRO, PMD_MAG):
        if compressed:
            values = parse_delta_frames(body, 3, 16 if ftype in (0, 1) else 24)
        elif ftype in (0, 1, 2):
            values = _le_ints(body, ftype + 1).reshape(-1, 3)
        else:
            raise GattError(f"unsupported frame type {ftype} for measurement {measurement}")
    else:
        raise GattError(f"unsupported PMD measurement type {measurement}")
    return PmdFrame(measurement, ts, ftype, compressed, values.astype(np.float64))


def pmd_sample_times(frame: PmdFrame, previous_ns: int | None, rate: float) -> np.ndarray:
    """Per-sample device times (s since the Polar epoch) of a frame whose timestamp is its
    last sample: spread evenly from the previous frame's timestamp when known, else at the
    nominal ``rate``."""
    n = frame.values.shape[0]
    last = frame.timestamp_ns / 1e9
    if previous_ns is not None and 0 < frame.timestamp_ns - previous_ns < 10e9 * max(n, 1) / max(rate, 1e-9):
        step = (frame.timestamp_ns - previous_ns) / 1e9 / n
    else:
        step = 1.0 / rate
    return last - step * np.arange(n - 1, -1, -1, dtype=np.float64)
