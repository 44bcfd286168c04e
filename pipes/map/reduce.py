"""The reduce side: values into groups into partial reductions, combined associatively.

A ``Partial`` is plain data (picklable, for checkpoints and for sending from
a worker); a ``Reduction`` built once per job knows how to add values to a
partial, merge two partials and turn one into result records. Because
``merge`` is associative and commutative, a worker reduces every item locally
and sends only its partial, the job merges partials in whatever order tasks
finish, and every executor gives the same result.

Built-in aggregations skip nulls (``count`` counts the values whose expression
is not null; ``count: "@"`` counts all). ``first`` and ``last`` follow item
order (the sorted item list), then the order of values within an item, so they
do not depend on which worker finished first. ``distinct_count`` is a
HyperLogLog sketch (Apache DataSketches, ``lg_k`` 12: exact up to a few
hundred distinct values, about 1.6% standard error beyond).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pipes.map.errors import ItemDataError
from pipes.map.model import ReduceConfig
from pipes.map.stages import Getter, compile_getter, compile_value, load_function

__all__ = ["DistinctSketch", "Partial", "Reduction", "build_reduction"]

_NUMBER: Final = (int, float)
_dumps = orjson.dumps


@dataclass
class Partial:
    """Per grouping set, frozen group key -> accumulator. Picklable plain data."""

    groups: list[dict[Any, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(g) for g in self.groups)


class DistinctSketch:
    """A HyperLogLog sketch that pickles as its compact bytes."""

    LG_K: Final = 12
    __slots__ = ("_sketch",)

    def __init__(self) -> None:
        from datasketches import hll_sketch

        self._sketch = hll_sketch(self.LG_K)

    def add(self, value: Any) -> None:
        if type(value) is bool or not isinstance(value, str | int | float):
            value = _dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        self._sketch.update(value)

    def merge(self, other: DistinctSketch) -> DistinctSketch:
        """A new sketch of both (neither is changed, so that a merge that fails half way changes nothing)."""
        from datasketches import hll_union, tgt_hll_type

        union = hll_union(self.LG_K)
        union.update(self._sketch)
        union.update(other._sketch)
        merged = DistinctSketch.__new__(DistinctSketch)
        merged._sketch = union.get_result(tgt_hll_type.HLL_4)
        return merged

    def estimate(self) -> int:
        estimate: float = self._sketch.get_estimate()
        return round(estimate)

    def __getstate__(self) -> bytes:
        data: bytes = self._sketch.serialize_compact()
        return data

    def __setstate__(self, state: bytes) -> None:
        from datasketches import hll_sketch

        self._sketch = hll_sketch.deserialize(state)


def build_reduction(config: ReduceConfig, cwd: str | None = None) -> Reduction:
    """Compiles the reduce config; raises ``StageError`` / ``ValueError`` like the other stages."""
    keys: list[Getter] = [_constant_none]
    if config.group_by is not None:
        keys = [compile_value(key, ("group_by", i)) for i, key in enumerate(config.group_by)]
    if config.function is not None:
        return FunctionReduction(config, keys, cwd)
    return BuiltinReduction(config, keys)


def _constant_none(value: Any) -> None:
    return None


def _freeze(key: Any) -> Any:
    """A group key as a dict key: text as is, anything else as its JSON bytes."""
    if type(key) is str:
        return key
    try:
        return _dumps(key)
    except TypeError as exc:
        raise ItemDataError(f"group_by: the key {key!r} is not JSON data: {exc}") from None


def _thaw(key: Any) -> Any:
    return orjson.loads(key) if isinstance(key, bytes) else key


def _sort_key(value: Any) -> tuple[Any, ...]:
    """Natural order across JSON types: null, bools, numbers, text, then the rest by their JSON."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, dict):
        return (4, tuple(_sort_key(v) for v in value.values()))
    if isinstance(value, list):
        return (5, tuple(_sort_key(v) for v in value))
    return (6, _dumps(value, default=str))


