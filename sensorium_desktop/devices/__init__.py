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
    UntrustedUriError,
    discover_all,
    open_device,
    register_transport,
)

TRANSPORT_MODULES = ("simulated", "serial", "ble", "camera", "lsl", "network", "replay")

for _name in TRANSPORT_MODULES:
    importlib.import_module(f"{__name__}.{_name}")


def uri_errors(texts: list[str]) -> list[tuple[str, str]]:
    """(URI, why) for each device URI that names no device (bad syntax, unknown transport, bad
    parameter); devices are only described, nothing is opened."""
    from .simulated import expand_uri

    errors = []
    for text in texts:
        try:
            for uri in expand_uri(DeviceURI.parse(text)):
                open_device(uri)
        except DeviceError as exc:
            errors.append((text, str(exc)))
    return errors


__all__ = [
    "TRANSPORTS",
    "Device",
    "DeviceDescriptor",
    "DeviceError",
    "DeviceHealth",
    "DeviceState",
    "DeviceURI",
    "Transport",
    "UntrustedUriError",
    "discover_all",
    "open_device",
    "register_transport",
    "uri_errors",
]
