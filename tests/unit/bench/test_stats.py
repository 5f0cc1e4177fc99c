"""Percentiles, latencies and drain rates of the benchmark (pure functions)."""

import math

import pytest

from bench.stats import drain_rate, latencies_ms, percentile, summarize_latencies


def test_percentile_interpolates_between_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]  # unsorted on purpose
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 95) == pytest.approx(38.5)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], q)


def test_percentile_of_nothing_fails() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summary_of_1_to_100_ms() -> None:
    summary = summarize_latencies([float(v) for v in range(1, 101)])
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p95_ms == pytest.approx(95.05)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == 100.0
    assert set(summary.to_dict()) == {"count", "p50_ms", "p95_ms", "p99_ms", "max_ms"}


def test_latencies_only_for_ids_received() -> None:
    sent = {"a": 100.0, "b": 100.5, "lost": 101.0}
    received = {"a": 100.25, "b": 101.0, "stray": 5.0}
    assert sorted(latencies_ms(sent, received)) == pytest.approx([250.0, 500.0])


def test_drain_rate_counts_intervals_between_first_and_last() -> None:
    assert drain_rate([10.0, 10.5, 11.0, 12.0]) == pytest.approx(1.5)  # 3 intervals in 2 s
    assert drain_rate([3.0]) == 0.0
    assert math.isinf(drain_rate([3.0, 3.0]))
