"""The simulated lab: deterministic, realistic, and honouring its clock parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sensorium_desktop.core.attributes import validate_payload
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceError, DeviceURI, open_device
from sensorium_desktop.devices.simulated import LAB_DEVICES, SimulatedDevice, expand_uri, simulate


def _run(uri: str, seconds: float, tick: float = 0.01) -> dict[str, SampleBatch]:
    dev = SimulatedDevice(DeviceURI.parse(uri))
    by_sensor: dict[str, list[SampleBatch]] = {}
    for b in simulate([dev], seconds, tick=tick):
        by_sensor.setdefault(b.sensor_id, []).append(b)
    return {k: SampleBatch.concat(v) for k, v in by_sensor.items()}


def test_lab_has_the_required_sensors_and_rates() -> None:
    devices = [SimulatedDevice(u) for u in expand_uri(DeviceURI.parse("sim:lab"))]
    assert [d.key for d in devices] == list(LAB_DEVICES)
    sensors = {s.attribute: s for d in devices for s in d.sensors()}
    expected = {"ecg": 512, "respiration": 25, "hr": 0, "hrv": 0, "imu": 100, "eye_gaze": 200, "eye_blink": 0,
                "eye_aperture": 50, "eye_worn": 1, "skeleton": 30, "temperature": 1, "trigger": 0}  # fmt: skip
    assert {a: s.nominal_rate for a, s in sensors.items()} == expected
    assert sensors["skeleton"].channel_count == 99
    assert sensors["imu"].channel_names[:3] == ("acc_x", "acc_y", "acc_z")
    assert sensors["temperature"].has_clock is False


def test_measured_rates_match_nominal() -> None:
    data = _run("sim:eyes", 20.0)
    gaze = data["sim-eyes-eye_gaze"]
    span = gaze.t_local[-1] - gaze.t_local[0]
    assert (len(gaze) - 1) / span == pytest.approx(200.0, rel=1e-6)
    assert np.all(np.diff(gaze.t_arrival) >= 0)
    assert 2 <= len(data["sim-eyes-eye_blink"]) <= 20  # blinks every ~4 s, start+end events


def test_deterministic_for_a_seed_and_independent_of_tick() -> None:
    a = _run("sim:chest", 5.0, tick=0.01)
    b = _run("sim:chest", 5.0, tick=0.037)
    c = _run("sim:chest?seed=99", 5.0)
    ecg_a, ecg_b = a["sim-chest-ecg"], b["sim-chest-ecg"]
    n = min(len(ecg_a), len(ecg_b)) - 64
    # beat times are solved numerically on a grid that depends on the tick: equal to ~1e-12 s
    np.testing.assert_allclose(ecg_a.values[:n], ecg_b.values[:n], atol=1e-5)
    assert np.array_equal(ecg_a.t_arrival[:n], ecg_b.t_arrival[:n])
    assert not np.array_equal(ecg_a.values[:n], c["sim-chest-ecg"].values[:n])


def test_physiology_is_plausible() -> None:
    data = _run("sim:chest", 60.0)
    hr = data["sim-chest-hr"].values[:, 0]
    assert 55 < hr.mean() < 85 and hr.std() > 1.0  # heart-rate variability present
    ecg = data["sim-chest-ecg"].values[:, 0]
    assert 1.0 < ecg.max() < 1.6 and -0.5 < ecg.min() < -0.1  # R peak and S trough in mV
    hrv = data["sim-chest-hrv"].values
    assert hrv.shape[1] == 2 and np.all(hrv[:, 0] > 5) and np.all(hrv[:, 0] < 200)
    for row in hrv:
        validate_payload("hrv", {"rmssd": float(row[0]), "sdnn": float(row[1])})


def test_payloads_of_every_lab_sensor_validate() -> None:
    devices = [SimulatedDevice(u) for u in expand_uri(DeviceURI.parse("sim:lab"))]
    seen = set()
    for b in simulate(devices, 6.0):
        info = next(s for d in devices for s in d.sensors() if s.sensor_id == b.sensor_id)
        row = b.values[-1]
        if b.attribute == "skeleton":
            pts = row.reshape(33, 3)
            payload = {"landmarks": [{"x": float(x), "y": float(y), "v": float(v)} for x, y, v in pts]}
        elif b.attribute == "ecg":
            payload = {"values": [float(x) for x in b.values[:, 0]]}
        elif b.attribute == "imu":
            payload = {"accelerometer": dict(zip("xyz", map(float, row[:3]), strict=True)),
                       "gyroscope": dict(zip("xyz", map(float, row[3:6]), strict=True))}  # fmt: skip
        else:
            payload = {name: float(v) for name, v in zip(info.channel_names, row, strict=True)}
        validate_payload(b.attribute, payload)
        seen.add(b.attribute)
    assert len(seen) == 12


@pytest.mark.parametrize("drift_ppm", [35.0, -60.0])
def test_clock_offset_drift_and_delay_are_recovered_by_regression(drift_ppm: float) -> None:
    uri = f"sim:wrist?drift_ppm={drift_ppm}&delay_ms=7.5&jitter_ms=0.05&spike_prob=0&origin=500"
    imu = _run(uri, 60.0)["sim-wrist-imu"]
    t_start = 1_800_000_000.0
    # packets of 10 samples share one arrival; the last sample of each waited only for the link:
    # arrival = t_start + (t_local - origin)/(1+drift) + 7.5 ms + Exp(0.05 ms)
    last = np.flatnonzero(np.diff(imu.t_arrival, append=np.inf) > 0)
    slope, intercept = np.polyfit(imu.t_local[last] - 500.0, imu.t_arrival[last] - t_start, 1)
    assert (1.0 / slope - 1.0) * 1e6 == pytest.approx(drift_ppm, abs=0.5)  # 4 sigma
    assert intercept == pytest.approx(0.0075 + 0.00005, abs=2e-5)
    # packets of 10 samples: the first sample of a packet waits 9 sample periods more
    residual = imu.t_arrival - t_start - (imu.t_local - 500.0) / (1 + drift_ppm * 1e-6)
    assert residual.min() >= 0.0075  # one-sided: never earlier than the fixed delay
    assert residual.min() == pytest.approx(0.0075, abs=2e-4)


def test_device_without_clock_has_no_t_local() -> None:
    room = _run("sim:room", 5.0)["sim-room-temperature"]
    assert room.t_local is None
    assert 20 < room.values.mean() < 25


def test_bad_uris_give_clear_errors() -> None:
    with pytest.raises(DeviceError, match="no simulated device"):
        open_device("sim:toaster")
    with pytest.raises(DeviceError, match="not a number"):
        open_device("sim:chest?drift_ppm=lots")
    with pytest.raises(DeviceError, match="unknown device transport"):
        open_device("pigeon:1")
    with pytest.raises(DeviceError, match="scheme:target"):
        DeviceURI.parse("no-scheme")


def test_eeg_is_configurable() -> None:
    eeg = _run("sim:eeg?channels=32&rate=512", 2.0)["sim-eeg-eeg"]
    assert eeg.values.shape[1] == 32
    assert len(eeg) == pytest.approx(1024, abs=40)
    with pytest.raises(DeviceError):
        open_device("sim:eeg?channels=0")


def test_uri_round_trip() -> None:
    uri = DeviceURI.parse("serial:/dev/ttyUSB0?baud=115200&protocol=csv")
    assert uri.scheme == "serial" and uri.target == "/dev/ttyUSB0"
    assert uri.param("baud") == "115200"
    assert DeviceURI.parse(str(uri)) == uri
    assert str(DeviceURI.parse("ble:AA:BB:CC:DD:EE:FF")) == "ble:AA:BB:CC:DD:EE:FF"