class Reduction(ABC):
    """Adds values to partials, merges partials, finishes them into result records."""

    #: Result fields the reduction itself adds (after the key fields), where known in advance.
    value_fields: list[str]

    def __init__(self, keys: list[Getter]) -> None:
        self.keys = keys
        self.grouped = keys[0] is not _constant_none
        self.value_fields = []

    def new(self) -> Partial:
        return Partial([{} for _ in self.keys])

    @abstractmethod
    def add(self, partial: Partial, values: Sequence[Any], item: int, seq: int) -> int:
        """Adds ``values`` (the ``seq``-th onwards of item ``item``); returns the next ``seq``.

        Raises ``ItemDataError`` for a value that cannot be aggregated.
        """

    @abstractmethod
    def merge(self, into: Partial, other: Partial) -> None:
        """Adds ``other`` into ``into`` (``other`` must not be used afterwards).

        All or nothing: when two states cannot be merged (``min`` of a number and
        a text, a reduce function that raises) it raises and leaves ``into`` as
        it was, so the item or task whose partial it was can fail alone.
        """

    def seal(self, partial: Partial) -> None:  # noqa: B027 - only buffering reductions need it
        """Finishes buffered work, before a partial is sent or saved."""

    @abstractmethod
    def finish(self, accumulator: Any) -> dict[str, Any]:
        """The result fields of one group."""

    def results(self, partial: Partial) -> list[dict[str, Any]]:
        """Result records: per grouping set, per group in key order, key fields then results."""
        self.seal(partial)
        out: list[dict[str, Any]] = []
        for groups in partial.groups:
            rows = [(_thaw(key), acc) for key, acc in groups.items()]
            try:
                rows.sort(key=lambda row: _sort_key(row[0]))
            except TypeError:
                rows.sort(key=lambda row: _dumps(row[0], default=str))
            for key, acc in rows:
                record: dict[str, Any] = {}
                if self.grouped:
                    record.update(key if isinstance(key, dict) else {"key": key})
                record.update(self.finish(acc))
                out.append(record)
        return out


# ------------------------------------------------------------------------------------ built-in


def _count(s: Any, v: Any, item: int, seq: int) -> Any:
    return s if v is None else s + 1


def _number(kind: str, v: Any) -> Any:
    if type(v) is bool or not isinstance(v, _NUMBER):
        raise ItemDataError(f"{kind}: {v!r} is not a number")
    return v


def _sum(s: Any, v: Any, item: int, seq: int) -> Any:
    if v is None:
        return s
    _number("sum", v)
    return v if s is None else s + v


def _avg(s: Any, v: Any, item: int, seq: int) -> Any:
    if v is None:
        return s
    _number("avg", v)
    return [v, 1] if s is None else [s[0] + v, s[1] + 1]


def _min(s: Any, v: Any, item: int, seq: int) -> Any:
    if v is None:
        return s
    try:
        return v if s is None or v < s else s
    except TypeError:
        raise ItemDataError(f"min: cannot compare {v!r} with {s!r}") from None


def _max(s: Any, v: Any, item: int, seq: int) -> Any:
    if v is None:
        return s
    try:
        return v if s is None or v > s else s
    except TypeError:
        raise ItemDataError(f"max: cannot compare {v!r} with {s!r}") from None


def _distinct(s: Any, v: Any, item: int, seq: int) -> Any:
    if v is None:
        return s
    if s is None:
        s = DistinctSketch()
    s.add(v)
    return s


def _first(s: Any, v: Any, item: int, seq: int) -> Any:
    return (item, seq, v) if s is None and v is not None else s


def _last(s: Any, v: Any, item: int, seq: int) -> Any:
    return s if v is None else (item, seq, v)


