"""The console's vendored front-end libraries are the registry's files, unchanged, with their licences.

scripts/vendor_console.py fetches them at the pinned versions and writes the
manifest; this test fails when a file was edited by hand, added, or removed,
or when the script's pins and the manifest disagree (run the script again).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from pipes.console.routes import STATIC

ROOT = Path(__file__).resolve().parents[2]
VENDOR = STATIC / "vendor"


def manifest() -> list[dict]:  # type: ignore[type-arg]
    return json.loads((VENDOR / "VENDOR.json").read_text())  # type: ignore[no-any-return]


def test_every_vendored_file_is_as_the_registry_shipped_it_and_nothing_else_is_there() -> None:
    listed = set()
    for package in manifest():
        folder = VENDOR / package["folder"]
        assert (folder / "LICENSE").is_file(), package["package"]
        assert package["license"] and package["integrity"].startswith("sha512-")
        for relative, digest in package["files"].items():
            path = folder / relative
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} was changed"
            listed.add(path)
    present = {p for p in VENDOR.rglob("*") if p.is_file() and p.name != "VENDOR.json"}
    assert present == listed


def test_the_pins_of_the_vendoring_script_are_what_is_vendored() -> None:
    spec = importlib.util.spec_from_file_location("vendor_console", ROOT / "scripts" / "vendor_console.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    pinned = {(name, version, folder) for name, version, folder, _ in script.PACKAGES}
    assert pinned == {(p["package"], p["version"], p["folder"]) for p in manifest()}
