"""GATT and Polar PMD parsers against byte vectors written from the specifications."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sensorium_desktop.core import gatt


@pytest.mark.parametrize(
    ("hex_bytes", "bpm", "contact", "energy", "rr"),
    [
        ("0048", 72, None, None, ()),  # uint8 HR, contact feature not supported
        ("0448", 72, False, None, ()),  # supported, no contact
        ("0648", 72, True, None, ()),  # supported, contact detected
        ("012c01", 300, None, None, ()),  # uint16 HR 0x012c
        ("1048" + "0004", 72, None, None, (1.0,)),  # RR 1024/1024 s
        ("1848" + "e803" + "0004" + "0002", 72, None, 1000, (1.0, 0.5)),  # energy 1000 kJ + 2 RR
        ("1f" + "5000" + "0a00" + "cd03", 80, True, 10, (973 / 1024,)),  # everything, uint16 HR
    ],
)
def test_heart_rate_measurement_flag_variants(hex_bytes: str, bpm: int, contact, energy, rr) -> None:
    hr = gatt.parse_heart_rate(bytes.fromhex(hex_bytes))
    assert hr.bpm == bpm and hr.contact is contact and hr.energy_kj == energy
    assert hr.rr_s == pytest.approx(rr)


@pytest.mark.parametrize("hex_bytes", ["", "00", "01" + "48", "10" + "48" + "00", "08" + "48" + "01", "0048ff"])
def test_heart_rate_malformed(hex_bytes: str) -> None:
    with pytest.raises(gatt.GattError):
        gatt.parse_heart_rate(bytes.fromhex(hex_bytes))


def test_environmental_and_battery() -> None:
    assert gatt.parse_battery_level(b"\x57") == 87
    with pytest.raises(gatt.GattError):
        gatt.parse_battery_level(b"\x65")  # 101 %
    assert gatt.parse_temperature(struct.pack("<h", 2345)) == pytest.approx(23.45)
    assert gatt.parse_temperature(struct.pack("<h", -512)) == pytest.approx(-5.12)
    assert math.isnan(gatt.parse_temperature(b"\x00\x80"))
    assert gatt.parse_humidity(struct.pack("<H", 4550)) == pytest.approx(45.5)
    assert gatt.parse_pressure(struct.pack("<I", 1013250)) == pytest.approx(1013.25)
    assert gatt.parse_string(b"Polar Electro Oy\0\0") == "Polar Electro Oy"
    with pytest.raises(gatt.GattError):
        gatt.parse_pressure(b"\x00")
    assert gatt.uuid16(0x2A37) == "00002a37-0000-1000-8000-00805f9b34fb"


def _pmd(measurement: int, ts_ns: int, ftype: int, body: bytes) -> bytes:
    return bytes([measurement]) + struct.pack("<Q", ts_ns) + bytes([ftype]) + body


def _i24(v: int) -> bytes:
    return (v & 0xFFFFFF).to_bytes(3, "little")


def test_pmd_ecg_uncompressed() -> None:
    body = _i24(100) + _i24(-100) + _i24(0x7FFFFF) + _i24(-0x800000)
    f = gatt.parse_pmd_frame(_pmd(gatt.PMD_ECG, 599_000_000_000, 0x00, body))
    assert f.measurement == gatt.PMD_ECG and not f.compressed and f.timestamp_ns == 599_000_000_000
    assert f.values[:, 0].tolist() == [100, -100, 8388607, -8388608]
    times = gatt.pmd_sample_times(f, None, 130.0)
    assert times[-1] == pytest.approx(599.0) and np.diff(times) == pytest.approx(1 / 130.0)
    times = gatt.pmd_sample_times(f, 599_000_000_000 - 40_000_000, 130.0)  # 4 samples in 40 ms
    assert np.diff(times) == pytest.approx(0.010)


def test_pmd_acc_uncompressed_16_bit() -> None:
    body = struct.pack("<3h", 10, -20, 1000) + struct.pack("<3h", 11, -21, 999)
    f = gatt.parse_pmd_frame(_pmd(gatt.PMD_ACC, 1, 0x01, body))
    assert f.values.tolist() == [[10, -20, 1000], [11, -21, 999]]


def _pack_lsb(values: list[int], bits: int) -> bytes:
    stream = []
    for v in values:
        v &= (1 << bits) - 1
        stream += [(v >> i) & 1 for i in range(bits)]
    stream += [0] * (-len(stream) % 8)
    return bytes(sum(stream[k + i] << i for i in range(8)) for k in range(0, len(stream), 8))


def test_pmd_delta_frames() -> None:
    ref = bytes([10, 0xFB, 0])  # 10, -5, 0 at 8-bit resolution
    block1 = bytes([4, 1]) + _pack_lsb([2, -1, 3], 4)
    block2 = bytes([3, 2]) + _pack_lsb([1, 1, 1, -1, -1, -1], 3)
    out = gatt.parse_delta_frames(ref + block1 + block2, 3, 8)
    assert out.tolist() == [[10, -5, 0], [12, -6, 3], [13, -5, 4], [12, -6, 3]]
    # compressed ACC frame (H10 style: type 1 | 0x80, 16-bit reference)
    ref16 = struct.pack("<3h", -1000, 2000, 50)
    f = gatt.parse_pmd_frame(_pmd(gatt.PMD_ACC, 5, 0x81, ref16 + bytes([6, 1]) + _pack_lsb([-32, 31, 0], 6)))
    assert f.compressed and f.values.tolist() == [[-1000, 2000, 50], [-1032, 2031, 50]]
    with pytest.raises(gatt.GattError):
        gatt.parse_delta_frames(ref + bytes([4, 9]) + b"\x00", 3, 8)  # truncated block


def test_pmd_errors_and_commands() -> None:
    with pytest.raises(gatt.GattError, match="header"):
        gatt.parse_pmd_frame(b"\x00\x01")
    with pytest.raises(gatt.GattError, match="multiple"):
        gatt.parse_pmd_frame(_pmd(gatt.PMD_ECG, 0, 0, b"\x01\x02"))
    with pytest.raises(gatt.GattError, match="unsupported"):
        gatt.parse_pmd_frame(_pmd(9, 0, 0, b""))
    cmd = gatt.pmd_start_command(gatt.PMD_ECG, {gatt.SETTING_SAMPLE_RATE: 130, gatt.SETTING_RESOLUTION: 14})
    assert cmd.hex() == "0200" + "00018200" + "01010e00"
    assert gatt.parse_pmd_response(bytes.fromhex("f0020000")).ok
    assert not gatt.parse_pmd_response(bytes.fromhex("f0020005")).ok
