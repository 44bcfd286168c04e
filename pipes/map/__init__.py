"""``pipes map``: a map-reduce job over large file sets, after Step Functions Distributed Map.

A map file names the items (files), how to read them, the map side (the pipe
stages ``filter`` and ``transform``, and/or a ``map`` function) and the reduce
side (built-in aggregations per group, or a ``reduce`` function). The job cuts
the items into tasks, runs them on a local process pool or a Dask cluster,
merges the partial reductions the workers send back, checkpoints progress so
that a run resumes after a crash, and writes the result with its manifests.

One module per job: ``model`` (the file format), ``loader`` (validation with
located errors), ``stages`` (the pipes languages), ``items`` (globs, manifests,
batching), ``readers`` (formats and compression), ``reduce`` (aggregations),
``worker`` (one task), ``executors`` (local and Dask), ``state``
(checkpoints), ``results`` (result writer and target), ``progress`` (the bar
and the summary), ``job`` (the orchestration), ``command`` (``pipes map``).
"""

from __future__ import annotations

__all__: list[str] = []
