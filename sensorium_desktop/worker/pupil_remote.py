"""Pupil Remote, the part of Pupil Capture's protocol experiment scripts use.

A ZMQ REP socket (default port 50020, loopback unless ``--remote-bind``) answers exactly what
Pupil Capture's ``pupil_remote.py`` answers: ``R [name]`` (record every live sensor) and ``r``
→ ``OK``; ``t`` → Pupil time; ``T <float>`` → ``Timesync successful.``; ``v`` → version;
``SUB_PORT``/``PUB_PORT`` → the ports of the IPC backbone; a multipart ``notify.<subject>`` +
msgpack → ``Message forwarded.``; anything else → ``Unknown command.``.

*Pupil time* is this host's clock plus an offset that ``T`` sets: it never moves our clock. The
backbone is an XSUB (clients' PUB sockets connect to PUB_PORT) forwarded to an XPUB (clients'
SUB sockets connect to SUB_PORT). ``annotation`` messages on it (msgpack ``label``,
``timestamp`` in Pupil time, ``duration``) become markers of every session being recorded, at
the global time of their own timestamp (``source`` ``pupil``, the Pupil timestamp kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import redis

from ..bus.connection import async_client
from ..bus.registry import live_sensors_async
from ..bus.sessions import (
    Session,
    bids_label,
    global_now,
    mark_recordings,
    new_session_id,
    save_session,
    start_recording,
    stop_recording,
)
from ..core.hostclock import host_time
from ..version import __version__
from .context import NodeContext, remote_component

if TYPE_CHECKING:
    import zmq.asyncio

log = logging.getLogger(__name__)

DEFAULT_PORT = 50020
#: A request or backbone frame larger than this is refused (bytes).
MAX_MESSAGE_BYTES = 1 << 20


@dataclass
class PupilOptions:
    port: int = DEFAULT_PORT
    bind: str = "127.0.0.1"


class PupilRemote:
    """The REP server, the backbone and what they do to the lab's sessions."""

    name = "pupil"

    def __init__(self, node: NodeContext, options: PupilOptions) -> None:
        self.node = node
        self.options = options
        #: Pupil time = host time + offset (s); ``T`` sets it
        self.offset = 0.0
        self.session: Session | None = None
        self.counters = {"requests": 0, "annotations": 0, "annotations_unrecorded": 0, "bad_messages": 0}
        self.ports: dict[str, int] = {}
        self.last_command = ""
        import zmq.asyncio  # here, not at the top: the node imports this module whether Pupil Remote is on or off

        self.ctx = zmq.asyncio.Context.instance()
        self.c = async_client(node.config.redis_url)

    def pupil_time(self) -> float:
        return host_time() + self.offset

    def summary(self) -> dict[str, Any]:
        return {"server": "Pupil Remote", "ports": self.ports, "last_command": self.last_command,
                "offset_s": self.offset, **self.counters}  # fmt: skip

    # -- requests ---------------------------------------------------------------------------
    async def reply_to(self, frames: list[bytes]) -> str:
        """The answer Pupil Capture gives to a request (one frame, or ``notify.*`` multipart)."""
        self.counters["requests"] += 1
        msg = frames[0].decode("utf-8", "replace")
        self.last_command = msg[:200]
        if len(frames) > 1:
            await self.notification(msg, frames[1:])
            return "Message forwarded."
        if msg == "SUB_PORT":
            return str(self.ports["sub"])
        if msg == "PUB_PORT":
            return str(self.ports["pub"])
        if not msg:
            return "Unknown command."
        if msg[0] == "R":
            await self.start(msg[2:])
            return "OK"
        if msg[0] == "r":
            await self.stop()
            return "OK"
        if msg in ("C", "c"):
            return "OK"  # no calibration here; accepted as Pupil Capture does
        if msg[0] == "T":
            try:
                target = float(msg[2:])
            except ValueError:
                return f"'{msg[2:]}' cannot be converted to float."
            self.offset = target - host_time()
            log.info("pupil remote: Pupil time set to %.6f (host clock untouched, offset %.6f s)", target, self.offset)
            return "Timesync successful."
        if msg[0] == "t":
            return repr(self.pupil_time())
        if msg[0] == "v":
            return f"{__version__} (Sensorium Desktop)"
        return "Unknown command."

    async def notification(self, topic: str, frames: list[bytes]) -> None:
        """Forward a ``notify.*`` request onto the backbone; recording subjects act too."""
        await self.xpub.send_multipart([topic.encode(), *frames])
        try:
            payload = msgpack.unpackb(frames[0], raw=False)
        except (ValueError, msgpack.UnpackException):
            self.counters["bad_messages"] += 1
            return
        subject = payload.get("subject", "") if isinstance(payload, dict) else ""
        if subject == "recording.should_start":
            await self.start(str(payload.get("session_name", "")))
        elif subject == "recording.should_stop":
            await self.stop()

    async def _notify(self, subject: str, **fields: Any) -> None:
        body = {"subject": subject, "topic": f"notify.{subject}", **fields}
        await self.xpub.send_multipart([f"notify.{subject}".encode(), msgpack.packb(body)])

    async def start(self, name: str) -> None:
        if self.session is not None:
            log.warning("pupil remote: R while recording %s: ignored", self.session.session_id)
            return
        sensors = [s.sensor_id for s in await live_sensors_async(self.c, self.node.keys)]
        if not sensors:
            log.error("pupil remote: R: no sensor is streaming; nothing recorded")
            return
        self.session = Session(new_session_id(), task=bids_label(name.strip()), sensors=sensors,
                               notes=f"started by Pupil Remote{': ' + name if name.strip() else ''}")  # fmt: skip
        await save_session(self.c, self.node.keys, self.session)
        await start_recording(self.c, self.node.keys, self.session, self.node.node_id, await global_now(self.c))
        await self._notify("recording.started", session_name=name, record_eye=True)
        log.info("pupil remote: recording %s (%d sensors)", self.session.session_id, len(sensors))

    async def stop(self) -> None:
        if self.session is None:
            return
        await stop_recording(self.c, self.node.keys, self.session, await global_now(self.c))
        log.info("pupil remote: stopped %s", self.session.session_id)
        self.session = None
        await self._notify("recording.stopped")

    # -- the backbone -----------------------------------------------------------------------
    async def annotation(self, payload: bytes) -> None:
        """An annotation becomes a marker of every session being recorded, at its own time."""
        try:
            msg = msgpack.unpackb(payload, raw=False)
            label, stamp = str(msg["label"]), float(msg["timestamp"])
            duration = float(msg.get("duration", 0.0) or 0.0)
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            self.counters["bad_messages"] += 1
            log.warning("pupil remote: malformed annotation ignored: %s", exc)
            return
        extra = {"t_original": repr(stamp), "clock_original": "pupil", "duration": repr(duration)}
        if await mark_recordings(self.c, self.node.keys, label, "pupil", stamp - self.offset, extra):
            self.counters["annotations"] += 1
        else:
            self.counters["annotations_unrecorded"] += 1
            log.info("pupil remote: annotation %r while nothing records: not stored", label)

    async def backbone(self, xsub: zmq.asyncio.Socket) -> None:
        """Forward everything clients publish to subscribers; act on annotations."""
        while True:
            frames = await xsub.recv_multipart()
            if sum(len(f) for f in frames) > MAX_MESSAGE_BYTES:
                self.counters["bad_messages"] += 1
                continue
            await self.xpub.send_multipart(frames)
            if frames and frames[0].startswith(b"annotation") and len(frames) > 1:
                try:
                    await self.annotation(frames[1])
                except (redis.RedisError, OSError) as exc:
                    log.error("pupil remote: annotation not stored (Redis: %s)", exc)

    async def serve(self, rep: zmq.asyncio.Socket) -> None:
        while True:
            frames = await rep.recv_multipart()
            try:
                answer = await self.reply_to(frames)
            except (redis.RedisError, OSError) as exc:
                log.error("pupil remote: %s failed (Redis: %s)", frames[0][:40], exc)
                answer = "OK"
            await rep.send_string(answer)

    async def run(self, stop: asyncio.Event) -> None:
        import zmq

        o = self.options
        rep = self.ctx.socket(zmq.REP)
        xsub = self.ctx.socket(zmq.XSUB)
        self.xpub = self.ctx.socket(zmq.XPUB)
        for sock in (rep, xsub, self.xpub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.xpub.setsockopt(zmq.SNDHWM, 1000)  # a slow subscriber loses backbone messages, never blocks us
        try:
            try:
                rep.bind(f"tcp://{o.bind}:{o.port}")
            except zmq.ZMQError as exc:
                log.warning("pupil remote: cannot listen on %s:%d (%s; is Pupil Capture running?): off",
                            o.bind, o.port, exc)  # fmt: skip
                self.ports = {"remote": 0}
                return
            self.ports = {"remote": o.port, "pub": xsub.bind_to_random_port(f"tcp://{o.bind}"),
                          "sub": self.xpub.bind_to_random_port(f"tcp://{o.bind}")}  # fmt: skip
            await xsub.send(b"\x01")  # subscribe to everything clients publish
            log.info("pupil remote on %s:%d (backbone PUB_PORT %d, SUB_PORT %d)", o.bind, o.port,
                     self.ports["pub"], self.ports["sub"])  # fmt: skip
            tasks = [asyncio.create_task(self.serve(rep)), asyncio.create_task(self.backbone(xsub))]
            try:
                stop_task = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait([*tasks, stop_task], return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not stop_task and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            finally:
                for t in (*tasks, stop_task):
                    t.cancel()
                await asyncio.gather(*tasks, stop_task, return_exceptions=True)
        finally:
            for sock in (rep, xsub, self.xpub):
                sock.close(0)
            with contextlib.suppress(Exception):
                await self.c.aclose()


async def serve_pupil(node: NodeContext, options: PupilOptions, stop: asyncio.Event) -> None:
    """Pupil Remote until ``stop``."""
    remote = PupilRemote(node, options)
    node.add_remote(remote)
    await remote.run(stop)


#: node component: Pupil Remote (off without PupilOptions or with port 0)
pupil_remote = remote_component("pupil", PupilOptions, serve_pupil)
