"""Drag-and-drop payloads between panels (custom MIME types, JSON lists of sensor ids)."""

from __future__ import annotations

import json

from PySide6 import QtCore

SENSORS_MIME = "application/x-sensorium-sensors"
SESSION_SENSORS_MIME = "application/x-sensorium-session-sensors"


def sensors_mime(sensor_ids: list[str], mime_type: str = SENSORS_MIME, session_id: str = "") -> QtCore.QMimeData:
    """Mime data carrying ``sensor_ids`` (and the session they are dragged out of)."""
    data = QtCore.QMimeData()
    data.setData(mime_type, QtCore.QByteArray(json.dumps({"sensors": sensor_ids, "session": session_id}).encode()))
    data.setText("\n".join(sensor_ids))
    return data


def read_sensors(mime: QtCore.QMimeData, mime_type: str = SENSORS_MIME) -> tuple[list[str], str]:
    """(sensor ids, source session) from mime data; empty when it is not ours or malformed."""
    if not mime.hasFormat(mime_type):
        return [], ""
    try:
        d = json.loads(bytes(mime.data(mime_type).data()).decode())
        return [str(s) for s in d.get("sensors", [])], str(d.get("session", ""))
    except (ValueError, AttributeError):
        return [], ""
