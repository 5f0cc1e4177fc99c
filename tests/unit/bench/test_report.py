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
    result.paths.append(PathFigures("realtime", notifier=_system(50.0, 100.0, 20.0),
                                    hosted_floor=_system(100.0, 80.0, 8.0),
                                    guarantee_floor=_system(200.0, 60.0, 5.0),
                                    presence_floor=_system(250.0, 40.0, 4.0),
                                    producer_per_s=400.0, paced_rate_per_s=25.0))
    result.requests = RequestCount(2, 3, seconds=12.0)
    for system, reads in (("notifier", 4), ("guarantee floor", 2), ("presence floor", 0)):
        result.requests.rows.append(PathRequests(system, PATHS[0], 2, {"table read": reads, "queue put": 2}))
    result.own_cpu.append(OwnCpu("realtime", 8, 0.25, 12.0, 10.0, {"own": 0.25, "azure_sdk": 7.5},
                                 [{"function": "notify/notifier.py:1(handle)", "ms": 0.1}],
                                 floor_total_ms=8.0))
    return result


def _cells(text: str, system: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.startswith(f"realtime  {system} ")]
    return line[len(f"realtime  {system} "):].split()


def test_table_has_every_system_both_floor_ratios_the_host_share_and_every_verdict() -> None:
    text = render_table(_result())
    for system in ("notifier", "guarantee floor (Functions host)", "guarantee floor (bare process)",
                   "presence floor"):
        assert _cells(text, system)[-1] == "10/10", system
    # the targets' reference is the hosted floor: 50 / 100 notif/s, 150 / 120 ms p50, 20 / 8 ms CPU
    assert _cells(text, "notifier/hosted floor (targets)") == ["0.50", "1.25", "2.50"]
    # the bare floor is a reference: 50 / 200 notif/s, 150 / 90 ms p50, 20 / 5 ms CPU
    assert _cells(text, "notifier/bare floor (reference)") == ["0.25", "1.67", "4.00"]
    assert _cells(text, "hosted - bare floor (the host's share)") == ["+3.00"]  # 8 - 5 ms CPU
    assert "MISSED  realtime acked" in text and "requests per notification: 3.00 (limit 2.00" in text
    assert "MISSED  realtime                   throughput ratio: 0.50" in text
    assert "notifier/hosted guarantee floor >= 0.9" in text
    assert "MET     realtime                   p50 latency (ms): 150.00 (limit 180.00" in text
    assert "MISSED  realtime                   CPU ratio: 2.50" in text
    assert "MET     realtime                   own CPU per notification (ms): 0.25" in text
    assert "10.0 HTTP requests/notification" in text
    assert text.startswith("Requests per notification, counted at the wire")


def test_json_round_trips_figures_ratios_and_targets(tmp_path: Path) -> None:
    path = write_json(_result(), tmp_path)
    assert path.name == "bench-20260102T030405.json"
    data = json.loads(path.read_text())
    realtime = data["paths"][0]
    assert realtime["ratios_against"] == "hosted_floor"
    assert realtime["throughput_ratio"] == 0.5 and realtime["cpu_ratio"] == 2.5
    assert realtime["bare_floor_ratios"] == {"throughput": 0.25, "p50": pytest.approx(150 / 90), "cpu": 4.0}
    assert realtime["host_cpu_ms_per_notification"] == 3.0
    assert realtime["notifier"]["latency"]["p50_ms"] == 150.0
    assert realtime["hosted_floor"]["throughput_per_s"] == 100.0
    assert realtime["guarantee_floor"]["throughput_per_s"] == 200.0
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
    assert "| realtime | guarantee floor (Functions host) | 100 | 120.0 |" in text
    assert "| realtime | notifier/hosted floor (targets) | 0.50 | 1.25 |" in text
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
    (tmp_path / "bench-20250601T000000.json").write_text(json.dumps({  # a run before the hosted floor
        "started_at": "2025-06-01T00:00:00", "settings": {"notifications": 5, "users": 1},
        "paths": [{"path": "realtime", **{system: {"throughput_per_s": rate, "latency": {"p50_ms": 50},
                                                   "process_cpu_ms_per_notification": 10}
                                          for system, rate in (("notifier", 8), ("guarantee_floor", 20),
                                                               ("presence_floor", 40))}}]}))
    table = render_history(tmp_path).splitlines()
    assert len(table) == 8  # legend, blank, header, rule, four runs; the broken file is skipped
    assert table[4].startswith("| 2025-01-01T00:00:00 | 5/1 | 9/-/-/30 | 70/-/-/60 | 20.0/-/-/6.0 |")
    assert table[5].startswith("| 2025-06-01T00:00:00 | 5/1 | 8/-/20/40 | 50/-/50/50 | 10.0/-/10.0/10.0 |")
    assert table[6].startswith(
        "| 2026-01-02T03:04:05 | 10/2 | 50/100/200/250 | 150/120/90/60 | 20.0/8.0/5.0/4.0 |")
    assert table[7].startswith("| 2026-01-03T00:00:00 |")
    assert table[6].endswith("| 0.25 |")  # own CPU of the realtime path only
    assert render_history(tmp_path / "empty") == ""


def test_cpu_one_message_at_a_time_is_shown_against_the_floor_code_measured_the_same_way() -> None:
    result = _result()
    text = render_table(result)
    assert "12.00 ms thread CPU of all code (guarantee floor's code 8.00 ms: 1.50 x)" in text
    markdown = render_markdown(result)
    assert "| realtime | 0.250 | 12.00 | 8.00 | 1.50 |" in markdown
    without = OwnCpu("push", 8, 0.25, 12.0, 10.0)  # runs before the floor's code was measured
    assert without.floor_ratio is None
