"""Network ingest with real clients on loopback: WebSocket clients (the `websockets` library)
speaking Sensocto's Phoenix protocol exactly as its SDKs do, the Sensocto Python SDK itself
(tests/thirdparty, MIT), and HTTP JSON posts — into Redis, a recording and its XDF export."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyxdf
import websockets
from conftest import NodeThread, RedisServer, free_port, wait_for, with_async_redis

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import list_devices, list_sensors
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.worker.ingest import IngestOptions

TOKEN = "lab-token-1"


class Phoenix:
    """A Phoenix V1 client as the Sensocto SDKs speak it (string refs, replies awaited)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ref = 0
        self.pushes: list[dict[str, Any]] = []

    async def push(self, topic: str, event: str, payload: Any) -> str:
        self.ref += 1
        await self.ws.send(json.dumps({"topic": topic, "event": event, "payload": payload, "ref": str(self.ref)}))
        return str(self.ref)

    async def call(self, topic: str, event: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
        ref = await self.push(topic, event, payload)
        return await self.reply(ref, timeout)

    async def reply(self, ref: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic())))
            if msg["event"] == "phx_reply" and msg["ref"] == ref:
                return msg["payload"]
            self.pushes.append(msg)

    async def next_push(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        for m in self.pushes:
            if m["event"] == event:
                self.pushes.remove(m)
                return m["payload"]
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic())))
            if msg["event"] == event:
                return msg["payload"]


def sensor_params(sensor_id: str, connector: str = "conn-1", token: str = TOKEN, **kw: Any) -> dict[str, Any]:
    return {"connector_id": connector, "connector_name": "Phone A", "sensor_id": sensor_id, "sensor_name": "Chest",
            "sensor_type": "polar", "attributes": ["ecg", "heartrate"], "sampling_rate": 512, "batch_size": 10,
            "bearer_token": token, **kw}  # fmt: skip


