"""Eye trackers that speak LSL (issue 28 part 3): a gaze stream labelled the way Pupil
Capture's LSL relay, Pupil Labs' Neon/Invisible relay, Tobii Pro or a pixel-based tool label
theirs is recognised as gaze, so the heatmap and the review work without configuration."""

from __future__ import annotations

import numpy as np
import pylsl
import pytest
from conftest import wait_for
from test_lsl import unique
from test_serial import DeviceRunner

from sensorium_desktop.core.gazelayout import gaze_layout, layout_of
from sensorium_desktop.devices import DeviceState, open_device


def test_the_conventions_give_our_top_left_normalized_gaze() -> None:
    ours = gaze_layout(["x", "y", "confidence"], ["normalized", "normalized", ""])
    assert ours is not None and ours.convention == "sensorium"
    assert np.allclose(ours.normalize(np.array([[0.2, 0.3, 0.9]])), [[0.2, 0.3, 0.9]])
    core = gaze_layout(["confidence", "norm_pos_x", "norm_pos_y", "gaze_point_3d_x"])
    assert core is not None and core.convention == "pupil-core-lsl"
    assert np.allclose(core.normalize(np.array([[0.8, 0.25, 0.75, 1.0]])), [[0.25, 0.25, 0.8]])  # y flipped
    tobii = gaze_layout(["left_gaze_point_on_display_area_x", "left_gaze_point_on_display_area_y",
                         "right_gaze_point_on_display_area_x", "right_gaze_point_on_display_area_y",
                         "left_gaze_point_validity", "right_gaze_point_validity"])  # fmt: skip
    assert tobii is not None and tobii.convention == "tobii-pro"
    got = tobii.normalize(np.array([[0.4, 0.5, 0.6, 0.7, 1, 1], [0.4, 0.5, np.nan, np.nan, 1, 0]]))
    assert np.allclose(got, [[0.5, 0.6, 1.0], [0.4, 0.5, 0.5]])  # one eye lost: the other one
    neon = gaze_layout(["x", "y"], ["pixels", "pixels"], name="Neon Companion_Neon Gaze")
    assert neon is not None and neon.convention == "pupil-companion" and (neon.width, neon.height) == (1600, 1200)
    assert np.allclose(neon.normalize(np.array([[800.0, 300.0]])), [[0.5, 0.25, 1.0]])
    screen = gaze_layout(["GazeX", "GazeY"], ["pixels", "pixels"],
                         desc="<desc><screen><width>1920</width><height>1080</height></screen></desc>")  # fmt: skip
    assert screen is not None and np.allclose(screen.normalize(np.array([[960, 270]])), [[0.5, 0.25, 1.0]])
    assert gaze_layout(["GazeX", "GazeY"], ["pixels", "pixels"]) is None  # pixels of an unknown screen
    assert gaze_layout(["a", "b"]) is None


def _gaze_outlet(name: str, labels: list[str], units: list[str]) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "Gaze", len(labels), 200.0, pylsl.cf_double64, unique("src"))
    chans = info.desc().append_child("channels")
    for label, unit in zip(labels, units, strict=True):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


@pytest.mark.parametrize(
    ("labels", "units", "row", "expect"),
    [
        (["confidence", "norm_pos_x", "norm_pos_y"], ["normalized"] * 3, [0.9, 0.3, 0.8], (0.3, 0.2, 0.9)),
        (["x", "y"], ["pixels", "pixels"], [400.0, 900.0], (0.25, 0.75, 1.0)),
    ],
    ids=["pupil-capture-relay", "neon-companion"],
)
def test_an_lsl_gaze_stream_is_recognised_when_opened(labels: list[str], units: list[str], row: list[float],
                                                      expect: tuple[float, float, float]) -> None:  # fmt: skip
    name = unique("Neon Gaze" if labels == ["x", "y"] else "pupil_capture")
    outlet = _gaze_outlet(name, labels, units)
    dev = open_device(f"lsl:{name}")
    run = DeviceRunner(dev)
    try:
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, 15, message="streaming")
        outlet.push_chunk(np.array([row] * 5))
        wait_for(lambda: run.rows() == 5, 10, message="samples")
    finally:
        run.stop()
    [info] = dev.sensors()
    assert info.attribute == "eye_gaze" and info.extra["gaze_layout"] is not None
    layout = layout_of(info.channel_names, info.units, info.device_name, info.extra)
    assert layout is not None
    values = np.concatenate([b.values for b in run.batches])
    assert np.array_equal(values[0], row)  # the data stay as the tracker sent them
    assert np.allclose(layout.normalize(values)[0], expect)
