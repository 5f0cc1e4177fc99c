"""``make bench``: throughput, latency and CPU of the notifier against a bare-SDK floor on the local stack.

Run ``python -m bench --help``. Modules: :mod:`bench.stats` (percentiles, rates), :mod:`bench.targets`
(the issue's targets), :mod:`bench.figures` (what a run measured), :mod:`bench.report` (table, JSON,
Markdown), :mod:`bench.summary` (docs/PERFORMANCE.md between markers), :mod:`bench.clients` (WebSocket clients
that ack), :mod:`bench.producer` (enqueue, bulk or paced), :mod:`bench.floor` (the bare loop, a child
process), :mod:`bench.own_cpu` (the notifier's own CPU under a profiler, a child process) and
:mod:`bench.run` (the phases).
"""
