"""Items (globs, manifests, fsspec URLs, batching), a task in a worker, and the run state on disk."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from pipes.map.items import Item, ItemsError, batch_items, list_items
from pipes.map.model import ItemBatcherConfig, ItemsConfig, MapConfig
from pipes.map.reduce import DistinctSketch, Partial
from pipes.map.state import Failure, RunState, StateError, StateStore
from pipes.map.worker import JobSpec, Task, run_task


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, size in [("a/1.csv", 10), ("a/b/2.csv", 20), ("a/b/3.txt", 5), ("c/4.csv", 30)]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return tmp_path


def paths(items: list[Item]) -> list[tuple[int, str, int]]:
    return [(i.index, i.path, i.size) for i in items]


def test_globs_recurse_dedupe_and_sort(tree: Path) -> None:
    items = list_items(ItemsConfig.model_validate(["**/*.csv", "a/*.csv"]), str(tree))
    assert paths(items) == [(0, "a/1.csv", 10), (1, "a/b/2.csv", 20), (2, "c/4.csv", 30)]


def test_a_glob_matching_nothing_or_a_missing_file_is_an_error(tree: Path) -> None:
    with pytest.raises(ItemsError, match=r"^items: \*\*/\*.parquet matches no file$"):
        list_items(ItemsConfig.model_validate("**/*.parquet"), str(tree))
    with pytest.raises(ItemsError, match=r"^items: a/9.csv: no such file$"):
        list_items(ItemsConfig.model_validate("a/9.csv"), str(tree))


def test_manifests_of_text_and_json_lines(tree: Path) -> None:
    (tree / "list.txt").write_text("a/1.csv\n\nc/4.csv\n")
    (tree / "list.jsonl").write_text('"a/b/2.csv"\n{"path": "a/b/3.txt"}\n{"path": "gone.csv"}\n')
    text = list_items(ItemsConfig(manifest="list.txt"), str(tree))
    assert paths(text) == [(0, "a/1.csv", 10), (1, "c/4.csv", 30)]
    jsonl = list_items(ItemsConfig(manifest="list.jsonl"), str(tree))
    assert paths(jsonl) == [(0, "a/b/2.csv", 20), (1, "a/b/3.txt", 5), (2, "gone.csv", 0)]
    (tree / "bad.jsonl").write_text('{"path": 3}\n')
    with pytest.raises(ItemsError, match=r'^bad.jsonl:1:1: expected a path: "text" or \{"path": "text"\}$'):
        list_items(ItemsConfig(manifest="bad.jsonl"), str(tree))
    with pytest.raises(
        ItemsError, match=r"^items.manifest: cannot read nope.txt: No such file or directory$"
    ):
        list_items(ItemsConfig(manifest="nope.txt"), str(tree))


def test_fsspec_urls_list_items_with_their_sizes(tree: Path) -> None:
    items = list_items(ItemsConfig.model_validate(f"file://{tree}/a/**/*.csv"), str(tree))
    assert paths(items) == [(0, f"file://{tree}/a/1.csv", 10), (1, f"file://{tree}/a/b/2.csv", 20)]


@pytest.fixture
def backend_not_installed(monkeypatch: pytest.MonkeyPatch) -> str:
    """A URL scheme fsspec knows of, whose backend package is not installed (as s3:// without s3fs)."""
    registry = sys.modules["fsspec.registry"]
    monkeypatch.setitem(
        registry.known_implementations,
        "nobackend",
        {"class": "no_such_backend_package.FileSystem", "err": "Install no-such-backend to access nobackend"},
    )
    return "nobackend"


def test_a_url_whose_backend_is_not_installed_says_what_to_install(backend_not_installed: str) -> None:
    url = f"{backend_not_installed}://bucket/data/*.csv"
    message = (
        f"items: {url}: Install no-such-backend to access nobackend (install the fsspec backend for this URL)"
    )
    with pytest.raises(ItemsError) as caught:
        list_items(ItemsConfig.model_validate(url), "/")
    assert str(caught.value) == message


def test_url_items_are_read_through_fsspec_and_a_missing_backend_fails_the_item_at_once(
    tmp_path: Path, backend_not_installed: str
) -> None:
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"id,v\n1,2\n3,4\n"))
    config = MapConfig.model_validate(
        {
            "items": "*.csv.gz",
            "item_reader": {"format": "csv", "types": {"v": "int"}},
            "reduce": {"aggregations": {"s": {"sum": "body.v"}, "f": {"first": "file"}}},
        }
    )
    spec = JobSpec(config.model_dump_json(), "/")
    url = f"file://{tmp_path}/t.csv.gz"
    items = (Item(0, url, 1), Item(1, f"{backend_not_installed}://bucket/t.csv.gz", 1))
    result = run_task(spec, Task(1, items))
    assert result.done == [0]
    assert [(f.index, f.error, f.retryable) for f in result.failed] == [
        (
            1,
            "OSError: Install no-such-backend to access nobackend (install the fsspec backend for this URL)",
            False,
        )
    ]
    from pipes.map.worker import compile_job

    assert compile_job(config, "/").reduction.results(result.partial) == [{"s": 6, "f": url}]


