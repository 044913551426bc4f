"""LabRecorder remote control (RCS): the stimulus scripts that drive LabRecorder drive us.

Plain TCP (default port 22345, loopback unless the operator opens it with ``--remote-bind``),
one ASCII command per line, the two bytes ``OK`` (no newline) answered to every line — exactly
LabRecorder's ``tcpinterface.cpp`` — for ``start``, ``stop``, ``update``, ``select all``,
``select none`` and ``filename {root:…} {template:…} {task:…} {run:…} {participant:…}
{session:…} {acquisition:…} {modality:…}``. Extensions LabRecorder users asked for:
``select <name>`` (adds a sensor by id, name or LSL name), ``regexselect <regex>``, a ``start``
that records the selection once one was made (all sensors only when nothing was ever selected,
as LabRecorder does), and ``status`` (one line of JSON instead of ``OK``).

``start`` records the selected sensors into a session named by the filename fields; on ``stop``
the recorder finalizes its crash-safe session folder (the source of truth, in the data dir) and
the XDF is written at LabRecorder's path — BIDS
``<root>/sub-%p/ses-%s/%m/sub-%p_ses-%s_task-%b[_acq-%a]_run-%r_%m.xdf`` or the legacy template —
an existing file renamed ``<name>_old<N>.xdf`` first, never overwritten.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .. import paths
from ..bus.connection import async_client
from ..bus.registry import live_sensors_async
from ..bus.sessions import (
    Session,
    global_now,
    mark_recordings,
    new_session_id,
    recording_status,
    save_session,
    start_recording,
)
from ..bus.sessions import stop_recording as stop_session
from ..core.samples import SensorInfo
from ..paths import OutsideRootsError, confine
from ..recording.export import export_recording
from .context import NodeContext, remote_component

log = logging.getLogger(__name__)

DEFAULT_PORT = 22345
#: A longer line is answered (``OK``) and ignored: a client cannot make the node buffer more.
MAX_LINE_BYTES = 64 * 1024
#: A client that does not read its ``OK``s for this long is disconnected (s).
WRITE_TIMEOUT_S = 5.0
#: Kernel send buffer per client (bytes): small, so unread replies block the writer early.
SEND_BUFFER_BYTES = 16 * 1024
BIDS_TEMPLATE = "sub-%p/ses-%s/%m/sub-%p_ses-%s_task-%b[_acq-%a]_run-%r_%m.xdf"
LEGACY_TEMPLATE = "exp%n/block_%b.xdf"
FIELD_PATTERN = re.compile(r"{(\w+?):([^}]*)}")
#: How long ``stop`` waits for the recorder to finalize before giving up on the XDF (s).
FINALIZE_TIMEOUT_S = 60.0


@dataclass
class FileFields:
    """What ``filename`` sets (LabRecorder's study root, template and BIDS fields)."""

    root: str = ""
    template: str = ""  # "" = BIDS naming; else a legacy template (lower-cased, as LabRecorder does)
    task: str = "default"
    run: int = 1
    participant: str = "P001"
    session: str = "S001"
    acquisition: str = ""
    modality: str = "eeg"

    def update(self, line: str) -> list[str]:
        """Apply every ``{option:value}`` of a ``filename`` line; returns the options not known."""
        unknown = []
        for option, value in FIELD_PATTERN.findall(line):
            key = option.lower()
            if key == "template":
                self.template = value.lower()
            elif key == "run":
                with contextlib.suppress(ValueError):
                    self.run = int(value)
            elif key == "modality":
                self.modality = value.lower()
            elif key in ("root", "task", "participant", "session", "acquisition"):
                setattr(self, key, value)
            else:
                unknown.append(option)
        return unknown

    def relative_path(self) -> str:
        """The file name under the root, wildcards replaced as LabRecorder's ``replaceFilename``."""
        if self.template:
            text, counter = self.template, "%n"
        else:
            text, counter = BIDS_TEMPLATE, "%r"
            text = text.replace("[_acq-%a]", "_acq-%a" if self.acquisition else "")
        text = text.replace("%b", self.task).replace("%p", self.participant).replace("%s", self.session)
        text = text.replace("%a", self.acquisition).replace("%m", self.modality)
        return text.replace(counter, f"{self.run:03d}").strip()

    def path(self, default_root: Path) -> Path:
        return Path(self.root or default_root) / self.relative_path()


def rename_old(path: Path) -> Path | None:
    """LabRecorder's rule: an existing file becomes ``<stem>_old<N><suffix>`` (highest N + 1)."""
    if not path.exists():
        return None
    if path.is_dir():
        raise IsADirectoryError(f"{path} exists and is a folder")
    n = 1
    while path.with_name(f"{path.stem}_old{n}{path.suffix}").exists():
        n += 1
    target = path.with_name(f"{path.stem}_old{n}{path.suffix}")
    path.rename(target)
    log.info("rcs: moved the existing %s to %s", path, target.name)
    return target


@dataclass
class LabRecorderConfig:
    """The keys of a LabRecorder.cfg that we honour."""

    study_root: str = ""
    path_template: str = ""
    session_blocks: list[str] = field(default_factory=list)
    required_streams: list[str] = field(default_factory=list)
    bids_modalities: list[str] = field(default_factory=list)
    rcs_port: int | None = None
    rcs_enabled: bool | None = None
    auto_start: bool = False

    @classmethod
    def parse(cls, text: str) -> LabRecorderConfig:
        """Parse LabRecorder.cfg (QSettings INI: ``key=value``, lists ``"a", "b"``, ``;`` comments)."""
        parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"))
        parser.optionxform = str  # type: ignore[assignment, method-assign]
        parser.read_string("[LabRecorder]\n" + text.lstrip("\ufeff"))
        raw = parser["LabRecorder"]

        def values(key: str) -> list[str]:
            return [v.strip().strip('"').strip() for v in _split_list(raw.get(key, "")) if v.strip().strip('"')]

        def flag(key: str) -> bool | None:
            return None if key not in raw else raw[key].strip().lower() in ("1", "true", "yes")

        port = raw.get("RCSPort", "").strip()
        return cls(
            study_root=raw.get("StudyRoot", "").strip().strip('"'),
            path_template=raw.get("PathTemplate", "").strip().strip('"'),
            session_blocks=values("SessionBlocks"),
            required_streams=values("RequiredStreams"),
            bids_modalities=values("BidsModalities"),
            rcs_port=int(port) if port.isdigit() else None,
            rcs_enabled=flag("RCSEnabled"),
            auto_start=bool(flag("AutoStart")),
        )


def _split_list(text: str) -> list[str]:
    """Split a QSettings list value on commas outside quotes."""
    out, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return out


def sensor_names(info: SensorInfo) -> set[str]:
    """Names a script may select a sensor by: its id, its device's name, its LSL stream name."""
    names = {info.sensor_id, info.device_name, f"{info.device_name} {info.attribute}"}
    for key in ("name", "lsl_name"):
        if info.extra.get(key):
            names.add(str(info.extra[key]))
    return {n for n in names if n}


@dataclass
class RcsOptions:
    port: int = DEFAULT_PORT
    bind: str = "127.0.0.1"
    config: LabRecorderConfig = field(default_factory=LabRecorderConfig)


class RemoteControl:
    """The command interpreter of one node (shared by every client connection)."""

    name = "rcs"

    def __init__(self, node: NodeContext, options: RcsOptions) -> None:
        self.node = node
        self.options = options
        cfg = options.config
        self.fields = FileFields(root=cfg.study_root, template=cfg.path_template.lower())
        if cfg.session_blocks:
            self.fields.task = cfg.session_blocks[0]
        self.selection: set[str] | None = None  # None: nothing selected yet → start records all
        self.select_all = False
        self.session: Session | None = None
        self.file: Path | None = None
        self.state = "idle"  # idle, recording, finalizing, written, failed, blocked
        self.error = ""
        self.losses: list[dict[str, Any]] = []
        self.samples = 0
        self.clients = 0
        self.last_command = ""
        self.listening = ""
        self._c = None
        self._finishing: asyncio.Task[None] | None = None

    @property
    def c(self) -> Any:
        if self._c is None:
            self._c = async_client(self.node.config.redis_url)
        return self._c

    async def close(self) -> None:
        if self._finishing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._finishing), 30.0)
        if self._c is not None:
            await self._c.aclose()

    # -- commands ---------------------------------------------------------------------------
    async def handle(self, line: str, local_client: bool) -> bytes:
        """Run one command line; the reply (``OK``, or one JSON line for ``status``)."""
        s = line.strip()
        self.last_command = s[:200]
        try:
            if s == "status":
                return (json.dumps(await self.status()) + "\n").encode()
            if s == "start":
                await self.start()
            elif s == "stop":
                await self.stop()
            elif s == "update":
                pass  # the registry is always current
            elif s.startswith("marker "):  # extension: a marker into every session being recorded
                if not await mark_recordings(self.c, self.node.keys, s.removeprefix("marker ").strip(), "rcs"):
                    self.error = "marker: nothing records"
            elif s.startswith("regexselect "):
                await self.select_regex(s.removeprefix("regexselect ").strip())
            elif "filename" in s:
                self.set_filename(s, local_client)
            elif "select" in s:
                await self.select(s)
            else:
                log.info("rcs: unknown command %r (answered OK, as LabRecorder does)", s[:80])
        except (redis.RedisError, OSError) as exc:
            self.error = f"{s.split(' ', 1)[0]}: Redis unreachable: {exc}"
            log.error("rcs: %s", self.error)
        return b"OK"

    def set_filename(self, line: str, local_client: bool) -> None:
        before = self.fields.root
        unknown = self.fields.update(line)
        if unknown:
            log.warning("rcs: filename options not known to LabRecorder ignored: %s", ", ".join(unknown))
        if self.fields.root != before and not local_client:  # from the lab network: only folders allowed here
            try:
                confine(Path(self.fields.root).expanduser().resolve(), self.node.allowed_roots(), "study root")
            except OutsideRootsError as exc:
                self.error = f"filename refused: {exc}"
                log.error("rcs: %s", self.error)
                self.fields.root = before
        log.info("rcs: next file %s", self.fields.path(self.default_root()))

    def default_root(self) -> Path:
        return paths.data_dir() / "labrecorder"

    async def live_sensors(self) -> list[SensorInfo]:
        return await live_sensors_async(self.c, self.node.keys)

    async def select(self, line: str) -> None:
        words = line.split(None, 1)
        arg = words[1].strip() if len(words) > 1 and words[0] == "select" else ""
        if arg == "all" or (not arg and "all" in line):
            self.selection, self.select_all = set(), True
        elif arg == "none" or (not arg and "none" in line):
            self.selection, self.select_all = set(), False
        elif arg:
            found = [s.sensor_id for s in await self.live_sensors() if arg in sensor_names(s)]
            if not found:
                self.error = f"select {arg!r}: no such sensor"
                log.warning("rcs: %s", self.error)
                return
            self.selection = (self.selection or set()) | set(found)

    async def select_regex(self, pattern: str) -> None:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            self.error = f"regexselect {pattern!r}: {exc}"
            log.warning("rcs: %s", self.error)
            return
        found = {s.sensor_id for s in await self.live_sensors() if any(rx.search(n) for n in sensor_names(s))}
        self.selection = (self.selection or set()) | found
        self.select_all = False

    async def chosen(self) -> list[str]:
        live = await self.live_sensors()
        if self.selection is None or self.select_all:
            return [s.sensor_id for s in live]
        return sorted(self.selection)

    async def missing_required(self) -> list[str]:
        """Required streams (LabRecorder.cfg ``"Name (host)"``) not among the chosen sensors."""
        live = {s.sensor_id: s for s in await self.live_sensors()}
        chosen = set(await self.chosen())
        missing = []
        for entry in self.options.config.required_streams:
            name = re.sub(r"\s*\([^)]*\)\s*$", "", entry).strip()
            if not any(name in sensor_names(live[sid]) for sid in chosen if sid in live):
                missing.append(entry)
        return missing

    async def start(self) -> None:
        if self.state == "recording":
            log.warning("rcs: start while recording %s: ignored", self.session.session_id if self.session else "?")
            return
        missing = await self.missing_required()
        sensors = await self.chosen()
        if missing or not sensors:
            self.state = "blocked"
            self.error = (f"start blocked: required streams missing: {', '.join(missing)}" if missing
                          else "start blocked: no sensor selected (or none online)")  # fmt: skip
            log.error("rcs: %s", self.error)
            return
        f = self.fields
        self.session = Session(new_session_id(), f.participant, f.session, f.task, str(f.run), sensors=sensors,
                               acquisition=f.acquisition, notes="started by LabRecorder remote control")  # fmt: skip
        self.file, self.error, self.losses, self.samples = f.path(self.default_root()), "", [], 0
        await save_session(self.c, self.node.keys, self.session)
        await start_recording(self.c, self.node.keys, self.session, self.node.node_id, await global_now(self.c))
        self.state = "recording"
        log.info("rcs: recording %s (%d sensors) for %s", self.session.session_id, len(sensors), self.file)

    async def stop(self) -> None:
        if self.state != "recording" or self.session is None:
            log.info("rcs: stop while not recording: ignored")
            return
        await stop_session(self.c, self.node.keys, self.session, await global_now(self.c))
        self.state = "finalizing"
        self._finishing = asyncio.create_task(self._write_xdf(self.session))

    async def _write_xdf(self, session: Session) -> None:
        """Wait for the recorder to finalize, then export to LabRecorder's path."""
        deadline = time.monotonic() + FINALIZE_TIMEOUT_S
        st: dict[str, str] = {}
        while time.monotonic() < deadline:
            st = await recording_status(self.c, self.node.keys, session.session_id)
            if st.get("state") in ("complete", "failed"):
                break
            await asyncio.sleep(0.1)
        if st.get("state") != "complete" or not st.get("directory"):
            self.state, self.error = "failed", f"recording {session.session_id} ended {st.get('state', 'unknown')}: " \
                                              f"{st.get('error', 'no answer from the recorder')}"  # fmt: skip
            log.error("rcs: %s", self.error)
            return
        assert self.file is not None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            rename_old(self.file)
            result = await asyncio.to_thread(export_recording, Path(st["directory"]), "xdf", self.file)
        except (OSError, ValueError) as exc:
            self.state, self.error = "failed", f"XDF not written to {self.file}: {exc}"
            log.error("rcs: %s", self.error)
            return
        self.samples, self.losses = result.samples, list(result.losses)
        self.state = "written"
        if self.losses:
            self.error = f"{len(self.losses)} losses (listed in the file's metadata)"
        log.info("rcs: wrote %s (%d samples) from %s", self.file, result.samples, st["directory"])

    def summary(self) -> dict[str, Any]:
        """For the node's telemetry (the window's remote-control status)."""
        return {"server": "LabRecorder RCS", "listening": self.listening, "clients": self.clients,
                "last_command": self.last_command, "state": self.state, "error": self.error,
                "file": str(self.file) if self.file else ""}  # fmt: skip

    async def status(self) -> dict[str, Any]:
        st = await recording_status(self.c, self.node.keys, self.session.session_id) if self.session else {}
        return {
            "recording": self.state == "recording",
            "state": self.state,
            "session": self.session.session_id if self.session else None,
            "file": str(self.file) if self.file else None,
            "next_file": str(self.fields.path(self.default_root())),
            "sensors": self.session.sensors if self.session else await self.chosen(),
            "samples": int(st.get("samples", 0) or 0) if self.state == "recording" else self.samples,
            "losses": self.losses,
            "error": self.error,
            "missing_required": await self.missing_required(),
            "clients": self.clients,
        }