@pytest.fixture
def ingest_node(redis_server: RedisServer, keys: Keys, tmp_path: Path):
    port = free_port()
    node = NodeThread(redis_server.url, keys, [], node_id="ingest-node", sessions_dir=tmp_path / "sessions",
                      component_options={"ingest": IngestOptions("127.0.0.1", port, TOKEN)}).start()  # fmt: skip
    wait_for(lambda: node.remote("ingest") is not None and node.remote("ingest").port, 20, message="ingest listening")
    yield node, port
    node.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_phoenix_client_streams_measurements_into_redis(
    ingest_node: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys
) -> None:
    node, port = ingest_node
    sid = f"s{uuid.uuid4().hex[:8]}"
    t0_ms = 1_700_000_000_000
    ecg = np.round(np.sin(np.arange(128) / 10.0), 4)

    async def client() -> dict[str, Any]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=1.0.0") as ws:
            ph = Phoenix(ws)
            out: dict[str, Any] = {}
            out["heartbeat"] = await ph.call("phoenix", "heartbeat", {})
            out["connector"] = await ph.call("sensocto:connector:conn-1", "phx_join", {
                "connector_id": "conn-1", "connector_name": "Phone A", "connector_type": "python", "features": [],
                "bearer_token": TOKEN})  # fmt: skip
            out["wrong_token"] = await ph.call(f"sensocto:sensor:{sid}x", "phx_join",
                                               sensor_params(sid + "x", token="nope"))  # fmt: skip
            out["crashed"] = await ph.call(f"sensocto:sensor:{sid}y", "phx_join", {"sensor_id": sid + "y"})
            out["join"] = await ph.call(f"sensocto:sensor:{sid}", "phx_join", sensor_params(sid))
            out["bp"] = await ph.next_push("backpressure_config")
            topic = f"sensocto:sensor:{sid}"
            await ph.push(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": 72},
                                                 "timestamp": t0_ms})  # fmt: skip
            await ph.push(topic, "measurements_batch", [
                {"attribute_id": "ecg", "payload": {"values": ecg[:64].tolist(), "sample_rate": 512},
                 "timestamp": t0_ms + 10},
                {"attribute_id": "ecg", "payload": {"values": ecg[64:].tolist(), "sample_rate": 512},
                 "timestamp": t0_ms + 10 + 125}])  # fmt: skip
            out["missing"] = await ph.call(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": 1}})
            out["bad_id"] = await ph.call(topic, "measurement", {"attribute_id": "no good", "payload": 1,
                                                                  "timestamp": 1})  # fmt: skip
            too_fast = {"attribute_id": "heartrate", "payload": {"bpm": 400}, "timestamp": 1}
            out["bad_payload"] = await ph.call(topic, "measurement", too_fast)
            out["bad_batch"] = await ph.call(topic, "measurements_batch", [
                {"attribute_id": "heartrate", "payload": {"bpm": 60}, "timestamp": 1}, {"attribute_id": "heartrate"}])
            out["connector_name"] = await ph.call(topic, "update_connector", {"connector_name": "Phone B"})
            out["bad_connector_name"] = await ph.call(topic, "update_connector", {"connector_name": ""})
            explode = {"action": "explode", "attribute_id": "x", "metadata": {}}
            out["bad_action"] = await ph.call(topic, "update_attributes", explode)
            out["ping"] = await ph.call(topic, "ping", {"n": 1})
            out["unmatched"] = await ph.call("sensocto:sensor:never-joined", "measurement", {})
            ph.ref += 1  # V2 arrays are answered as arrays
            await ws.send(json.dumps(["1", str(ph.ref), "phoenix", "heartbeat", {}]))
            out["v2"] = json.loads(await ws.recv())
            return out

    out = run(client())
    assert out["heartbeat"] == {"status": "ok", "response": {}}
    assert out["connector"]["status"] == "ok" and out["join"] == {"status": "ok", "response": {}}
    assert out["wrong_token"] == {"status": "error", "response": {"reason": "unauthorized"}}
    assert out["crashed"] == {"status": "error", "response": {"reason": "join crashed"}}
    bp = out["bp"]
    assert set(bp) >= {"attention_level", "memory_protection_active", "paused", "recommended_batch_window",
                       "recommended_batch_size", "load_multiplier", "timestamp"}  # fmt: skip
    assert "system_load" not in bp and bp["system_load_level"] in ("normal", "elevated", "high", "critical")
    assert out["missing"]["response"] == {"reason": "missing_fields", "fields": ["timestamp"]}
    assert out["bad_id"]["response"] == {"reason": "invalid_attribute_id"}
    assert out["bad_payload"]["response"]["reason"] == "invalid_payload"
    assert out["bad_payload"]["response"]["field"] == "payload.bpm"
    assert out["bad_batch"]["response"]["reason"] == "invalid_batch"
    assert out["bad_batch"]["response"]["failed_count"] == 1
    assert out["connector_name"] == {"status": "ok", "response": {"connector_name": "Phone B"}}
    assert out["bad_connector_name"]["response"] == {"reason": "invalid_connector_name"}
    assert out["bad_action"]["response"] == {"reason": "invalid_action"}
    assert out["ping"] == {"status": "ok", "response": {"n": 1}}
    assert out["unmatched"]["response"] == {"reason": "unmatched topic"}
    assert out["v2"][2:4] == ["phoenix", "phx_reply"] and out["v2"][4]["status"] == "ok"
    c = redis_server.client()
    dev_id = f"ws-{sid}"
    wait_for(lambda: sum(len(e.batch) for e in read_all(c, keys, f"{dev_id}-ecg")) == 128, 15, message="ecg")
    got = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev_id}-ecg")])
    np.testing.assert_allclose(got.values[:, 0], ecg, atol=1e-6)
    expected_t = np.concatenate([(t0_ms + 10) / 1000 + np.arange(64) / 512, (t0_ms + 135) / 1000 + np.arange(64) / 512])
    np.testing.assert_allclose(got.t_local, expected_t, atol=1e-9)
    wait_for(lambda: read_all(c, keys, f"{dev_id}-heartrate"), 10, message="heartrate")
    hr = read_all(c, keys, f"{dev_id}-heartrate")[0].batch
    assert hr.values[0, 0] == 72 and hr.t_local[0] == t0_ms / 1000
    infos = {s.sensor_id: s for s in list_sensors(c, keys)}
    assert infos[f"{dev_id}-ecg"].device_name == "Chest" and infos[f"{dev_id}-ecg"].transport == "ws"
    assert infos[f"{dev_id}-ecg"].clock_domain == infos[f"{dev_id}-heartrate"].clock_domain == "ws-conn-1"
    counters = node.remote("ingest").counters  # type: ignore[union-attr]
    assert counters["invalid_measurements"] == 4 and counters["unauthorized"] == 1 and counters["join_crashed"] == 1


