"""Prometheus metrics of a daemon's pipes.

Each daemon owns a ``CollectorRegistry`` (never the global one), so two
daemons in one process (tests, embedding) never share or clash on series.
Counters and histograms are fed on the hot path through ``PipeObserver``, the
runner's ``RunnerObserver``; the observer of a pipe outlives its runners, so a
pipe restarted by a reload keeps counting on the same series. State, in-flight
events and source lag are read at scrape time from a probe the daemon gives,
so they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "STATES", "DaemonMetrics", "PipeObserver", "PipeProbe"]

#: What ``GET /metrics`` answers with (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATES = ("STARTING", "RUNNING", "DEGRADED", "STOPPING", "STOPPED", "FAILED", "STANDBY")
_STAGES = ("source", "filter", "filter_transform", "enrichment", "transform", "target")
# Batches take from well under a millisecond (memory) to seconds (a slow HTTP target).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class PipeProbe:
    """A pipe as seen at scrape time."""

    pipe: str
    state: str
    in_flight: int
    lag: Mapping[str, int] | None


class PipeObserver:
    """Feeds one pipe's series; label children are resolved once, not per call."""

    def __init__(self, metrics: DaemonMetrics, pipe: str) -> None:
        self.pipe = pipe
        m = metrics
        self._counts = {
            "received": m.received.labels(pipe),
            "filtered": m.filtered.labels(pipe),
            "dropped": m.dropped.labels(pipe),
            "delivered": m.delivered.labels(pipe),
            "dead_lettered": m.dead_lettered.labels(pipe),
            "retried": m.retried.labels(pipe),
        }
        self._failed = {stage: m.failed.labels(pipe, stage) for stage in _STAGES}
        self._metrics = m
        self._batch = m.batch_duration.labels(pipe)
        self._stages = {stage: m.stage_duration.labels(pipe, stage) for stage in _STAGES}
        self.state_name = "STOPPED"

    def events(self, kind: str, count: int, stage: str | None = None) -> None:
        if kind == "failed":
            stage = stage or "target"
            child = self._failed.get(stage)
            if child is None:
                child = self._failed[stage] = self._metrics.failed.labels(self.pipe, stage)
            child.inc(count)
            return
        counter = self._counts.get(kind)
        if counter is not None:
            counter.inc(count)

    def duration(self, stage: str, seconds: float) -> None:
        if stage == "batch":
            self._batch.observe(seconds)
            return
        child = self._stages.get(stage)
        if child is None:
            child = self._stages[stage] = self._metrics.stage_duration.labels(self.pipe, stage)
        child.observe(seconds)

    def state(self, state: str) -> None:
        # The gauge is read from the daemon at scrape time; this keeps the last one seen.
        self.state_name = state

    def remove(self) -> None:
        """Drop this pipe's series (the pipe left the configuration)."""
        m = self._metrics
        for counter in (m.received, m.filtered, m.dropped, m.delivered, m.dead_lettered, m.retried):
            _remove(counter, self.pipe)
        _remove(m.batch_duration, self.pipe)
        for stage in self._failed:
            _remove(m.failed, self.pipe, stage)
        for stage in self._stages:
            _remove(m.stage_duration, self.pipe, stage)


def _remove(metric: Counter | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


class _LiveCollector(Collector):
    """State, in-flight and lag gauges, computed from the probe on every scrape."""

    def __init__(self, probe: Callable[[], Iterable[PipeProbe]]) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "pipes_pipe_state",
            "Current state of the pipe: 1 for its state, 0 for the others.",
            labels=["pipe", "state"],
        )
        in_flight = GaugeMetricFamily(
            "pipes_in_flight_events", "Events taken from the source and not yet settled.", labels=["pipe"]
        )
        lag = GaugeMetricFamily(
            "pipes_source_lag",
            "Events (or offsets) the source has not read yet, per partition, where the source knows.",
            labels=["pipe", "partition"],
        )
        for p in self.probe():
            for name in STATES:
                state.add_metric([p.pipe, name], 1.0 if name == p.state else 0.0)
            in_flight.add_metric([p.pipe], float(p.in_flight))
            for partition, value in (p.lag or {}).items():
                lag.add_metric([p.pipe, str(partition)], float(value))
        yield state
        yield in_flight
        yield lag

    def describe(self) -> Iterator[Metric]:
        # Without describe() the registry would call collect() at registration.
        return iter(())


class DaemonMetrics:
    """Every series of one daemon, in its own registry."""

    def __init__(self, probe: Callable[[], Iterable[PipeProbe]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "pipes_events_received_total", "Events taken from the source.", ["pipe"], registry=r
        )
        self.filtered = Counter(
            "pipes_events_filtered_total", "Events the filter did not pass.", ["pipe"], registry=r
        )
        self.dropped = Counter(
            "pipes_events_dropped_total", "Events the enrichment returned nothing for.", ["pipe"], registry=r
        )
        self.delivered = Counter(
            "pipes_events_delivered_total", "Events the target accepted.", ["pipe"], registry=r
        )
        self.failed = Counter(
            "pipes_events_failed_total",
            "Failed attempts, by the stage that failed (an event retried twice counts twice).",
            ["pipe", "stage"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "pipes_events_dead_lettered_total", "Events written to the dead letter.", ["pipe"], registry=r
        )
        self.retried = Counter(
            "pipes_events_retried_total",
            "Events sent through a stage again after a failure.",
            ["pipe"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "pipes_batch_duration_seconds",
            "Time a batch took from its first stage to settled (retries included).",
            ["pipe"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "pipes_stage_duration_seconds",
            "Time one batch spent in one stage.",
            ["pipe", "stage"],
            buckets=_BUCKETS,
            registry=r,
        )
        self._observers: dict[str, PipeObserver] = {}
        self._live = _LiveCollector(probe or (lambda: ()))
        r.register(self._live)

    def set_probe(self, probe: Callable[[], Iterable[PipeProbe]]) -> None:
        self._live.probe = probe

    def observer(self, pipe: str) -> PipeObserver:
        """The observer of ``pipe``: the same one for every runner the pipe gets."""
        found = self._observers.get(pipe)
        if found is None:
            found = self._observers[pipe] = PipeObserver(self, pipe)
        return found

    def forget(self, pipe: str) -> None:
        observer = self._observers.pop(pipe, None)
        if observer is not None:
            observer.remove()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value (for tests and ``pipes status``); None when absent."""
        return self.registry.get_sample_value(name, labels)
