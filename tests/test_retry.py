"""The one retry policy: doubling to a cap, the server's Retry-After first, and each loop's figures."""

from __future__ import annotations

import datetime

import pytest

from httpd_operator import retry
from httpd_operator.kube import ApiError
from httpd_operator.retry import Backoff, Retries, retry_after


def test_the_delay_doubles_from_the_base_up_to_the_cap() -> None:
    policy = Backoff(base=0.5, cap=5.0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.delay(0) == 0.5  # a loop counting from 0 waits the base, not less
    assert policy.delay(10_000) == 5.0  # no overflow after a long outage


def test_the_servers_retry_after_wins_over_the_doubling() -> None:
    policy = Backoff(base=1.0, cap=30.0)
    assert policy.delay(1, ApiError(429, "slow down", retry_after=7.0)) == 7.0
    assert policy.delay(5, ApiError(503, "busy", retry_after=2.0)) == 2.0  # even below the doubling
    assert policy.delay(3, ApiError(503, "busy")) == 4.0  # none sent: the doubling
    assert policy.delay(3, ApiError(503, "busy", retry_after=0.0)) == 4.0  # "0" is not "at once"
    assert policy.delay(3, ValueError("a bug")) == 4.0


def test_retries_count_failures_in_a_row_until_a_success() -> None:
    retries = Retries(Backoff(base=1.0, cap=10.0))
    assert [retries.failed() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert retries.failures == 3
    retries.succeeded()
    assert retries.failed(ApiError(503, "busy", retry_after=9.0)) == 9.0 and retries.failures == 1
    assert retries.failed() == 2.0


@pytest.mark.parametrize(("policy", "first", "last"), [
    (retry.START_UP, [1.0, 2.0, 4.0], 30.0),    # what `run` logs while the server is away
    (retry.RELIST, [1.0, 2.0, 4.0], 30.0),
    (retry.QUICK_END, [0.2, 0.4, 0.8], 30.0),
    (retry.RECONCILE, [1.0, 2.0, 4.0], 60.0),
    (retry.BUG, [2.0, 4.0, 8.0], 300.0),
    (retry.EVENT, [0.5, 1.0, 2.0], 30.0),
])
def test_each_loops_policy(policy: Backoff, first: list[float], last: float) -> None:
    assert [policy.delay(n) for n in (1, 2, 3)] == first
    assert policy.delay(100) == last


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime.datetime(2026, 12, 2, 12, 0, 0, tzinfo=datetime.UTC)
    assert retry_after("7", now) == 7.0 and retry_after("1.5", now) == 1.5
    assert retry_after("Wed, 02 Dec 2026 12:00:30 GMT", now) == 30.0  # a proxy's date form
    assert retry_after("Wed, 02 Dec 2026 11:00:00 GMT", now) == 0.0  # past: at once, not negative
    assert retry_after(None, now) is None and retry_after("", now) is None
    assert retry_after("soon", now) is None  # unreadable: the policy's own doubling