def test_batches_by_items_and_bytes() -> None:
    items = [Item(i, f"{i}", size) for i, size in enumerate([10, 10, 10, 50, 10, 100, 1])]

    def cut(batcher: ItemBatcherConfig, workers: int = 2) -> list[list[int]]:
        return [[i.index for i in batch] for batch in batch_items(items, batcher, workers)]

    assert cut(ItemBatcherConfig(max_items=3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert cut(ItemBatcherConfig.model_validate({"max_items": 10, "max_bytes": 60})) == [
        [0, 1, 2],
        [3, 4],
        [5],
        [6],
    ]
    assert cut(ItemBatcherConfig()) == [[i] for i in range(7)]  # few items: one each, to spread them
    many = [Item(i, f"{i}", 1) for i in range(10_000)]
    assert [len(b) for b in batch_items(many, ItemBatcherConfig(), 2)][:2] == [100, 100]


def test_an_item_failing_half_way_contributes_nothing(tmp_path: Path) -> None:
    good = "id,v\n" + "".join(f"{i},{i}\n" for i in range(100))
    (tmp_path / "good.csv.gz").write_bytes(gzip.compress(good.encode()))
    (tmp_path / "bad.csv.gz").write_bytes(gzip.compress((good + "x,not-a-number\n").encode()))
    config = MapConfig.model_validate(
        {
            "items": "*.csv.gz",
            "item_reader": {"format": "csv", "types": {"v": "int"}},
            "reduce": {"aggregations": {"n": "count", "s": {"sum": "body.v"}}},
        }
    )
    spec = JobSpec(config.model_dump_json(), str(tmp_path))
    items = (Item(0, "bad.csv.gz", 1), Item(1, "good.csv.gz", 1), Item(2, "missing.csv.gz", 0))
    result = run_task(spec, Task(7, items))
    assert result.task_id == 7
    assert result.done == [1]
    assert [(f.index, f.error, f.retryable) for f in result.failed] == [
        (0, "line 102: column 'v': 'not-a-number' is not an int", False),
        (2, f"No such file or directory: {tmp_path / 'missing.csv.gz'}", True),
    ]
    assert (result.records, result.passed, result.mapped) == (100, 100, 100)
    from pipes.map.worker import compile_job

    reduction = compile_job(config, str(tmp_path)).reduction
    assert reduction.results(result.partial) == [{"n": 100, "s": sum(range(100))}]


def test_state_round_trips_and_keeps_done_and_partial_together(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "m")
    sketch = DistinctSketch()
    sketch.add("x")
    items = [Item(i, f"f{i}", i) for i in range(10)]
    state = RunState.new("m", "fp", items, Partial([{"k": [3, sketch]}]))
    state.done = {0, 1, 2, 5, 7, 8}
    state.failed = {4: Failure("bad", 3)}
    store.save_items(state)
    store.save(state)
    loaded = store.load()
    assert loaded is not None
    assert loaded.done == state.done
    assert loaded.failed == state.failed
    assert loaded.items == items
    assert [i.index for i in loaded.pending()] == [3, 6, 9]
    assert loaded.partial.groups[0]["k"][1].estimate() == 1


def test_one_run_at_a_time_and_a_foreign_state_is_refused(tmp_path: Path) -> None:
    first, second = StateStore(tmp_path / "m"), StateStore(tmp_path / "m")
    first.lock()
    with pytest.raises(StateError, match="another pipes map is running"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()
    (tmp_path / "m" / "state.pickle").write_bytes(b"not a pickle")
    with pytest.raises(StateError, match="use --restart to start over"):
        first.load()
