"""Device transports: one module per transport, registered in one place.

To add a transport, write ``devices/<name>.py`` with a ``@register_transport`` class and
add its module name to ``TRANSPORT_MODULES``.
"""

from __future__ import annotations

import importlib

from .base import (
    TRANSPORTS,
    Device,
    DeviceDescriptor,
    DeviceError,
    DeviceHealth,
    DeviceState,
    DeviceURI,
    Transport,
    discover_all,
    open_device,
    register_transport,
)

TRANSPORT_MODULES = ("simulated", "serial", "ble", "camera", "lsl")

for _name in TRANSPORT_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "TRANSPORTS",
    "Device",
    "DeviceDescriptor",
    "DeviceError",
    "DeviceHealth",
    "DeviceState",
    "DeviceURI",
    "Transport",
    "discover_all",
    "open_device",
    "register_transport",
]