def test_a_client_that_goes_is_lost_and_resumes_its_streams(
    ingest_node: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys
) -> None:
    _node, port = ingest_node
    sid = f"s{uuid.uuid4().hex[:8]}"
    topic = f"sensocto:sensor:{sid}"

    async def session(bpm: int) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/socket/websocket") as ws:
            ph = Phoenix(ws)
            assert (await ph.call(topic, "phx_join", sensor_params(sid)))["status"] == "ok"
            await ph.push(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": bpm},
                                                 "timestamp": int(time.time() * 1000)})  # fmt: skip
            await ph.call(topic, "ping", {})

    run(session(60))
    dev_id = f"ws-{sid}"
    c = redis_server.client()
    state = lambda: {d.device_id: d for d in list_devices(c, keys)}.get(dev_id)  # noqa: E731
    wait_for(lambda: state() is not None and state().state == "lost", 10, message="lost after the client went")
    run(session(61))
    wait_for(lambda: len(read_all(c, keys, f"{dev_id}-heartrate")) == 2, 10, message="second sample")
    entries = read_all(c, keys, f"{dev_id}-heartrate")
    assert [e.batch.seq for e in entries] == [0, 1] and [e.batch.values[0, 0] for e in entries] == [60, 61]
    wait_for(lambda: state().state == "lost" and state().health["reconnects"] == 1, 10, message="lost again, 1 rejoin")


def post(port: int, body: bytes, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/measurements", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_http_json_ingest(ingest_node: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys) -> None:
    _node, port = ingest_node
    now = int(time.time() * 1000)
    one = {"sensor_id": "thermo-1", "attribute_id": "temperature", "payload": {"value": 21.5}, "timestamp": now}
    assert post(port, json.dumps(one).encode()) == (202, {"accepted": 1, "samples": 1, "sensors": ["thermo-1"]})
    many = [dict(one, timestamp=now + i * 100, payload={"value": 21.0 + i}) for i in range(1, 4)]
    many.append({"sensor_id": "hr-1", "attribute_id": "heartrate", "payload": {"bpm": 70}, "timestamp": now})
    status, body = post(port, json.dumps(many).encode())
    assert status == 202 and body["accepted"] == 4 and body["sensors"] == ["hr-1", "thermo-1"]
    assert post(port, json.dumps(one).encode(), token="wrong")[0] == 401
    assert post(port, json.dumps(one).encode(), token=None)[0] == 401
    assert post(port, b"{nope")[0] == 400
    status, body = post(port, json.dumps([one, {k: v for k, v in one.items() if k != "timestamp"}]).encode())
    assert status == 400 and body["field"] == "[1]timestamp"
    status, body = post(port, json.dumps(dict(one, attribute_id="heartrate", payload={"bpm": -3})).encode())
    assert status == 422 and body["field"] == "payload.bpm"
    assert post(port, b"[" + b"1," * (1 << 20) + b"1]")[0] == 413
    c = redis_server.client()
    wait_for(lambda: sum(len(e.batch) for e in read_all(c, keys, "ws-thermo-1-temperature")) == 4, 10, message="4")
    vals = SampleBatch.concat([e.batch for e in read_all(c, keys, "ws-thermo-1-temperature")]).values[:, 0]
    assert vals.tolist() == [21.5, 22.0, 23.0, 24.0]  # refused posts took nothing


def test_bad_clients_never_hold_up_a_good_one(
    ingest_node: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys
) -> None:
    node, port = ingest_node
    good = f"g{uuid.uuid4().hex[:8]}"
    url = f"ws://127.0.0.1:{port}/socket/websocket"

    async def good_client(n: int) -> float:
        async with websockets.connect(url) as ws:
            ph = Phoenix(ws)
            topic = f"sensocto:sensor:{good}"
            assert (await ph.call(topic, "phx_join", sensor_params(good)))["status"] == "ok"
            began = time.monotonic()
            for i in range(n):
                await ph.push(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": 60 + i % 50},
                                                     "timestamp": 1_000 + i * 20})  # fmt: skip
                await asyncio.sleep(0.02)
            await ph.call(topic, "ping", {})
            return time.monotonic() - began

    async def garbage() -> None:
        async with websockets.connect(url) as ws:
            for text in ("{not json", "[1,2]", json.dumps({"topic": 5, "event": "x"}), "\x00" * 100):
                await ws.send(text)
            await ws.send(b"\x01\x02")

    async def oversized() -> int | None:
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("x" * (2 << 20))
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
            return None

    async def never_reads() -> None:
        ws = await websockets.connect(url, max_queue=1, read_limit=1024)
        ws.transport.pause_reading()  # a client that never reads its replies
        try:
            for _ in range(20_000):
                await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {"pad": "x" * 200},
                                          "ref": "1"}))  # fmt: skip
        except websockets.ConnectionClosed:
            pass

    async def flood() -> None:
        async with websockets.connect(url) as ws:
            async def read() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for _ in ws:
                        pass

            reader = asyncio.create_task(read())
            heartbeat = json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"})
            for _ in range(12_000):
                await ws.send(heartbeat)
            await asyncio.sleep(0.5)
            reader.cancel()

    async def half_open() -> None:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /socket/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # never finished
        await asyncio.sleep(3)
        writer.close()

    async def all_at_once() -> tuple[float, int | None]:
        results = await asyncio.gather(good_client(150), garbage(), oversized(), never_reads(), half_open(), flood(),
                                       return_exceptions=True)  # fmt: skip
        assert not isinstance(results[0], BaseException), results[0]
        return results[0], results[2] if not isinstance(results[2], BaseException) else None  # type: ignore[return-value]

    _elapsed, close_code = run(all_at_once())  # the good client's final ping was answered (10 s timeout)
    assert close_code == 1009
    c = redis_server.client()
    wait_for(lambda: sum(len(e.batch) for e in read_all(c, keys, f"ws-{good}-heartrate")) == 150, 15,
             message="every measurement of the good client")  # fmt: skip
    counters = node.remote("ingest").counters  # type: ignore[union-attr]
    assert counters["malformed"] >= 4 and counters["oversized"] >= 1 and counters["rate_limited"] > 0
    assert node.remote("ingest").summary()["clients"] <= 1  # type: ignore[union-attr]


