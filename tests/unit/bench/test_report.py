"""Rendering a run: text table, JSON, Markdown and the generated block of docs/PERFORMANCE.md."""

import json
from pathlib import Path

import pytest

from bench.figures import BenchResult, OwnCpu, PathFigures, SystemFigures
from bench.report import render_history, render_markdown, render_table, write_json
from bench.request_table import PATHS, PathRequests, RequestCount
from bench.stats import summarize_latencies
from bench.summary import BEGIN, END, merge_generated


def _system(rate: float, p50: float, cpu: float) -> SystemFigures:
    return SystemFigures(rate, summarize_latencies([p50, p50 * 2]), cpu, 10, 10)


def _result() -> BenchResult:
    result = BenchResult(
        command="python -m bench --quick",
        started_at="2026-01-02T03:04:05",
        machine={"cpu_model": "Test CPU", "cpus": 2, "os": "Linux", "python": "3.11.0"},
        settings={"notifications": 10, "users": 2},
        polling_interval_ms=2000.0,
    )
    result.paths.append(PathFigures("realtime", _system(50.0, 100.0, 20.0), _system(200.0, 80.0, 5.0),
                                    _system(250.0, 60.0, 4.0), 400.0, 25.0))
    result.requests = RequestCount(2, 3, seconds=12.0)
    for system, reads in (("notifier", 4), ("guarantee floor", 2), ("presence floor", 0)):
        result.requests.rows.append(PathRequests(system, PATHS[0], 2, {"table read": reads, "queue put": 2}))
    result.own_cpu.append(OwnCpu("realtime", 8, 0.25, 12.0, 10.0, {"own": 0.25, "azure_sdk": 7.5},
                                 [{"function": "notify/notifier.py:1(handle)", "ms": 0.1}]))
    return result


def test_table_has_every_system_the_ratios_and_every_verdict() -> None:
    text = render_table(_result())
    assert "realtime  guarantee floor" in text and "realtime  presence floor" in text
    assert "notifier/guarantee floor  0.25     1.25" in text  # 50 / 200 notif/s, 150 / 120 ms p50
    assert "MISSED  realtime acked" in text and "requests per notification: 3.00 (limit 2.00" in text
    assert "MISSED  realtime                   throughput ratio: 0.25" in text
    assert "MET     realtime                   p50 latency (ms): 150.00 (limit 180.00" in text
    assert "MISSED  realtime                   CPU ratio: 4.00" in text
    assert "MET     realtime                   own CPU per notification (ms): 0.25" in text
    assert "10.0 HTTP requests/notification" in text
    assert text.startswith("Requests per notification, counted at the wire")


def test_json_round_trips_figures_ratios_and_targets(tmp_path: Path) -> None:
    path = write_json(_result(), tmp_path)
    assert path.name == "bench-20260102T030405.json"
    data = json.loads(path.read_text())
    realtime = data["paths"][0]
    assert realtime["throughput_ratio"] == 0.25
    assert realtime["notifier"]["latency"]["p50_ms"] == 150.0
    assert realtime["presence_floor"]["throughput_per_s"] == 250.0
    assert [(t["name"], t["met"]) for t in data["targets"]] == [
        ("requests per notification", False), ("throughput ratio", False), ("CPU ratio", False),
        ("p50 latency (ms)", True), ("own CPU per notification (ms)", True),
    ]
    rows = data["requests"]["rows"]
    assert rows[0]["per_notification"] == {"table read": 2.0, "queue put": 1.0}
    assert rows[0]["usd_per_million"]["total"] == pytest.approx(2 * 0.036 + 0.40)
    assert data["own_cpu"][0]["profiled_ms_by_category"]["azure_sdk"] == 7.5


def test_markdown_names_machine_command_and_verdicts() -> None:
    text = render_markdown(_result())
    assert "`python -m bench --quick`" in text
    assert "Test CPU, 2 CPUs" in text
    assert "| realtime | notifier | 50 | 150.0 |" in text
    assert "**missed**" in text
    assert "| realtime acked | notifier | 2 | 0 |" in text  # the request table: 2 reads per notification
    assert "- realtime acked: table read +1" in text
    assert "### Cost per million notifications" in text
    assert "`notify/notifier.py:1(handle)`: 0.100" in text


def test_generated_block_replaces_only_its_own_text() -> None:
    existing = f"intro\n{BEGIN}\nold figures\n{END}\n\n## Analysis\nhand-written\n"
    merged = merge_generated(existing, "new figures\n")
    assert merged == f"intro\n{BEGIN}\nnew figures\n{END}\n## Analysis\nhand-written\n"
    assert "old figures" not in merged


def test_generated_block_goes_first_in_a_new_or_unmarked_file() -> None:
    assert merge_generated("", "figures") == f"{BEGIN}\nfigures\n{END}\n"
    assert merge_generated("notes\n", "figures").endswith("\nnotes\n")


def test_history_lists_every_kept_run_oldest_first(tmp_path: Path) -> None:
    first = _result()
    second = _result()
    second.started_at = "2026-01-03T00:00:00"
    write_json(second, tmp_path)
    write_json(first, tmp_path)
    (tmp_path / "bench-broken.json").write_text("{not json")
    (tmp_path / "bench-20250101T000000.json").write_text(json.dumps({  # a run before the guarantee floor
        "started_at": "2025-01-01T00:00:00", "settings": {"notifications": 5, "users": 1},
        "paths": [{"path": "realtime", "notifier": {"throughput_per_s": 9, "latency": {"p50_ms": 70},
                                                    "process_cpu_ms_per_notification": 20},
                   "floor": {"throughput_per_s": 30, "latency": {"p50_ms": 60},
                             "process_cpu_ms_per_notification": 6}}]}))
    table = render_history(tmp_path).splitlines()
    assert len(table) == 7  # legend, blank, header, rule, three runs; the broken file is skipped
    assert table[4].startswith("| 2025-01-01T00:00:00 | 5/1 | 9/-/30 | 70/-/60 | 20.0/-/6.0 |")
    assert table[5].startswith("| 2026-01-02T03:04:05 | 10/2 | 50/200/250 | 150/120/90 | 20.0/5.0/4.0 |")
    assert table[6].startswith("| 2026-01-03T00:00:00 |")
    assert table[5].endswith("| 0.25 |")  # own CPU of the realtime path only
    assert render_history(tmp_path / "empty") == ""
