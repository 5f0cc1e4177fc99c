"""The issue's targets against the guarantee floor: requests, throughput, CPU, p50 and own CPU (pure)."""

import pytest

from bench.targets import (
    cpu_target,
    latency_target,
    own_cpu_target,
    ratio,
    requests_target,
    throughput_target,
)


def test_ratio_guards_a_zero_denominator() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(3.0, 0.0) == 0.0


def test_requests_may_not_exceed_the_guarantee_floor() -> None:
    assert requests_target(13.0, 13.0).met
    assert requests_target(12.0, 13.0).met
    missed = requests_target(14.0, 13.0)
    assert not missed.met and (missed.measured, missed.limit) == (14.0, 13.0)


@pytest.mark.parametrize(("notifier", "floor", "met"), [(90.0, 100.0, True), (89.0, 100.0, False)])
def test_throughput_target_is_ninety_percent_of_the_floor(notifier: float, floor: float, met: bool) -> None:
    result = throughput_target(notifier, floor)
    assert result.measured == pytest.approx(notifier / floor)
    assert result.limit == 0.9
    assert result.met is met


def test_cpu_target_allows_ten_percent_more_than_the_floor() -> None:
    assert cpu_target(11.0, 10.0).met
    assert not cpu_target(11.1, 10.0).met
    assert not cpu_target(1.0, 0.0).met  # no floor figure: not met


def test_latency_target_allows_one_and_a_half_floor() -> None:
    met = latency_target(notifier_p50_ms=150.0, floor_p50_ms=100.0)
    assert met.limit == pytest.approx(150.0)
    assert met.met
    assert not latency_target(notifier_p50_ms=150.1, floor_p50_ms=100.0).met


def test_own_cpu_target_is_strictly_under_one_ms() -> None:
    assert own_cpu_target(0.99).met
    assert not own_cpu_target(1.0).met
