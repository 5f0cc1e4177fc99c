"""The issue's targets: throughput ratio, p50 allowance and own CPU (pure functions)."""

import pytest

from bench.targets import latency_target, own_cpu_target, ratio, throughput_target


def test_ratio_guards_a_zero_denominator() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(3.0, 0.0) == 0.0


@pytest.mark.parametrize(("notifier", "floor", "met"), [(90.0, 100.0, True), (89.0, 100.0, False)])
def test_throughput_target_is_ninety_percent_of_the_floor(notifier: float, floor: float, met: bool) -> None:
    result = throughput_target(notifier, floor)
    assert result.measured == pytest.approx(notifier / floor)
    assert result.limit == 0.9
    assert result.met is met


def test_latency_target_allows_one_and_a_half_floor_plus_polling() -> None:
    met = latency_target(notifier_p50_ms=250.0, floor_p50_ms=100.0, polling_interval_ms=100.0)
    assert met.limit == pytest.approx(250.0)
    assert met.met
    missed = latency_target(notifier_p50_ms=250.1, floor_p50_ms=100.0, polling_interval_ms=100.0)
    assert not missed.met


def test_own_cpu_target_is_strictly_under_one_ms() -> None:
    assert own_cpu_target(0.99).met
    assert not own_cpu_target(1.0).met
