"""Vendor the console's front-end packages from the npm registry, at pinned versions.

Run it (with network access to the npm registry) after changing a version
below; it replaces ``pipes/console/static/vendor/`` and writes ``VENDOR.json``,
the manifest ``tests/unit/test_console_vendor.py`` checks the files against.
Nothing is built: the files are the packages' own browser builds, unchanged,
with their licence files beside them.

    python scripts/vendor_console.py
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "pipes" / "console" / "static" / "vendor"

#: npm package, version, folder under vendor/, and the files taken (paths in the package, "dir/" for a tree).
PACKAGES = [
    ("preact", "11.2.0", "preact", ["LICENSE", "dist/preact.mjs", "hooks/dist/hooks.mjs"]),
    ("htm", "3.1.1", "htm", ["LICENSE", "dist/htm.mjs"]),
    ("@dagrejs/dagre", "3.1.3", "dagre", ["LICENSE", "dist/dagre.esm.js"]),
    ("yaml", "2.9.1", "yaml", ["LICENSE", "browser/dist/"]),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    VENDOR.mkdir(parents=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, folder, wanted in PACKAGES:
            out = subprocess.run(
                ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", tmp],
                check=True,
                capture_output=True,
                text=True,
            )
            info = json.loads(out.stdout)[0]
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                tar.extractall(Path(tmp) / folder, filter="data")
            package = Path(tmp) / folder / "package"
            files: dict[str, str] = {}
            for item in wanted:
                source = package / item
                sources = (
                    sorted(p for p in source.rglob("*") if p.is_file()) if item.endswith("/") else [source]
                )
                for path in sources:
                    relative = path.relative_to(package)
                    dest = VENDOR / folder / relative
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, dest)
                    files[str(relative)] = sha256(dest)
            manifest.append(
                {
                    "package": name,
                    "version": version,
                    "folder": folder,
                    "license": json.loads((package / "package.json").read_text())["license"],
                    "integrity": info["integrity"],
                    "files": files,
                }
            )
    (VENDOR / "VENDOR.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"vendored {len(manifest)} packages into {VENDOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
