"""A tiny ``python -m bench`` run on its own private stack: the report's structure, never its timings."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.request_table import PATHS, SYSTEMS
from bench.summary import BEGIN, END

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 240.0


def run_bench(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the benchmark; past TIMEOUT, fail with its thread stacks and output, its stack stopped.

    ``subprocess.run(timeout=...)`` would SIGKILL it and leave its private stack (Azurite, the host) behind.
    """
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # bench: faulthandler prints every thread's stack to stderr
        process.terminate()  # bench: SIGTERM unwinds like Ctrl-C and stops the private stack
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"bench did not finish in {TIMEOUT:.0f} s\n{stdout[-2000:]}\n{stderr[-20000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_tiny_benchmark_run_writes_a_complete_report(tmp_path: Path) -> None:
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text("# Performance\n\nhand-written method\n", encoding="utf-8")
    command = [sys.executable, "-m", "bench", "-n", "20", "-k", "2", "--latency-notifications", "10",
               "--profile-samples", "4", "--ack-timeout", "1", "--count-notifications", "1",
               "--results-dir", str(tmp_path / "results"), "--doc", str(doc)]
    completed = run_bench(command)
    assert completed.returncode == 0, completed.stderr[-3000:]

    [result_file] = (tmp_path / "results").glob("bench-*.json")
    data = json.loads(result_file.read_text())
    assert data["settings"]["concurrency"] == 24  # host.json: batchSize 16 + newBatchThreshold 8
    assert [p["path"] for p in data["paths"]] == ["realtime", "push"]
    for path in data["paths"]:
        assert path["ratios_against"] == "hosted_floor"
        for system in ("notifier", "hosted_floor", "guarantee_floor", "presence_floor"):
            figures = path[system]
            # 20 drained + 10 paced per system: every notification reached the client or the push sink
            assert figures["delivered"] == figures["expected"] == 30, (path["path"], system)
            assert figures["latency"]["count"] == 10
            assert figures["throughput_per_s"] > 0
            assert figures["process_cpu_ms_per_notification"] > 0
    assert {(t["path"], t["name"]) for t in data["targets"]} == {
        (path, name)
        for path in ("realtime", "push")
        for name in ("throughput ratio", "CPU ratio", "p50 latency (ms)", "own CPU per notification (ms)")
    } | {(path, "requests per notification") for path in PATHS}

    rows = {(row["system"], row["path"]): row for row in data["requests"]["rows"]}
    assert set(rows) == {(system, path) for system in SYSTEMS for path in PATHS}
    for (system, path), row in rows.items():
        # every notification was enqueued through the tap, received once and deleted once
        assert row["counts"]["queue put"] >= 1 and row["counts"]["queue delete"] >= 1, (system, path)
    acked = rows[("notifier", "realtime acked")]["counts"]
    assert acked["events user.ack"] == 1 and acked["webpubsub send to user"] == 1
    # the presence floor's clients never ack
    assert "events user.ack" not in rows[("presence floor", "realtime acked")]["counts"]
    assert rows[("guarantee floor", "offline -> push")]["counts"]["notificationhubs send"] == 1
    own = {c["path"]: c for c in data["own_cpu"]}
    assert own["realtime"]["samples"] == own["push"]["samples"] == 4
    # deliver + ack + deadline on the realtime path makes more requests than a push
    requests = {path: own[path]["http_requests_per_notification"] for path in own}
    assert requests["realtime"] > requests["push"] > 0
    assert own["realtime"]["profiled_ms_by_category"]["own"] > 0
    # the guarantee floor's code measured one message at a time too (ack and deadline cost it CPU)
    assert own["realtime"]["floor_total_ms"] > own["push"]["floor_total_ms"] > 0

    assert "notifier/hosted floor (targets)" in completed.stdout
    assert "notifier/bare floor (reference)" in completed.stdout
    assert completed.stdout.startswith("bench: starting")
    assert "Requests per notification, counted at the wire" in completed.stdout
    text = doc.read_text(encoding="utf-8")
    assert text.startswith(BEGIN) and END in text and text.rstrip().endswith("hand-written method")