def test_the_sensocto_python_sdk_records_into_xdf(
    ingest_node: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """The SDK's own client: register a sensor, send single and batched measurements, get its
    backpressure config; a recording's XDF holds every value."""
    sys.path.insert(0, str(Path(__file__).parent / "thirdparty"))
    try:
        from sensocto import SensoctoClient, SensorConfig  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    import redis.asyncio

    from sensorium_desktop.bus.sessions import Session, save_session, start_recording, stop_recording
    from sensorium_desktop.recording.export import export_recording
    from sensorium_desktop.recording.xdf import xdf_stream_key

    node, port = ingest_node
    configs: list[Any] = []
    sent_hr: list[int] = []
    sent_ecg: list[float] = []

    async def sdk(phase: str, sensor_id: str) -> None:
        client = SensoctoClient(server_url=f"http://127.0.0.1:{port}", bearer_token=TOKEN, connector_name="SDK lab",
                                connector_id="sdk-conn")  # fmt: skip
        await client.connect()
        try:
            config = SensorConfig(sensor_name="SDK chest", sensor_id=sensor_id, sensor_type="polar",
                                  attributes=["heartrate", "ecg"])  # fmt: skip
            stream = await client.register_sensor(config)
            stream.on_backpressure(configs.append)
            await asyncio.sleep(0.3)  # the config pushed right after the join
            configs.append(stream.backpressure_config)
            if phase == "announce":
                await stream.send_measurement("heartrate", {"bpm": 50})
                sent_hr.append(50)
                return
            for i in range(20):
                bpm = 60 + i
                await stream.send_measurement("heartrate", {"bpm": bpm})
                sent_hr.append(bpm)
                values = [round(0.01 * (i * 16 + k), 4) for k in range(16)]
                await stream.add_to_batch("ecg", {"values": values, "sample_rate": 512})
                sent_ecg.extend(values)
                await asyncio.sleep(0.05)
            await stream.flush_batch()
            await asyncio.sleep(0.3)
        finally:
            await client.disconnect()

    sensor_id = str(uuid.uuid4())
    run(sdk("announce", sensor_id))  # the sensor and its streams exist before the session is made
    dev = f"ws-{sensor_id}"
    c = redis_server.client()
    wait_for(lambda: f"{dev}-heartrate" in {s.sensor_id for s in list_sensors(c, keys)}, 10, message="registered")
    session = Session("sdk-session", sensors=[f"{dev}-heartrate", f"{dev}-ecg"])

    async def start(ac: redis.asyncio.Redis) -> None:
        await save_session(ac, keys, session)
        await start_recording(ac, keys, session, "ingest-node")

    with_async_redis(redis_server.url, start)
    time.sleep(1.5)
    run(sdk("stream", sensor_id))
    time.sleep(1.0)
    with_async_redis(redis_server.url, lambda ac: stop_recording(ac, keys, session))
    rec_dir = wait_for(lambda: next(iter((Path(node.node.config.sessions_dir or ".")).glob("*/session.json")), None),
                       30, message="recorded")  # fmt: skip
    wait_for(lambda: json.loads(rec_dir.read_text())["state"] == "complete", 30, message="complete")
    out = tmp_path / "sdk.xdf"
    export_recording(rec_dir.parent, "xdf", out)
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    by_key = {xdf_stream_key(s): s for s in streams}
    assert [v[0] for v in by_key[f"{dev}-heartrate"]["time_series"]] == sent_hr[1:]
    np.testing.assert_allclose(by_key[f"{dev}-ecg"]["time_series"][:, 0], sent_ecg, atol=1e-6)
    assert configs[0].timestamp > 0 and configs[0].recommended_batch_window > 0  # parsed by the SDK's pydantic model
    assert configs[-1].attention_level.value == "high", configs  # the recording holds its sensors
    assert configs[-1].recommended_batch_window == 100 and configs[-1].recommended_batch_size == 1


def test_record_waits_for_a_network_sensor_and_records_it(redis_server: RedisServer, tmp_path: Path) -> None:
    """``sensorium record --ingest … --device ws:C/S``: the client joins after the command
    starts; what it sends during the recording is in the session."""
    import os
    import subprocess
    import threading

    from conftest import sensorium

    from sensorium_desktop.recording.reader import load_recording

    port = free_port()
    out = tmp_path / "rec"
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_INGEST_TOKEN=TOKEN,
               SENSORIUM_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
    proc = subprocess.Popen(sensorium("record", "--prefix", prefix, "--ingest", f"127.0.0.1:{port}", "--device",
                                      "ws:conn-1/cli-sensor", "--duration", "6", "--out", str(out)),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sent: list[int] = []

    async def client() -> None:
        for _ in range(100):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/socket/websocket")
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with ws:
            ph = Phoenix(ws)
            topic = "sensocto:sensor:cli-sensor"
            params = sensor_params("cli-sensor", attributes=["heartrate"])  # a declared, silent ecg: exit 3
            assert (await ph.call(topic, "phx_join", params))["status"] == "ok"
            await asyncio.sleep(1.5)
            for i in range(40):
                await ph.push(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": 50 + i},
                                                     "timestamp": int(time.time() * 1000)})  # fmt: skip
                sent.append(50 + i)
                await asyncio.sleep(0.05)
            await ph.call(topic, "ping", {})

    t = threading.Thread(target=lambda: asyncio.run(client()))
    t.start()
    t.join(60)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    rec = load_recording(out)
    hr = rec.sensors["ws-cli-sensor-heartrate"]
    assert hr.values[:, 0].tolist() == sent
    assert hr.info.device_name == "Chest" and hr.info.transport == "ws"


@pytest.mark.gui
def test_window_shows_network_clients_under_their_connector(
    ingest_node: tuple[NodeThread, int], qtbot, arun, redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """The device tree: Network clients → connector name → sensor, with address, attention
    and backpressure state (screenshot: SENSORIUM_TEST_SHOT)."""
    import os
    import threading

    from test_gui_panels import make_window, pump

    _node, port = ingest_node
    joined, release = threading.Event(), threading.Event()

    async def client() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/socket/websocket") as ws:
            ph = Phoenix(ws)
            topic = "sensocto:sensor:win-sensor"
            params = sensor_params("win-sensor", attributes=["heartrate"])
            assert (await ph.call(topic, "phx_join", params))["status"] == "ok"
            for i in range(20):
                await ph.push(topic, "measurement", {"attribute_id": "heartrate", "payload": {"bpm": 60 + i},
                                                     "timestamp": int(time.time() * 1000)})  # fmt: skip
                await asyncio.sleep(0.05)
            joined.set()
            while not release.is_set():
                await ph.call("phoenix", "heartbeat", {})
                await asyncio.sleep(0.2)

    t = threading.Thread(target=lambda: asyncio.run(client()), daemon=True)
    t.start()
    try:
        assert joined.wait(20)
        window = make_window(qtbot, redis_server.url, keys, tmp_path / "settings.ini")
        time.sleep(1.2)  # the node's status write
        pump(arun, window)
        panel = window.panels["devices"]
        conn = panel._connectors["Phone A"]
        assert conn.parent().text(0) == "Network clients"
        dev = conn.child(0)
        assert dev.text(0) == "Chest" and dev.text(1).startswith("attention ") and dev.text(2) == "streaming"
        assert "from 127.0.0.1" in dev.toolTip(0)
        assert dev.child(0).text(0).startswith("heartrate")
        assert f"ingest 127.0.0.1:{port} (1 client)" in window.status_remote.text()
        assert "refused nothing" in window.status_remote.toolTip()
        panel.grab().save(os.environ.get("SENSORIUM_TEST_SHOT", "/dev/null/x.png"))
    finally:
        release.set()
        t.join(10)


def test_a_paused_client_resumes_without_losing_data(
    redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """Memory protection pauses an unwatched sensor (Sensocto's rule); the config says so at
    once, and what the client queued meanwhile (with its own timestamps) arrives whole."""
    from sensorium_desktop.core.backpressure import Attention, SystemLoad

    port = free_port()
    node = NodeThread(redis_server.url, keys, [], node_id="pause-node", attention_default=Attention.NONE,
                      component_options={"ingest": IngestOptions("127.0.0.1", port, TOKEN)}).start()  # fmt: skip
    pressure = {"memory": False}
    node.node.flow.load.assess = lambda *_a: (SystemLoad.NORMAL, pressure["memory"], 0.1)  # type: ignore[method-assign]
    wait_for(lambda: node.remote("ingest") is not None and node.remote("ingest").port, 20, message="ingest listening")
    sid = f"p{uuid.uuid4().hex[:8]}"
    topic = f"sensocto:sensor:{sid}"
    sent: list[tuple[int, int]] = []

    async def client() -> list[dict[str, Any]]:
        configs: list[dict[str, Any]] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/socket/websocket") as ws:
            ph = Phoenix(ws)
            params = sensor_params(sid, attributes=["heartrate"])
            assert (await ph.call(topic, "phx_join", params))["status"] == "ok"
            configs.append(await ph.next_push("backpressure_config"))
            queue: list[dict[str, Any]] = []
            paused = configs[-1]["paused"]
            pressure["memory"] = True  # the node comes under memory pressure
            queued_total, after_resume = 0, 0
            for i in range(600):
                m = {"attribute_id": "heartrate", "payload": {"bpm": 40 + i % 150}, "timestamp": 1_000_000 + i * 100}
                sent.append((40 + i % 150, 1_000_000 + i * 100))
                if paused:
                    queue.append(m)  # a paused client queues locally, as the protocol asks
                    queued_total += 1
                    if queued_total >= 10:
                        pressure["memory"] = False  # relieved
                else:
                    if queue:
                        await ph.push(topic, "measurements_batch", queue)
                        queue = []
                    await ph.push(topic, "measurement", m)
                    if queued_total:
                        after_resume += 1
                        if after_resume >= 10:
                            break
                with contextlib.suppress(TimeoutError):
                    configs.append(await ph.next_push("backpressure_config", timeout=0.05))
                    paused = configs[-1]["paused"]
            if queue:
                await ph.push(topic, "measurements_batch", queue)
            await ph.call(topic, "ping", {})
        return configs

    try:
        configs = run(client())
    finally:
        node.stop()
    assert [c["paused"] for c in configs][:1] == [False]
    assert any(c["paused"] and c["memory_protection_active"] for c in configs), configs
    assert configs[-1]["paused"] is False
    c = redis_server.client()
    got = SampleBatch.concat([e.batch for e in read_all(c, keys, f"ws-{sid}-heartrate")])
    pairs = sorted(zip(got.values[:, 0].astype(int).tolist(), (got.t_local * 1000).round().astype(int).tolist(),
                       strict=True))  # fmt: skip
    assert pairs == sorted(sent), "every queued measurement arrived with its own timestamp"
    assert len(sent) > 20
