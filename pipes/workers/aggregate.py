"""One view of N workers: their ``/pipes`` answers and their metrics, merged.

Counters add up (each event went through one worker); a pipe's state is shown
per worker and, as one word, the one that needs attention first; checkpoint
positions and lag are per partition, and each partition belongs to one worker
at a time (a Redis stream's lag is the group's, the same from every worker:
the largest is kept). Metrics follow the same rules, with the state gauge
labelled by worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["merge_detail", "merge_metrics", "merge_pipes"]

# The state that needs attention first wins the one-word summary.
_ORDER = ["FAILED", "DEGRADED", "STARTING", "STOPPING", "RUNNING", "STANDBY", "STOPPED"]


def _worst(states: Iterable[str]) -> str:
    found = list(states)
    for state in _ORDER:
        if state in found:
            return state
    return found[0] if found else "STOPPED"


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(a.get(k, 0), b.get(k, 0)) for k in {*a, *b}}
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return a + b
    return a if a is not None else b


def merge_pipes(answers: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``/pipes`` of every worker (by worker name) as one list, in the order pipes first appear."""
    merged: dict[str, dict[str, Any]] = {}
    for worker, answer in answers.items():
        for pipe in answer.get("pipes", []):
            name = pipe["name"]
            entry = merged.get(name)
            if entry is None:
                entry = merged[name] = {**pipe, "counters": {}, "workers": {}}
            entry["counters"] = _add(entry["counters"], pipe.get("counters", {}))
            entry["workers"][worker] = {
                "state": pipe.get("state"),
                "counters": pipe.get("counters", {}),
                "last_error": pipe.get("last_error"),
                "reason": pipe.get("reason"),
            }
            for key in ("last_error", "reason"):
                if entry.get(key) is None:
                    entry[key] = pipe.get(key)
    for entry in merged.values():
        entry["state"] = _worst(w["state"] for w in entry["workers"].values())
    return list(merged.values())


def merge_detail(answers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``/pipes/NAME`` of the workers that have the pipe, as one answer."""
    [summary] = merge_pipes({w: {"pipes": [a]} for w, a in answers.items()})
    checkpoint: dict[str, Any] = {}
    lag: dict[str, int] | None = None
    for answer in answers.values():
        checkpoint.update(answer.get("checkpoint") or {})
        for partition, value in (answer.get("source_lag") or {}).items():
            lag = lag if lag is not None else {}
            lag[partition] = max(lag.get(partition, 0), value)
    return {**summary, "checkpoint": checkpoint, "source_lag": lag}


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_metrics(texts: Mapping[str, str]) -> bytes:
    """The Prometheus text of every worker (by worker name), merged (see the module docstring)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker, text in texts.items():
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a creation time per worker: no sum of them means anything
                found = dict(sample.labels)
                if family.name == "pipes_pipe_state":
                    found["worker"] = worker
                key = (sample.name, tuple(sorted(found.items())))
                if family.name == "pipes_source_lag":
                    samples[key] = max(samples.get(key, 0.0), sample.value)
                else:
                    samples[key] = samples.get(key, 0.0) + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry()
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)
