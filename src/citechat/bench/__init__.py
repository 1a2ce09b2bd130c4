"""``citechat bench``: how fast citechat is, appended to a JSONL file (bench/README.md).

Not part of the runtime library: it needs the ``[bench]`` extra
(``pip install 'citechat[bench]'``, for psutil) and the benchmark sets of a checkout,
whose paths it takes as arguments.

* ``run``: :func:`~citechat.bench.run.run_bench` runs the parts in order (build,
  latency, cold, peer, ingest, million) and appends the record; the build child.
* ``ingest``: peak RSS of index builds as the corpus grows, streamed vs in memory.
* ``million``: HNSW vs exact search over a million cached real MiniLM vectors, and
  ``python -m citechat.bench.million embed``, which fills the cache.
* ``common``: psutil with its install hint, peak RSS, child processes.

``run`` imports the parts; each part imports only ``common``.
"""
