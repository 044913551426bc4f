"""Redis Cluster readiness (issue 21): every key of a lab hashes to one slot (the prefix is a
hash tag), and every Lua script declares the keys it touches in KEYS."""

from __future__ import annotations

import inspect
import re

import pytest

from sensorium_desktop.bus import election, publisher, seed_import
from sensorium_desktop.bus.keys import Keys


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (CRC16 of its hash tag, as CLUSTER KEYSLOT computes it)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % 16384


def every_key(keys: Keys) -> list[str]:
    out = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append(getattr(keys, name))
        elif callable(member):
            out.append(getattr(keys, name)("some-id"))
    return out


def test_crc16_matches_redis() -> None:
    assert key_slot("foo") == 12182 and key_slot("{user1000}.following") == key_slot("{user1000}.followers")


@pytest.mark.parametrize("prefix", ["sensorium", "lab2-demo"])
def test_every_key_of_a_lab_is_in_one_slot(prefix: str) -> None:
    keys = Keys(prefix)
    all_keys = every_key(keys)
    assert len(all_keys) > 30
    assert {key_slot(k) for k in all_keys} == {key_slot(keys.sensors)}
    assert keys.stream("ecg").startswith("{" + prefix + "}:")
    assert key_slot(Keys("other-lab").sensors) != key_slot(keys.sensors)  # labs spread over the cluster


SCRIPTS = {
    "CLAIM_SCRIPT": election.CLAIM_SCRIPT,
    "FENCED_EXEC": election.FENCED_EXEC,
    "APPEND_SCRIPT": publisher.APPEND_SCRIPT,
    "_IMPORT_ONCE": seed_import._IMPORT_ONCE,
}
CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*(?:,\s*([^,)]+))?")


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_lua_scripts_touch_only_declared_keys(name: str) -> None:
    script = SCRIPTS[name]
    for line in script.splitlines():
        for m in CALL.finditer(line):
            if m.group(2) and m.group(2).startswith("unpack("):
                continue  # checked below: the table's key slot
            assert m.group(2) and m.group(2).strip().startswith("KEYS["), f"{name}: {line.strip()}"
        unpacked = re.search(r"redis\.p?call\((?:'\w+',\s*)?unpack\((\w+)\)", line)
        if unpacked:  # the command (and its key) come from a table the script builds
            table = unpacked.group(1)
            built = re.search(rf"local {table} = \{{([^,}}]+)(?:,\s*([^,}}]+))?", script)
            assert built, f"{name}: {table} is not built in the script"
            first_key = built.group(1) if name != "FENCED_EXEC" else built.group(2)
            assert first_key.strip().startswith("KEYS["), f"{name}: {table} starts with {first_key}"
