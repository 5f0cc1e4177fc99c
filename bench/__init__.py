"""``make bench``: requests per notification at the wire, then throughput, CPU and latency of the notifier
against the floors on the local stack (the timed targets against the guarantee floor in the local Functions
host, ``bench/hosted_floor/``).

Run ``python -m bench --help`` (``--requests`` for the request table alone). Modules:
:mod:`bench.wire` (the counting proxy) and :mod:`bench.wire_calls` (what a request was),
:mod:`bench.request_count` (the six paths, counted) and :mod:`bench.request_table` (tally, prices, table),
:mod:`bench.guarantee_floor` and :mod:`bench.presence_floor` (the floors, child processes, on
:mod:`bench.floor_base`; :mod:`bench.floor_process` starts them, and the guarantee floor's Functions app
``bench/hosted_floor/`` in the local Functions host), :mod:`bench.stats` (percentiles, rates),
:mod:`bench.targets` (the issue's targets), :mod:`bench.figures` (what a run measured), :mod:`bench.report`
(table, JSON, Markdown), :mod:`bench.summary` (docs/PERFORMANCE.md between markers), :mod:`bench.clients`
(WebSocket clients that ack), :mod:`bench.producer` (enqueue, bulk or paced), :mod:`bench.stack_setup`
(devices, presence), :mod:`bench.own_cpu` (the notifier's own CPU under a profiler, a child process) and
:mod:`bench.run` (the phases).
"""