class RcsServer:
    """The TCP side: any number of clients, each served on its own; none can block another."""

    def __init__(self, control: RemoteControl) -> None:
        self.control = control
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()  # one per connected client

    async def start(self) -> bool:
        o = self.control.options
        try:
            self.server = await asyncio.start_server(self._client, o.bind, o.port, limit=MAX_LINE_BYTES)
        except OSError as exc:
            log.warning("rcs: cannot listen on %s:%d (%s; is LabRecorder running?): remote control is off",
                        o.bind, o.port, exc.strerror or exc)  # fmt: skip
            self.control.listening = f"off: port {o.port} in use"
            return False
        port = self.server.sockets[0].getsockname()[1]
        self.control.listening = f"{o.bind}:{port}"
        log.info("rcs: LabRecorder remote control on %s:%d", o.bind, port)
        return True

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
        handlers, self._handlers = set(self._handlers), set()
        for task in handlers:  # connected clients end with the node, not after its loop is gone
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # replies are tiny: a client that never reads them is found out soon
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        local = str(peer[0]) in ("127.0.0.1", "::1", "localhost")
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self.control.clients += 1
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:  # closed; a last unterminated line is not a command
                    if exc.partial.strip():
                        log.info("rcs: %s closed mid-line", peer[0])
                    return
                except asyncio.LimitOverrunError:
                    await _skip_line(reader)
                    log.warning("rcs: %s sent a line over %d bytes: ignored", peer[0], MAX_LINE_BYTES)
                    raw = b""
                line = raw.decode("utf-8", "replace")
                reply = await self.control.handle(line, local) if raw.strip() else b"OK"
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except TimeoutError:
            log.warning("rcs: client %s does not read its replies: disconnected", peer[0])
            writer.transport.abort()  # close() would wait to flush to a client that never reads
        except (ConnectionError, OSError) as exc:
            log.info("rcs: client %s dropped (%s)", peer[0], type(exc).__name__)
        finally:
            self._handlers.discard(task)
            self.control.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _skip_line(reader: asyncio.StreamReader) -> None:
    """Drop bytes up to and including the next newline (an oversized line)."""
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)


async def serve_rcs(node: NodeContext, options: RcsOptions, stop: asyncio.Event) -> None:
    """LabRecorder remote control until ``stop``."""
    control = RemoteControl(node, options)
    node.add_remote(control)
    server = RcsServer(control)
    await server.start()
    try:
        if options.config.auto_start:
            await control.start()
        await stop.wait()
    finally:
        await server.close()
        await control.close()


#: node component: LabRecorder remote control (off without RcsOptions or with port 0)
rcs = remote_component("rcs", RcsOptions, serve_rcs)
