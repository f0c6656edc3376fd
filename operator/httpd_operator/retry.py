"""The one retry policy: how long each loop of the operator waits before it tries again.

Every loop that retries (start-up, the informers' relists, the queue's reconciles, events, the
peering object) uses a `Backoff` from here, so that the rules are the same everywhere and tested
once: doubling from `base` up to `cap`, and the server's Retry-After when it sent one.
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry number `retry` (1 for the first): `base`, doubled each time, at most `cap`."""

    base: float = 1.0
    cap: float = 30.0

    def delay(self, retry: int, exc: BaseException | None = None) -> float:
        """The server's Retry-After (an `ApiError`'s `retry_after`) wins: it knows its own load."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return float(retry_after)
        return min(self.cap, self.base * 2.0 ** min(max(retry, 1) - 1, 32))


def retry_after(header: str | None, now: datetime.datetime | None = None) -> float | None:
    """A Retry-After header in seconds: a number (what kube-apiserver sends) or an HTTP date (what
    a proxy in front of it may send); None when absent or unreadable (then the doubling rules)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.datetime.now(datetime.UTC))).total_seconds())


@dataclass
class Retries:
    """A loop's failures in a row under a policy: `failed` counts one and says how long to wait."""

    policy: Backoff
    failures: int = 0

    def failed(self, exc: BaseException | None = None) -> float:
        self.failures += 1
        return self.policy.delay(self.failures, exc)

    def succeeded(self) -> None:
        self.failures = 0


# The loops' policies, in one place.
START_UP = Backoff(base=1.0, cap=30.0)       # waiting for the API server, and start-up calls
RELIST = Backoff(base=1.0, cap=30.0)         # an informer's relist after an error
QUICK_END = Backoff(base=0.2, cap=30.0)      # a watch the server (or a proxy) ended at once
RECONCILE = Backoff(base=1.0, cap=60.0)      # a site's reconcile after an API error
BUG = Backoff(base=2.0, cap=300.0)           # a site's reconcile after a bug: it will not mend soon
EVENT = Backoff(base=0.5, cap=30.0)          # posting an event (given up after a few tries)
