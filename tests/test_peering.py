"""`Peering.paused`: kopf's pausing rule, applied by the engine before each reconcile.

Why: kopf stops its own watches when it is paused, but the engine's reconciles are driven by the
operator's own informers; if this view disagreed with kopf, a paused replica would keep writing
(two operators fighting over the same sites) or an active one would stand idle. Pure: the peering
objects are fed as the informer would, and `now` is explicit.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest

from httpd_operator.peering import Peering

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
NAME = "httpd-operator"


def peering() -> Peering:
    return Peering(name=NAME, priority=100, identity="me")


def entry(priority: int, seen: datetime.datetime | str = NOW, lifetime: int = 60) -> dict[str, Any]:
    lastseen = seen if isinstance(seen, str) else seen.isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen}


def obj(status: dict[str, Any], name: str = NAME) -> dict[str, Any]:
    return {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}, "status": status}


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def test_no_peering_object_or_no_peers_does_not_pause() -> None:
    p = peering()
    assert not p.paused(NOW)
    p.observe(None, obj({}))
    assert not p.paused(NOW)


@pytest.mark.parametrize(("priority", "paused"), [(101, True), (100, True), (99, False)],
                         ids=["higher", "same", "lower"])
def test_a_live_peer_pauses_unless_its_priority_is_lower(priority: int, paused: bool) -> None:
    p = peering()
    p.observe(None, obj({"other": entry(priority)}))
    assert p.paused(NOW) is paused


def test_own_identity_is_ignored_whatever_its_priority() -> None:
    p = peering()
    p.observe(None, obj({"me": entry(1000)}))
    assert not p.paused(NOW)
    p.observe("MODIFIED", obj({"me": entry(1000), "other": entry(50)}))
    assert not p.paused(NOW)


def test_a_peer_is_alive_until_lastseen_plus_lifetime() -> None:
    p = peering()
    p.observe(None, obj({"other": entry(200, ago(60))}))
    assert not p.paused(NOW)  # deadline == now: dead
    p.observe("MODIFIED", obj({"other": entry(200, ago(120))}))
    assert not p.paused(NOW)
    p.observe("MODIFIED", obj({"other": entry(200, ago(59.999))}))
    assert p.paused(NOW)  # just before its deadline
    assert not p.paused(NOW + datetime.timedelta(seconds=0.001))  # the same peer, at its deadline


def test_a_longer_lifetime_keeps_a_peer_alive_longer() -> None:
    p = peering()
    p.observe(None, obj({"other": entry(200, ago(90), lifetime=120)}))
    assert p.paused(NOW)
    assert not p.paused(NOW + datetime.timedelta(seconds=30))


def test_peering_objects_with_another_name_are_ignored() -> None:
    p = peering()
    p.observe(None, obj({"other": entry(200)}, name="someone-else"))
    assert not p.paused(NOW)
    p.observe("DELETED", obj({}, name="someone-else"))  # does not drop ours either
    p.observe("ADDED", obj({"other": entry(200)}))
    p.observe("DELETED", obj({}, name="someone-else"))
    assert p.paused(NOW)


def test_deleting_the_peering_object_unpauses() -> None:
    p = peering()
    p.observe("ADDED", obj({"other": entry(200)}))
    assert p.paused(NOW)
    p.observe("DELETED", obj({"other": entry(200)}))
    assert not p.paused(NOW)


def test_a_peer_leaving_the_status_unpauses() -> None:
    p = peering()
    p.observe("ADDED", obj({"other": entry(200), "me": entry(100)}))
    assert p.paused(NOW)
    p.observe("MODIFIED", obj({"me": entry(100)}))
    assert not p.paused(NOW)


def test_a_peering_resource_not_served_pauses_until_it_is_listed_again() -> None:
    p = peering()
    p.observe("MISSING", {})  # the informer's reports (missing_ok)
    assert p.paused(NOW)
    p.observe(None, obj({"me": entry(100)}))
    assert p.paused(NOW)  # an object alone does not say the resource is served again
    p.observe("LISTED", {})  # a list succeeded, even one with no peering object in it
    assert not p.paused(NOW)


def test_unreadable_entries_neither_crash_nor_pause_for_ever() -> None:
    p = peering()
    p.observe(None, obj({"other": {"priority": "high", "lifetime": "long"}}))
    assert not p.paused(NOW)  # a priority that is not a number counts as 0
    p.observe(None, obj({"other": {"priority": 200}}))  # no lastseen: seen now, alive for 60 s
    assert p.paused(NOW)
    p.observe(None, obj({"other": {"priority": 200, "lifetime": 0, "lastseen": NOW.isoformat()}}))
    assert not p.paused(NOW)  # a lifetime of 0 is dead at once, as kopf has it


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 5 hours off UTC: reading a naive time as local time would then show."""
    monkeypatch.setenv("TZ", "Etc/GMT-5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_lastseen_without_timezone_is_utc(far_from_utc: None) -> None:
    p = peering()
    naive = ago(30).replace(tzinfo=None).isoformat()
    assert "+" not in naive
    p.observe(None, obj({"other": entry(200, naive)}))
    assert p.paused(NOW)
    assert not p.paused(NOW + datetime.timedelta(seconds=30))  # its deadline, read as UTC


def test_a_lastseen_with_z_suffix_parses() -> None:
    p = peering()
    stamp = ago(30).replace(tzinfo=None).isoformat() + "Z"
    p.observe(None, obj({"other": entry(200, stamp)}))
    assert p.paused(NOW)
    assert not p.paused(NOW + datetime.timedelta(seconds=30))
