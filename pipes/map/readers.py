"""One item (a file) to batches of records ``{file, line, body}``, filtered on the way.

This is the hot loop of a map job, so it is built for speed once per job:

- files are decompressed in large chunks straight through ``zlib`` / ``bz2`` /
  ``lzma`` (gzip, bz2 and xz by suffix, multi-member streams included) and a
  truncated stream is an error, never a silent short read;
- CSV rows go through the C ``csv`` module, and the loop that turns rows into
  records is generated per header (``_csv_loop``): converters per typed column
  bound once, the record built as one dict literal;
- the filter is pushed down: when it reads only some body fields
  (``RecordFilter.body_fields``) a row is tested on a reused view holding just
  those, and only rows that pass become records. The view holds exactly what
  the record would hold for those fields, so the outcome is the same. The
  outcome is remembered per field text (one pattern over body fields is
  tested field by field, ``RecordFilter.field_tests``; otherwise per
  combination of the fields' texts), so most rows cost one dict lookup.

Anything wrong with an item's content (bad compression, not the declared
encoding, a row with the wrong number of fields, a value that is not of its
column's type, invalid JSON) raises ``ItemDataError`` naming the line: the
item fails alone and is not retried, since retrying cannot help.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import io
import itertools
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import orjson

from pipes.map.errors import ItemDataError
from pipes.map.model import ItemReaderConfig
from pipes.map.stages import RecordFilter

__all__ = ["BATCH_RECORDS", "ItemDataError", "ItemReader", "ReadStats", "byte_chunks"]

#: Records handed on at a time (to the transform, the map function, the reduction).
BATCH_RECORDS = 1024
_CHUNK = 1 << 18
#: Most outcomes a pushed-down filter remembers per header (see ``_csv_loop``).
_MEMO_SIZE = 1 << 16

type Record = dict[str, Any]


@dataclass
class ReadStats:
    """Records read from one item (before the filter)."""

    records: int = 0


class _Decompressor(Protocol):
    def decompress(self, data: bytes, /) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


_FORMATS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "bz2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}
_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz"}
_DATA_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)


def compression_of(path: str, setting: str) -> str:
    if setting != "auto":
        return setting
    dot = path.rfind(".")
    return _SUFFIXES.get(path[dot:].lower(), "none") if dot >= 0 else "none"


def byte_chunks(raw: BinaryIO, compression: str) -> Iterator[bytes]:
    """The decompressed content of ``raw`` in large chunks."""
    if compression == "none":
        while chunk := raw.read(_CHUNK):
            yield chunk
        return
    make = _FORMATS[compression]
    decompressor = make()
    started = False
    while chunk := raw.read(_CHUNK):
        started = True
        while chunk:
            try:
                out = decompressor.decompress(chunk)
            except _DATA_ERRORS as exc:
                raise ItemDataError(f"not valid {compression} data: {exc}") from None
            if out:
                yield out
            if decompressor.eof:
                # The next member of a multi-member stream (gzip -c a b > ab.gz), if any.
                chunk = decompressor.unused_data
                if chunk.strip(b"\0"):
                    decompressor = make()
                else:
                    chunk = b""
            else:
                chunk = b""
    if started and not decompressor.eof:
        raise ItemDataError(f"truncated {compression} data: the file ends before its end-of-stream marker")


def _text_lines(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Lines as the csv module wants them (endings kept; ``\\n``, ``\\r\\n`` or ``\\r``), decoded.

    Decoding and cutting happen per chunk; the lines of a chunk come from a
    ``StringIO`` chained in C, so no Python code runs per line.
    """
    return itertools.chain.from_iterable(map(_lines_of, _text_chunks(chunks, encoding)))