def _merge_sum(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


def _merge_avg(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else [a[0] + b[0], a[1] + b[1]]


def _merge_min(a: Any, b: Any) -> Any:
    try:
        return b if a is None else a if b is None else min(a, b)
    except TypeError:
        raise ItemDataError(f"min: cannot compare {b!r} with {a!r}") from None


def _merge_max(a: Any, b: Any) -> Any:
    try:
        return b if a is None else a if b is None else max(a, b)
    except TypeError:
        raise ItemDataError(f"max: cannot compare {b!r} with {a!r}") from None


def _merge_distinct(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a.merge(b)


def _merge_first(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b, key=lambda t: (t[0], t[1]))


def _merge_last(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b, key=lambda t: (t[0], t[1]))


def _finish_avg(s: Any) -> Any:
    return None if s is None else s[0] / s[1]


def _finish_picked(s: Any) -> Any:
    return None if s is None else s[2]


def _finish_distinct(s: Any) -> Any:
    return 0 if s is None else s.estimate()


type _Update = Callable[[Any, Any, int, int], Any]
type _Merge = Callable[[Any, Any], Any]

#: kind -> (initial state, add one value, merge two states, result)
_KINDS: dict[str, tuple[Any, _Update, _Merge, Callable[[Any], Any]]] = {
    "count": (0, _count, lambda a, b: a + b, lambda s: s),
    "sum": (None, _sum, _merge_sum, lambda s: s),
    "min": (None, _min, _merge_min, lambda s: s),
    "max": (None, _max, _merge_max, lambda s: s),
    "avg": (None, _avg, _merge_avg, _finish_avg),
    "distinct_count": (None, _distinct, _merge_distinct, _finish_distinct),
    "first": (None, _first, _merge_first, _finish_picked),
    "last": (None, _last, _merge_last, _finish_picked),
}


class BuiltinReduction(Reduction):
    def __init__(self, config: ReduceConfig, keys: list[Getter]) -> None:
        super().__init__(keys)
        self.names = self.value_fields = list(config.aggregations)
        specs = list(config.aggregations.values())
        self.getters = [
            compile_getter(spec.expression, ("aggregations", name, spec.kind))
            for name, spec in zip(self.names, specs, strict=True)
        ]
        kinds = [_KINDS[spec.kind] for spec in specs]
        self.initial = [k[0] for k in kinds]
        self.updates = [k[1] for k in kinds]
        self.merges = [k[2] for k in kinds]
        self.finishes = [k[3] for k in kinds]

    def add(self, partial: Partial, values: Sequence[Any], item: int, seq: int) -> int:
        getters, updates, initial = self.getters, self.updates, self.initial
        indexes = range(len(getters))
        sets = list(zip(self.keys, partial.groups, strict=True))
        for value in values:
            seq += 1
            try:
                fields = [get(value) for get in getters]
            except ValueError as exc:
                raise ItemDataError(str(exc)) from None
            for key_of, groups in sets:
                try:
                    key = key_of(value)
                except ValueError as exc:
                    raise ItemDataError(f"group_by: {exc}") from None
                key = key if type(key) is str else _freeze(key)
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = list(initial)
                for i in indexes:
                    acc[i] = updates[i](acc[i], fields[i], item, seq)
        return seq

    def merge(self, into: Partial, other: Partial) -> None:
        merges = self.merges
        merged: list[tuple[dict[Any, Any], Any, Any]] = []  # applied once every group merged
        for mine, theirs in zip(into.groups, other.groups, strict=True):
            for key, acc in theirs.items():
                current = mine.get(key)
                if current is not None:
                    acc = [merge(a, b) for merge, a, b in zip(merges, current, acc, strict=True)]
                merged.append((mine, key, acc))
        for mine, key, acc in merged:
            mine[key] = acc

    def finish(self, accumulator: Any) -> dict[str, Any]:
        return {
            name: finish(state)
            for name, finish, state in zip(self.names, self.finishes, accumulator, strict=True)
        }


# ------------------------------------------------------------------------------------ a function


class _Unset:
    __slots__ = ()

    def __reduce__(self) -> str:
        return "_UNSET"  # pickles as the one module-level instance


_UNSET: Final = _Unset()


class FunctionReduction(Reduction):
    """``reduce.function`` called per group on lists of values and earlier results (a combiner).

    An accumulator is ``[buffer, value]``: values wait in the buffer until
    ``batch_size`` of them (or the end of a task) and are then reduced together
    with the value so far, so the function is called once per batch, not per value.
    """

    def __init__(self, config: ReduceConfig, keys: list[Getter], cwd: str | None) -> None:
        super().__init__(keys)
        assert config.function is not None
        self.spec = config.function
        self.function = load_function(config.function, cwd)
        self.finalize = load_function(config.finalize, cwd) if config.finalize else None
        self.batch_size = config.batch_size

    def _reduce(self, values: list[Any]) -> Any:
        if len(values) == 1:
            return values[0]
        return self.function(values)

    def _flush(self, acc: list[Any]) -> None:
        buffer = acc[0]
        if buffer:
            values = buffer if acc[1] is _UNSET else [acc[1], *buffer]
            acc[1] = self._reduce(values)
            acc[0] = []

    def add(self, partial: Partial, values: Sequence[Any], item: int, seq: int) -> int:
        size = self.batch_size
        sets = list(zip(self.keys, partial.groups, strict=True))
        for value in values:
            for key_of, groups in sets:
                try:
                    key = key_of(value)
                except ValueError as exc:
                    raise ItemDataError(f"group_by: {exc}") from None
                key = key if type(key) is str else _freeze(key)
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = [[], _UNSET]
                acc[0].append(value)
                if len(acc[0]) >= size:
                    self._flush(acc)
        return seq + len(values)

    def seal(self, partial: Partial) -> None:
        for groups in partial.groups:
            for acc in groups.values():
                self._flush(acc)

    def merge(self, into: Partial, other: Partial) -> None:
        # A flush leaves what an accumulator stands for as it was (or, when the function
        # raises, the accumulator itself), so only the assignments wait for the end.
        merged: list[tuple[list[Any], Any]] = []
        added: list[tuple[dict[Any, Any], Any, list[Any]]] = []
        for mine, theirs in zip(into.groups, other.groups, strict=True):
            for key, acc in theirs.items():
                current = mine.get(key)
                if current is None:
                    added.append((mine, key, acc))
                    continue
                self._flush(current)
                self._flush(acc)
                merged.append((current, self._reduce([current[1], acc[1]])))
        for current, value in merged:
            current[1] = value
        for mine, key, acc in added:
            mine[key] = acc

    def finish(self, accumulator: Any) -> dict[str, Any]:
        self._flush(accumulator)
        value = accumulator[1]
        if self.finalize is not None:
            value = self.finalize(value)
        return value if isinstance(value, dict) else {"value": value}
