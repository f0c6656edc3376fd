"""Running the operator: in the foreground (the CLI), or in a thread beside an emulated API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import kopf

from httpd_operator.cli_errors import cause
from httpd_operator.connection import Cluster
from httpd_operator.engine import Engine
from httpd_operator.handlers import build
from httpd_operator.kinds import KIND, KINDS
from httpd_operator.kube import ApiError, Kube, discover_versions, oneshot
from httpd_operator.metrics import Metrics
from httpd_operator.peering import Peering, own_identity
from httpd_operator.retry import START_UP, Backoff
from httpd_operator.settings import Settings


def run(settings: Settings, configuration: Cluster,
        namespaces: Sequence[str] = (), liveness: str | None = None,
        stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None, debounce: float = 0.1,
        peering: str | None = None, priority: int | None = None, metrics_port: int | None = None) -> Engine:
    """Run until stopped (a signal, or `stop_flag`); watches `namespaces`, or all if empty."""
    settings = with_discovered_versions(settings, configuration)
    metrics = Metrics()
    if metrics_port:
        metrics.serve(metrics_port)
    terms = peering_terms(peering, priority)
    registry, engine = build(settings, configuration, debounce=debounce, metrics=metrics, namespaces=namespaces,
                             peering=terms)
    serve(registry, namespaces, liveness=liveness, stop_flag=stop_flag, ready_flag=ready_flag,
          loop=loop, peering=terms)
    return engine


async def wait_for_server(kube: Kube, stop: asyncio.Event | None = None, policy: Backoff = START_UP,
                          log: logging.Logger | None = None) -> bool:
    """Until the API server answers and serves HttpdSites, before kopf starts: one line per
    failed try, with the reason and the next delay (rather than a warning per watched kind).
    False if `stop` was set meanwhile; credentials refused (401, 403) raise ApiError."""
    log = log or logging.getLogger("httpd_operator.runner")
    stop = stop or asyncio.Event()
    server, attempt = kube.cluster.server, 0
    source = f" ({kube.cluster.source})" if kube.cluster.source else ""
    while not stop.is_set():
        try:
            await kube.call("GET", KINDS[KIND].prefix)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            if exc.status == 404:
                why = (f"it does not serve {KINDS[KIND].api_version()}: is the CRD installed? "
                       "(kubectl apply -f crds/httpdsites.yaml)")
            else:
                why = cause(exc) if exc.status == 0 else f"{exc.status} {exc.message}"
            attempt += 1
            delay = policy.delay(attempt, exc)
            log.warning("cannot reach %s%s: %s; retrying in %.0f s (attempt %d)", server, source, why, delay, attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)  # the delay, cut short by a stop
            continue
        if attempt:
            log.info("reached %s after %d attempts", server, attempt + 1)
        return True
    return False


@contextmanager
def stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`, on the running loop (kopf installs its own once it runs)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def reachable(kube: Kube) -> bool:
    """`wait_for_server` in the foreground: a signal stops the wait (False)."""
    stop = asyncio.Event()
    with stopped_by_signals(stop):
        return await wait_for_server(kube, stop)


def peering_terms(name: str | None, priority: int | None) -> Peering | None:
    """With peering, replicas with the highest priority act and the others wait; without an
    explicit priority each replica draws a random one, so exactly one is active."""
    if name is None:
        return None
    return Peering(name, priority if priority is not None else random.SystemRandom().randint(1, 2**31),
                   own_identity())


def serve(registry: kopf.OperatorRegistry, namespaces: Sequence[str] = (), *, liveness: str | None = None,
          stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None,
          loop: asyncio.AbstractEventLoop | None = None, peering: Peering | None = None) -> None:
    """kopf's run loop (with the same peering terms the engine checks before it reconciles)."""
    kopf.run(
        loop=loop, registry=registry, clusterwide=not namespaces, namespaces=list(namespaces),
        standalone=peering is None, peering_name=peering.name if peering else None,
        priority=peering.priority if peering else 0,
        identity=peering.identity if peering else None,  # type: ignore[arg-type]
        liveness_endpoint=liveness, stop_flag=stop_flag, ready_flag=ready_flag)


def with_discovered_versions(settings: Settings, configuration: Cluster) -> Settings:
    """The settings, with the API versions the server serves (PodDisruptionBudget: policy/v1 or
    v1beta1); on a loop of its own, before kopf's."""
    return dataclasses.replace(settings, api_versions=oneshot(configuration, discover_versions))


async def _settled(timeout: float = 2.0) -> None:
    """What kopf's end left running is finished before its loop closes (as `asyncio.run` does for
    a process), and the connections the clients closed are let go through: a TLS connection's
    close takes a round trip, and a loop closed before it leaves the socket to the collector."""
    loop = asyncio.get_running_loop()
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    await loop.shutdown_asyncgens()
    # The sockets the loop still waits on: its own wake-up pipe, then connections closing.
    selector = getattr(loop, "_selector", None)
    deadline = loop.time() + timeout
    while selector is not None and len(selector.get_map()) > 1 and loop.time() < deadline:
        await asyncio.sleep(0.005)  # a poll with a deadline
    await asyncio.sleep(0)  # the closed transports' last callbacks


class OperatorThread:
    """The real operator in a thread of its own, talking HTTP to whatever the configuration names.

    Tests run the emulated API server in their own event loop; the operator gets its own loop
    here, exactly as it would in its own process.
    """

    def __init__(self, settings: Settings, configuration: Cluster,
                 namespaces: Sequence[str] = (), debounce: float = 0.02, peering: str | None = None,
                 priority: int | None = None) -> None:
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.namespaces = tuple(namespaces)
        self.peering, self.priority = peering, priority
        self.configuration = configuration
        self.metrics = Metrics()
        self.settings, self.debounce = settings, debounce
        # built in the thread, after discovery: handlers watch the API versions the server serves
        self.registry: kopf.OperatorRegistry | None = None
        self.engine: Engine = None  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._target, name="httpd-operator", daemon=True)

    def _target(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            # Discovery talks to the server: here, in the operator's thread, not the caller's loop.
            settings = with_discovered_versions(self.settings, self.configuration)
            terms = peering_terms(self.peering, self.priority)
            self.registry, self.engine = build(settings, self.configuration, debounce=self.debounce,
                                               metrics=self.metrics, namespaces=self.namespaces, peering=terms)
            serve(self.registry, self.namespaces, stop_flag=self.stop_flag, ready_flag=self.ready_flag,
                  loop=loop, peering=terms)
        except BaseException as exc:  # reported by start() or stop()
            self.error = exc
            self.ready_flag.set()  # wake start(), which raises it
        finally:
            loop.run_until_complete(_settled())
            loop.close()

    def start(self, timeout: float = 30) -> OperatorThread:
        self._thread.start()
        if not self.ready_flag.wait(timeout):
            raise TimeoutError("the operator did not become ready")
        if self.error is not None:
            raise self.error
        return self

    def stop(self, timeout: float = 30) -> None:
        self.stop_flag.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the operator did not stop")
        if self.error is not None:
            raise self.error
