"""Which files a run maps over, and how they are cut into tasks.

The item list is fixed when a run starts (globs and manifests are read once,
sorted) and kept with the run's state, so a resumed run works on exactly the
items it began with and an item's *index* names it everywhere (tasks,
checkpoints, ``first``/``last`` order). Local paths need nothing; a path with
``://`` goes through fsspec, so ``s3://...`` works once its backend (s3fs) is
installed.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from pipes.errors import ConfigError
from pipes.map.model import ItemBatcherConfig, ItemsConfig

__all__ = ["DEFAULT_MAX_BYTES", "Item", "ItemsError", "batch_items", "is_url", "list_items", "open_item"]

#: A task holds at most this much (as stored) unless ``item_batcher.max_bytes`` says otherwise.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Without ``item_batcher.max_items``: at most this many items per task ...
DEFAULT_MAX_ITEMS = 100
#: ... and at least this many tasks per worker, so that a slow file cannot idle the others.
TASKS_PER_WORKER = 8
_WILDCARDS = frozenset("*?[")


class ItemsError(ConfigError):
    """The items cannot be listed (a manifest is missing, nothing matches): one line."""


@dataclass(frozen=True, slots=True)
class Item:
    """One file of the run: its number in the sorted item list, its path as listed, its size as stored."""

    index: int
    path: str
    size: int


def is_url(path: str) -> bool:
    return "://" in path


def list_items(config: ItemsConfig, cwd: str) -> list[Item]:
    """Every file the globs and the manifest name, deduplicated, in path order."""
    found: dict[str, int] = {}
    for pattern in config.paths:
        matched = _glob_url(pattern) if is_url(pattern) else _glob_local(pattern, cwd)
        if not matched:
            raise ItemsError(f"items: {pattern} matches no file")
        found.update(matched)
    if config.manifest is not None:
        found.update(_manifest(config.manifest, cwd))
    if not found:
        raise ItemsError("items: the manifest lists no file")
    return [Item(i, path, found[path]) for i, path in enumerate(sorted(found))]


def _glob_local(pattern: str, cwd: str) -> dict[str, int]:
    if not _WILDCARDS & set(pattern):
        full = os.path.join(cwd, pattern)
        if not os.path.isfile(full):
            raise ItemsError(f"items: {pattern}: no such file")
        return {pattern: os.path.getsize(full)}
    out: dict[str, int] = {}
    for path in glob.glob(pattern, root_dir=cwd, recursive=True):
        full = os.path.join(cwd, path)
        if os.path.isfile(full):
            out[path if os.path.isabs(pattern) else os.path.normpath(path)] = os.path.getsize(full)
    return out


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency; a broken install says so
        raise ItemsError("items: URLs need fsspec (pip install fsspec)") from None
    return fsspec


def _glob_url(pattern: str) -> dict[str, int]:
    fsspec = _fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(pattern)
        infos = fs.glob(path, detail=True) if _WILDCARDS & set(path) else {path: fs.info(path)}
    except (ImportError, ValueError) as exc:
        raise ItemsError(f"items: {pattern}: {exc} (install the fsspec backend for this URL)") from None
    except OSError as exc:
        raise ItemsError(f"items: {pattern}: {exc}") from None
    return {
        fs.unstrip_protocol(name): int(info.get("size") or 0)
        for name, info in infos.items()
        if info.get("type", "file") == "file"
    }


def _manifest(manifest: str, cwd: str) -> dict[str, int]:
    try:
        with open_item(manifest, cwd) as handle:
            data = handle.read()
    except OSError as exc:
        raise ItemsError(f"items.manifest: cannot read {manifest}: {exc.strerror or exc}") from None
    out: dict[str, int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        path = _manifest_entry(line, manifest, number)
        out[path] = _size(path, cwd)
    return out


def _manifest_entry(line: bytes, manifest: str, number: int) -> str:
    if line[:1] not in (b"{", b'"'):
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise ItemsError(f"{manifest}:{number}:1: not UTF-8 text") from None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ItemsError(f"{manifest}:{number}:1: invalid JSON: {exc}") from None
    if isinstance(value, dict):
        value = value.get("path")
    if not isinstance(value, str) or not value:
        raise ItemsError(f'{manifest}:{number}:1: expected a path: "text" or {{"path": "text"}}')
    return value


def _size(path: str, cwd: str) -> int:
    if is_url(path):
        return 0  # unknown until read; a remote stat per item would cost a round trip each
    try:
        return os.path.getsize(os.path.join(cwd, path))
    except OSError:
        return 0  # listed but absent: the item fails when read, with its error


def open_item(path: str, cwd: str) -> BinaryIO:
    """The raw (still compressed) bytes of an item, as a binary file object."""
    if is_url(path):
        fsspec = _fsspec()
        try:
            handle: BinaryIO = fsspec.open(path, "rb").open()
        except (ImportError, ValueError) as exc:
            raise OSError(f"{exc} (install the fsspec backend for this URL)") from None
        return handle
    return open(os.path.join(cwd, path), "rb")


def batch_items(items: Iterable[Item], config: ItemBatcherConfig, workers: int) -> Iterator[list[Item]]:
    """Items cut into tasks of at most ``max_items`` and ``max_bytes``, in item order.

    Without ``max_items``, a task takes enough items for about ``TASKS_PER_WORKER``
    tasks per worker, and never more than ``DEFAULT_MAX_ITEMS``: enough tasks
    that dynamic hand-out balances the load, few enough that 500,000 files do
    not become 500,000 tasks.
    """
    listed = list(items)
    max_items = config.max_items or max(
        1, min(DEFAULT_MAX_ITEMS, math.ceil(len(listed) / (max(1, workers) * TASKS_PER_WORKER)))
    )
    max_bytes = int(config.max_bytes) if config.max_bytes is not None else DEFAULT_MAX_BYTES
    batch: list[Item] = []
    size = 0
    for item in listed:
        if batch and (len(batch) >= max_items or size + item.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch
