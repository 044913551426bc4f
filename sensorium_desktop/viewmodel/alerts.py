"""Alerts an operator must see until acknowledged: the node child died and was restarted, a
device that streamed is lost (no Qt; the window shows them as a banner)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from ..worker.supervisor import NodeProcess
from .base import Event
from .devices import DeviceTree

#: device states after streaming that an operator is told about
LOST_STATES = frozenset({"lost", "error", "offline"})


@dataclass(slots=True)
class Alert:
    """One thing that went wrong: ``key`` (one alert per subject), what to say, since when (epoch s)."""

    key: str
    text: str
    since: float
    level: str = "error"


def clock(t: float) -> str:
    """``HH:MM:SS`` local time of ``t`` (epoch s)."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def exit_text(code: int | None) -> str:
    """``killed by SIGKILL`` for -9, ``exit code 3`` for 3."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class AlertsModel:
    """Unacknowledged alerts, oldest first; ``changed`` fires with :meth:`active`."""

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.changed = Event()
        self._device_states: dict[str, str] = {}
        self._redis_down_since: float | None = None
        self._redis_primary = ""

    def active(self) -> list[Alert]:
        return sorted(self.alerts.values(), key=lambda a: a.since)

    def raise_alert(self, key: str, text: str, level: str = "error", now: float | None = None) -> None:
        """Show ``text`` for ``key`` (an alert already shown for it keeps its time, new text)."""
        old = self.alerts.get(key)
        self.alerts[key] = Alert(key, text, old.since if old else (now or time.time()), level)
        self.changed.emit(self.active())

    def acknowledge(self, key: str | None = None) -> None:
        """The operator saw it (``None``: all of them)."""
        if key is None:
            self.alerts.clear()
        else:
            self.alerts.pop(key, None)
        self.changed.emit(self.active())

    def follow_devices(self, tree: DeviceTree, now: float | None = None) -> None:
        """Raise an alert for each device that streamed at the last refresh and is now lost,
        failed or offline; say so when it streams again (the alert stays until acknowledged)."""
        t = now or time.time()
        for rows in tree.groups.values():
            for row in rows:
                device_id, state = row.status.device_id, row.state
                before = self._device_states.get(device_id)
                key = f"device:{device_id}"
                if before == "streaming" and state in LOST_STATES:
                    why = row.detail or state
                    self.raise_alert(key, f"{row.status.name} ({device_id}) {state} at {clock(t)}: {why}", now=t)
                elif state == "streaming" and key in self.alerts and "— streams again" not in self.alerts[key].text:
                    self.raise_alert(key, f"{self.alerts[key].text} — streams again since {clock(t)}", "warning")
                self._device_states[device_id] = state

    def follow_redis(self, error: str, primary: str = "", now: float | None = None) -> None:
        """Raise an alert when Redis becomes unreachable (``error`` non-empty) and say how long
        it was and which server took over (a sentinel failover: ``primary`` changed) when it
        is back; the alert stays until acknowledged."""
        t = now or time.time()
        if error and self._redis_down_since is None:
            self._redis_down_since = t
            self.raise_alert("redis", f"Redis unreachable since {clock(t)}: live views paused; nodes keep their "
                                      f"samples on disk until it is back ({error})", now=t)  # fmt: skip
        elif not error and self._redis_down_since is not None:
            down = self._redis_down_since
            self._redis_down_since = None
            moved = (
                f"; the lab's Redis is now {primary} (was {self._redis_primary})"
                if primary and self._redis_primary and primary != self._redis_primary
                else ""
            )
            text = f"Redis was unreachable from {clock(down)} to {clock(t)} ({t - down:.1f} s){moved}"
            self.raise_alert("redis", text + "; nodes re-sent what they kept (sensorium verify checks a recording)",
                             "warning", now=t)  # fmt: skip
        if not error and primary:
            self._redis_primary = primary


class NodeWatch:
    """Restarts the window's node child when it dies (with the supervisor's backoff) and raises
    an alert that says when, how and that the devices are being reconnected."""

    def __init__(self, node: NodeProcess, alerts: AlertsModel) -> None:
        self.node = node
        self.alerts = alerts
        self._died_at: float | None = None
        self._exit: int | None = None

    def check(self) -> bool:
        """Call about once a second; True when the node was restarted now."""
        restarted = self.node.restart_if_dead()
        now = time.time()
        if self.node.last_exit is not None and self._died_at is None:
            self._died_at, self._exit = now, self.node.last_exit
            how = exit_text(self.node.last_exit)
            self.alerts.raise_alert("node", f"The node process stopped unexpectedly ({how}) at {clock(now)}: no data "
                                            "is acquired or recorded; restarting it…")  # fmt: skip
        if restarted:
            died = self._died_at or now
            self._died_at = None
            self.alerts.raise_alert("node", f"The node process stopped unexpectedly ({exit_text(self._exit)}) at "
                                            f"{clock(died)} and was restarted "
                                            f"at {clock(now)} (restart {self.node.restarts}): the devices it had are "
                                            "being reconnected; recordings resume. Samples taken while it was down "
                                            "are missing (sensorium verify lists them).")  # fmt: skip
        return restarted