def _lines_of(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


def _text_chunks(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Decoded text in pieces that end at a line end (but the last)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    carry = ""
    lines = 0  # line ends handed on, to say on which line undecodable bytes are
    try:
        for chunk in chunks:
            text = carry + decoder.decode(chunk)
            cut = text.rfind("\n") + 1
            carry = text[cut:]
            if cut:
                lines += text.count("\n", 0, cut)
                yield text[:cut]
        text = carry + decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        # exc.object is what the decoder was given (its few held-back bytes, then the chunk);
        # the text carried over holds no line end, so the line is the count so far plus those
        # in the undecoded bytes before the bad one.
        line = lines + bytes(exc.object[: exc.start]).count(b"\n") + 1
        raise ItemDataError(
            f"line {line}: not valid {encoding}: {exc.reason} (byte 0x{exc.object[exc.start]:02x})"
        ) from None
    if text:
        yield text


def _byte_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines split at ``\\n`` (a trailing ``\\r`` stripped), without their endings."""
    carry = b""
    for chunk in chunks:
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if carry:
        yield carry[:-1] if carry.endswith(b"\r") else carry


# ------------------------------------------------------------------------------------ converters


def _converter(name: str, kind: str) -> Callable[[str], Any]:
    if kind == "int":

        def to_int(text: str) -> Any:
            try:
                return int(text) if text else None
            except ValueError:
                raise ValueError(f"column {name!r}: {text!r} is not an int") from None

        return to_int
    if kind == "float":

        def to_float(text: str) -> Any:
            try:
                return float(text) if text else None
            except ValueError:
                raise ValueError(f"column {name!r}: {text!r} is not a float") from None

        return to_float
    if kind == "bool":
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

        def to_bool(text: str) -> Any:
            if not text:
                return None
            try:
                return truth[text.strip().lower()]
            except KeyError:
                raise ValueError(f"column {name!r}: {text!r} is not a bool (true/false/1/0/yes/no)") from None

        return to_bool
    if kind == "json":

        def to_json(text: str) -> Any:
            try:
                return orjson.loads(text) if text else None
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"column {name!r}: invalid JSON: {exc}") from None

        return to_json
    return str


# ------------------------------------------------------------------------------------ csv loop


type _Loop = Callable[..., Iterator[list[Record]]]


def _csv_loop(columns: tuple[str, ...], types: dict[str, str], flt: RecordFilter | None) -> _Loop:
    """Generates the row -> record loop for one header; see the module docstring.

    Names reach the source only as ``repr`` of ``str`` (literals) and converters
    as numbered globals, so a column name cannot inject code.
    """
    ns: dict[str, Any] = {"ItemDataError": ItemDataError, "VBODY": None}
    width = len(columns)

    def cell(i: int) -> str:
        if columns[i] in types:
            ns[f"C{i}"] = _converter(columns[i], types[columns[i]])
            return f"C{i}(row[{i}])"
        return f"row[{i}]"

    body = "{" + ", ".join(f"{columns[i]!r}: {cell(i)}" for i in range(width)) + "}"
    lines = [
        "def loop(reader, path, match, stats, size):",
        "    batch = []",
        "    n = 0",
        "    vbody = VBODY",
        "    try:",
        "        for row in reader:",
        f"            if len(row) != {width}:",
        "                if not row:",
        "                    continue",
        f"                raise ItemDataError(f'line {{reader.line_num}}: {{len(row)}} fields, expected {width}')",
        "            n += 1",
    ]
    pushdown = flt is not None and flt.body_fields is not None
    if flt is not None and pushdown:
        assert flt.body_fields is not None
        view_fields = [i for i in range(width) if columns[i] in flt.body_fields]
        test = [f"vbody[{columns[i]!r}] = {cell(i)}" for i in view_fields]
        if flt.reads_line:
            test.append("VIEW['line'] = reader.line_num")
        memo = not flt.reads_line and not flt.reads_file
        if memo and flt.field_tests is not None:
            lines += _field_test_lines(columns, types, flt, ns)
        elif memo and view_fields:
            # The outcome is a function of the view's raw texts alone: remember it per text
            # (bounded), so that a repeated combination costs one dict lookup, not a match.
            key = (
                f"row[{view_fields[0]}]"
                if len(view_fields) == 1
                else "(" + ", ".join(f"row[{i}]" for i in view_fields) + ")"
            )
            lines += [
                f"            key = {key}",
                "            ok = MEMO.get(key)",
                "            if ok is None:",
                *[f"                {line}" for line in test],
                "                ok = match(VIEW) is True",
                f"                if len(MEMO) < {_MEMO_SIZE}:",
                "                    MEMO[key] = ok",
                "            if not ok:",
                "                continue",
            ]
            ns["MEMO"] = {}
        else:
            lines += [f"            {line}" for line in test]
            lines += ["            if not match(VIEW):", "                continue"]
        ns["VBODY"] = {columns[i]: None for i in view_fields}
        ns["VIEW"] = {"file": None, "line": None, "body": ns["VBODY"]}
    lines.append(f"            record = {{'file': path, 'line': reader.line_num, 'body': {body}}}")
    if flt is not None and not pushdown:
        lines.append("            if not match(record):")
        lines.append("                continue")
    lines += [
        "            batch.append(record)",
        "            if len(batch) >= size:",
        "                stats.records = n",
        "                yield batch",
        "                batch = []",
        "    except ValueError as exc:",
        "        raise ItemDataError(f'line {reader.line_num}: {exc}') from None",
        "    except csv.Error as exc:",
        "        raise ItemDataError(f'line {reader.line_num}: {exc}') from None",
        "    stats.records = n",
        "    if batch:",
        "        yield batch",
    ]
    ns["csv"] = csv
    exec(compile("\n".join(lines), f"<csv loop {len(columns)} columns>", "exec"), ns)
    loop: _Loop = ns["loop"]
    if "VIEW" in ns:
        view = ns["VIEW"]

        def with_view(
            reader: Any, path: str, match: Any, stats: ReadStats, size: int
        ) -> Iterator[list[Record]]:
            view["file"] = path
            return loop(reader, path, match, stats, size)

        return with_view
    return loop


def _field_test_lines(
    columns: tuple[str, ...], types: dict[str, str], flt: RecordFilter, ns: dict[str, Any]
) -> list[str]:
    """Source lines testing a row field by field, each outcome remembered per field text.

    Used when the filter is one pattern over body fields (``RecordFilter.field_tests``):
    most rows are then settled by one dict lookup on their first field.
    """
    assert flt.field_tests is not None
    index = {name: i for i, name in enumerate(columns)}
    lines: list[str] = []
    for number, (name, test) in enumerate(flt.field_tests):
        if name not in index:
            # Not a column: the field is never there, so its test has one outcome for every row.
            if not test({"body": {}}):
                lines += ["            continue"]
            continue
        column = index[name]
        memo: dict[str, bool] = {}
        ns[f"M{number}"] = memo
        ns[f"T{number}"] = _remembered(name, types.get(name), test, memo)
        lines += [
            f"            ok = M{number}.get(row[{column}])",
            "            if ok is None:",
            f"                ok = T{number}(row[{column}])",
            "            if not ok:",
            "                continue",
        ]
    return lines


def _remembered(
    name: str, kind: str | None, test: Callable[[Any], bool], memo: dict[str, bool]
) -> Callable[[str], bool]:
    convert = _converter(name, kind) if kind is not None else None
    body: dict[str, Any] = {}
    view = {"body": body}

    def first_time(text: str) -> bool:
        body[name] = convert(text) if convert is not None else text
        ok = test(view) is True
        if len(memo) < _MEMO_SIZE:
            memo[text] = ok
        return ok

    return first_time


# ------------------------------------------------------------------------------------ the reader


class ItemReader:
    """Reads items in one format; built once per job in each worker.

    ``read(raw, path, stats)`` yields lists of at most ``BATCH_RECORDS`` records
    that passed the filter, and sets ``stats.records`` to the records read.
    It raises ``ItemDataError`` for bad content and ``OSError`` for I/O errors.
    """

    def __init__(self, config: ItemReaderConfig, record_filter: RecordFilter | None) -> None:
        self.config = config
        self.filter = record_filter
        self._loops: dict[tuple[str, ...], _Loop] = {}

    def read(self, raw: BinaryIO, path: str, stats: ReadStats) -> Iterator[list[Record]]:
        chunks = byte_chunks(raw, compression_of(path, self.config.compression))
        fmt = self.config.format
        if fmt == "csv":
            return self._csv(chunks, path, stats)
        if fmt == "jsonl":
            return self._filtered(self._jsonl(chunks, path, stats))
        if fmt == "json":
            return self._filtered(self._json(chunks, path, stats))
        return self._filtered(self._text(chunks, path, stats))

    def _filtered(self, batches: Iterator[list[Record]]) -> Iterator[list[Record]]:
        if self.filter is None:
            yield from batches
            return
        match = self.filter.matches
        for batch in batches:
            kept = [record for record in batch if match(record)]
            if kept:
                yield kept

    def _csv(self, chunks: Iterator[bytes], path: str, stats: ReadStats) -> Iterator[list[Record]]:
        config = self.config
        reader = csv.reader(
            _text_lines(chunks, config.encoding), delimiter=config.delimiter, quotechar=config.quotechar
        )
        columns = tuple(config.columns) if config.columns is not None else None
        if config.has_header:
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise ItemDataError(f"line 1: {exc}") from None
            if header is None:
                return
            if columns is None:
                columns = self._header(header)
        assert columns is not None
        loop = self._loops.get(columns)
        if loop is None:
            loop = self._loops[columns] = _csv_loop(columns, dict(config.types), self.filter)
        match = self.filter.matches if self.filter is not None else None
        yield from loop(reader, path, match, stats, BATCH_RECORDS)

    def _header(self, header: list[str]) -> tuple[str, ...]:
        names = tuple(name.strip() for name in header)
        seen: set[str] = set()
        for name in names:
            if not name:
                raise ItemDataError("line 1: the header has an empty column name")
            if name in seen:
                raise ItemDataError(f"line 1: the header names column {name!r} twice")
            seen.add(name)
        missing = sorted(set(self.config.types) - seen)
        if missing:
            raise ItemDataError(
                f"line 1: the header has no column {', '.join(map(repr, missing))} (see types)"
            )
        return names

    def _jsonl(self, chunks: Iterator[bytes], path: str, stats: ReadStats) -> Iterator[list[Record]]:
        loads = orjson.loads
        batch: list[Record] = []
        n = 0
        number = 0
        for number, line in enumerate(_byte_lines(chunks), start=1):
            if not line.strip():
                continue
            try:
                body = loads(line)
            except orjson.JSONDecodeError as exc:
                raise ItemDataError(f"line {number}: invalid JSON: {exc}") from None
            n += 1
            batch.append({"file": path, "line": number, "body": body})
            if len(batch) >= BATCH_RECORDS:
                stats.records = n
                yield batch
                batch = []
        stats.records = n
        if batch:
            yield batch

    def _json(self, chunks: Iterator[bytes], path: str, stats: ReadStats) -> Iterator[list[Record]]:
        data = b"".join(chunks)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ItemDataError(f"invalid JSON: {exc}") from None
        values = value if isinstance(value, list) else [value]
        stats.records = len(values)
        for start in range(0, len(values), BATCH_RECORDS):
            chunk = values[start : start + BATCH_RECORDS]
            yield [{"file": path, "line": start + i + 1, "body": body} for i, body in enumerate(chunk)]

    def _text(self, chunks: Iterator[bytes], path: str, stats: ReadStats) -> Iterator[list[Record]]:
        encoding = self.config.encoding
        batch: list[Record] = []
        n = 0
        for n, line in enumerate(_byte_lines(chunks), start=1):
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ItemDataError(f"line {n}: not valid {encoding}: {exc.reason}") from None
            batch.append({"file": path, "line": n, "body": text})
            if len(batch) >= BATCH_RECORDS:
                stats.records = n
                yield batch
                batch = []
        stats.records = n
        if batch:
            yield batch
