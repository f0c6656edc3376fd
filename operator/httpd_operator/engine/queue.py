"""The scheduler: kicks fold into one reconcile per site, a cap on reconciles in flight, backoff.

It knows nothing of sites beyond their key: it runs `work(key)` and reads the `Result` back (a
requeue, or nothing). An API error backs off per site (honouring Retry-After); any other
exception is a bug, logged, and backs off longer: it never stops the queue or another site.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from httpd_operator.engine.memory import SiteKey
from httpd_operator.kube import ApiError
from httpd_operator.metrics import Metrics
from httpd_operator.retry import BUG, RECONCILE

logger = logging.getLogger("httpd_operator")


@dataclass(frozen=True)
class Result:
    """What a reconcile did (`outcome`, for metrics and tests), and when to look again."""

    outcome: str  # changed | unchanged | held | gone | error
    requeue_after: float | None = None
    # Look again after this long even when no event comes: what the site reports is read from
    # something unwatched (its git writer's log). A requeue, if any, comes first.
    poll_after: float | None = None


Work = Callable[[SiteKey], Awaitable[Result]]


class Queue:
    """Kicks in, reconciles out: at most one per site at a time, at most `concurrency` at once."""

    def __init__(self, work: Work, *, debounce: float = 0.1, concurrency: int = 64,
                 gate: Callable[[], bool] = lambda: True, metrics: Metrics | None = None,
                 api_delay: Callable[[int, BaseException], float] = RECONCILE.delay,
                 bug_delay: Callable[[int, BaseException], float] = BUG.delay) -> None:
        self.work, self.debounce, self.gate, self.metrics = work, debounce, gate, metrics
        self.api_delay, self.bug_delay = api_delay, bug_delay
        self.reconciled = 0  # reconciles finished, whatever their result (tests wait on it)
        # Each reconcile in flight holds its site's objects unpacked: a burst of a thousand kicks
        # must not unpack a thousand sites at the same time (RSS), nor interleave them.
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[SiteKey] = set()
        self._waiting: dict[SiteKey, tuple[float, asyncio.Task[None]]] = {}  # asleep until (due, task)
        self._polls: set[SiteKey] = set()  # of the pending, those only waiting for a periodic poll
        # One lock per site being reconciled (or waiting to), dropped when its last user leaves.
        self._running: dict[SiteKey, tuple[asyncio.Lock, int]] = {}
        self._attempts: dict[SiteKey, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def kick(self, key: SiteKey, delay: float | None = None, poll: bool = False) -> None:
        """Reconcile the site soon; kicks that arrive before it runs are folded into one. A kick
        due sooner than the one waiting takes its place: an event does not wait out a failed
        attempt's backoff (the attempts still count until one succeeds, as in client-go's queue).
        `poll`: a periodic look (Result.poll_after), which does not keep the queue from idling."""
        delay = self.debounce if delay is None else delay
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if key in self._pending:
            waiting = self._waiting.get(key)
            if waiting is None or waiting[0] <= due:
                return
            waiting[1].cancel()  # still asleep, nothing held: the sooner kick replaces it
        self._pending.add(key)
        if poll:
            self._polls.add(key)
        else:
            self._polls.discard(key)
        task = loop.create_task(self._run(key, delay))
        self._waiting[key] = (due, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def idle(self) -> bool:
        """No reconcile running, and none scheduled but periodic polls."""
        return not self._running and self._pending <= self._polls

    def tracked(self) -> int:
        """Sites the queue holds anything for (locks, attempts): zero when idle and all is well."""
        return len(self._running) + len(self._attempts)

    async def drain(self) -> None:
        """Wait for scheduled reconciles (tests and the demo use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """At shutdown: scheduled and running reconciles are cancelled (the next run redoes them)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, key: SiteKey, delay: float) -> None:
        await asyncio.sleep(delay)  # a debounce window (or a backoff), not a synchronisation
        del self._waiting[key]
        self._polls.discard(key)
        lock, users = self._running.get(key) or (asyncio.Lock(), 0)
        self._running[key] = (lock, users + 1)
        try:
            async with self._slots, lock:
                self._pending.discard(key)
                if self.gate():
                    await self._once(key)
        finally:
            lock, users = self._running[key]
            if users == 1:
                del self._running[key]
            else:
                self._running[key] = (lock, users - 1)

    async def _once(self, key: SiteKey) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self.work(key)
            self._attempts.pop(key, None)
        except ApiError as exc:
            if self.metrics:
                self.metrics.api_errors.labels(str(exc.status)).inc()
            delay = self.api_delay(self._attempt(key), exc)
            logger.warning("site %s/%s: API error %s; retrying in %.1fs", *key, exc, delay)
            result = Result("error", delay)
        except Exception as exc:  # a bug must not kill the operator or other sites
            logger.exception("site %s/%s: reconcile failed", *key)
            result = Result("error", self.bug_delay(self._attempt(key), exc))
        self.reconciled += 1
        if self.metrics:
            self.metrics.observe(result.outcome, loop.time() - started)
        if result.requeue_after is not None:
            self.kick(key, delay=result.requeue_after)
        elif result.poll_after is not None:
            self.kick(key, delay=result.poll_after, poll=True)

    def _attempt(self, key: SiteKey) -> int:
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        return attempt
