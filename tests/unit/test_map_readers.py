"""Item readers: formats, transparent decompression, located data errors, and an exact filter push-down."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import Any

import orjson
import pytest

import pipes.map.readers as readers
from pipes.map.errors import ItemDataError
from pipes.map.model import ItemReaderConfig
from pipes.map.readers import ItemReader, ReadStats
from pipes.map.stages import compile_filter
from pipes.models import FilterConfig

CSV = b'id,name,score,ok\n1,ada,9.5,true\n2,bob,,false\n3,"c, d",7,yes\n'
COMPRESS = {
    "x.csv": lambda b: b,
    "x.csv.gz": gzip.compress,
    "x.csv.bz2": bz2.compress,
    "x.csv.xz": lzma.compress,
}


def read(data: bytes, path: str = "x.csv", flt: dict[str, Any] | None = None, **options: Any) -> list[Any]:
    config = ItemReaderConfig.model_validate({"format": "csv", **options})
    record_filter = compile_filter(FilterConfig.model_validate(flt)) if flt is not None else None
    reader = ItemReader(config, record_filter)
    stats = ReadStats()
    records = [r for batch in reader.read(io.BytesIO(data), path, stats) for r in batch]
    return [records, stats.records]


@pytest.mark.parametrize("path", list(COMPRESS))
def test_csv_with_a_header_and_types_through_every_compression(path: str) -> None:
    records, count = read(COMPRESS[path](CSV), path, types={"id": "int", "score": "float", "ok": "bool"})
    assert count == 3
    assert records == [
        {"file": path, "line": 2, "body": {"id": 1, "name": "ada", "score": 9.5, "ok": True}},
        {"file": path, "line": 3, "body": {"id": 2, "name": "bob", "score": None, "ok": False}},
        {"file": path, "line": 4, "body": {"id": 3, "name": "c, d", "score": 7.0, "ok": True}},
    ]


def test_given_columns_a_delimiter_and_a_quoted_newline_keep_line_numbers() -> None:
    data = b'a;"two\nlines"\nb;plain\n\n'
    [records, count] = read(data, columns=["k", "v"], delimiter=";")
    assert count == 2
    assert [(r["line"], r["body"]) for r in records] == [
        (2, {"k": "a", "v": "two\nlines"}),
        (3, {"k": "b", "v": "plain"}),
    ]


def test_multi_member_gzip_is_read_whole() -> None:
    data = gzip.compress(b"id\n1\n") + gzip.compress(b"2\n3\n")
    [records, _] = read(data, "m.csv.gz")
    assert [r["body"]["id"] for r in records] == ["1", "2", "3"]


def test_chunk_boundaries_inside_lines_and_crlf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_CHUNK", 3)
    data = b"id,text\r\n" + b"".join(f"{i},v\u00e9{i}\r\n".encode() for i in range(50))
    [records, count] = read(gzip.compress(data), "c.csv.gz")
    assert count == 50
    assert [r["body"]["text"] for r in records] == [f"v\u00e9{i}" for i in range(50)]


def test_undecodable_text_names_its_line_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_CHUNK", 5)  # the bad byte arrives many chunks and lines in
    data = b"id,text\n" + "".join(f"{i},\u00e9t\u00e9\n" for i in range(40)).encode() + b"40,\xe9t\xe9\n"
    with pytest.raises(ItemDataError, match=r"^line 42: not valid utf-8: invalid continuation byte"):
        read(gzip.compress(data), "u.csv.gz")


@pytest.mark.parametrize(
    ("data", "path", "options", "message"),
    [
        (gzip.compress(CSV * 50)[:-30], "t.csv.gz", {}, "truncated gzip data"),
        (b"not gzip at all", "t.csv.gz", {}, "not valid gzip data"),
        (b"not bz2", "t.csv.bz2", {}, "not valid bz2 data"),
        (b"id,name\n1,\xff\xfe\n", "t.csv", {}, "line 2: not valid utf-8: invalid start byte (byte 0xff)"),
        (b"id,name\n1,a\n2,\xe9\n", "t.csv", {}, "line 3: not valid utf-8: invalid continuation byte"),
        (b"id,name\n1,a\n2\n", "t.csv", {}, "line 3: 1 fields, expected 2"),
        (b"id,n\n1,2\nx,3\n", "t.csv", {"types": {"id": "int"}}, "line 3: column 'id': 'x' is not an int"),
        (b"a,b\n1,2\n", "t.csv", {"types": {"c": "int"}}, "line 1: the header has no column 'c' (see types)"),
        (b"a,a\n1,2\n", "t.csv", {}, "line 1: the header names column 'a' twice"),
    ],
)
def test_bad_content_is_an_item_data_error_saying_where(
    data: bytes, path: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ItemDataError) as caught:
        read(data, path, **options)
    assert str(caught.value).startswith(message)


FILTERS: list[dict[str, Any]] = [
    {"patterns": [{"body": {"element": ["TMAX"]}}]},
    {"patterns": [{"body": {"element": ["TMAX"], "value": [{"numeric": [">", 100]}]}}]},
    {"patterns": [{"body": {"q": [{"exists": False}]}}]},
    {"patterns": [{"body": {"q": [""]}}, {"body": {"element": [{"anything-but": ["PRCP"]}]}}]},
    {"patterns": [{"$or": [{"body": {"element": ["TMIN"]}}, {"line": [{"numeric": ["<", 5]}]}]}]},
    {"patterns": [{"file": [{"suffix": ".csv"}]}]},
    {"patterns": [{"body": {"element": ["TMAX"], "nosuch": [{"exists": False}]}}]},
    {"patterns": [{"body": {"element": ["TMAX"], "nosuch": ["x"]}}]},
    {"patterns": ['{"body": {"value": [{"numeric": [">=", 100, "<", 200]}], "q": [""]}}']},
    {"patterns": [{"body": ["x"]}]},
    {"jmespath": "body.value > `150` && starts_with(body.date, '2023')"},
    {"jmespath": "line > `10`"},
    {"jmespath": "length(keys(body)) > `3`"},
    {"patterns": [{"body": {"element": ["TMAX"]}}], "jmespath": "body.value < `200`"},
]


@pytest.mark.parametrize("flt", FILTERS)
def test_the_pushed_down_filter_keeps_exactly_what_the_full_filter_keeps(flt: dict[str, Any]) -> None:
    rows = [
        f"S{i % 3},2023{i % 12 + 1:02d}01,{('TMAX', 'TMIN', 'PRCP')[i % 3]},{i * 7 % 300},{'' if i % 5 else 'X'}"
        for i in range(60)
    ]
    data = ("\n".join(rows) + "\n").encode()
    options = {"columns": ["station", "date", "element", "value", "q"], "types": {"value": "int"}}
    [everything, _] = read(data, **options)
    full = compile_filter(FilterConfig.model_validate(flt))
    [kept, count] = read(data, flt=flt, **options)
    assert count == 60
    assert kept == [r for r in everything if full.matches(r)]


def test_which_fields_a_filter_reads() -> None:
    def fields(flt: dict[str, Any]) -> tuple[Any, bool]:
        compiled = compile_filter(FilterConfig.model_validate(flt))
        return (
            sorted(compiled.body_fields) if compiled.body_fields is not None else None,
            compiled.reads_line,
        )

    assert fields(FILTERS[1]) == (["element", "value"], False)
    assert fields(FILTERS[4]) == (["element"], True)
    assert fields(FILTERS[9]) == (None, False)  # a pattern on the body's own value
    assert fields(FILTERS[10]) == (["date", "value"], False)
    assert fields(FILTERS[12]) == (None, False)  # keys(body) sees the whole body
    tests = compile_filter(FilterConfig.model_validate(FILTERS[1])).field_tests
    assert tests is not None and [name for name, _ in tests] == ["element", "value"]
    assert compile_filter(FilterConfig.model_validate(FILTERS[3])).field_tests is None  # two patterns


def reader_for(fmt: str, flt: dict[str, Any] | None = None, **options: Any) -> ItemReader:
    config = ItemReaderConfig.model_validate({"format": fmt, **options})
    return ItemReader(config, compile_filter(FilterConfig.model_validate(flt)) if flt else None)


def records_of(reader: ItemReader, data: bytes, path: str) -> tuple[list[Any], int]:
    stats = ReadStats()
    out = [r for batch in reader.read(io.BytesIO(data), path, stats) for r in batch]
    return out, stats.records


def test_json_lines_skip_blank_lines_and_filter() -> None:
    data = b'{"n": 1}\r\n\n{"n": 2}\n{"n": 3}'
    records, count = records_of(
        reader_for("jsonl", {"patterns": [{"body": {"n": [{"numeric": [">", 1]}]}}]}), data, "a.jsonl"
    )
    assert count == 3
    assert records == [
        {"file": "a.jsonl", "line": 3, "body": {"n": 2}},
        {"file": "a.jsonl", "line": 4, "body": {"n": 3}},
    ]
    with pytest.raises(ItemDataError, match=r"^line 2: invalid JSON"):
        records_of(reader_for("jsonl"), b'{"n": 1}\n{oops\n', "b.jsonl")


def test_json_files_are_one_record_or_an_array_of_records() -> None:
    records, count = records_of(reader_for("json"), orjson.dumps([{"a": 1}, {"a": 2}]), "x.json")
    assert count == 2
    assert [r["line"] for r in records] == [1, 2]
    records, count = records_of(reader_for("json"), gzip.compress(b'{"a": 1}'), "x.json.gz")
    assert (records, count) == ([{"file": "x.json.gz", "line": 1, "body": {"a": 1}}], 1)


def test_text_lines_are_records() -> None:
    records, count = records_of(reader_for("text"), b"one\r\ntwo\n\nfour", "t.txt")
    assert count == 4
    assert [r["body"] for r in records] == ["one", "two", "", "four"]
    with pytest.raises(ItemDataError, match=r"^line 2: not valid utf-8"):
        records_of(reader_for("text"), b"ok\n\xff\n", "t.txt")
