"""Device transports: one module per transport, each registered by one entry point.

To add a transport, write a module with a :class:`Transport` subclass and name it in the
``sensorium_desktop.transports`` entry-point group (this project's pyproject.toml for the
built-ins, a lab's own package for theirs; see :mod:`sensorium_desktop.plugins`). Nothing is
imported here: a transport's module (and cv2, bleak, pylsl) loads when its scheme is used.
"""

from __future__ import annotations

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
)


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
    "uri_errors",
]
