"""Desired-vs-actual comparison and status computation (pure)."""

from __future__ import annotations

import functools
from decimal import Decimal

import pytest
from support import site

from httpd_operator.diff import is_subset, merge_patch
from httpd_operator.errors import SpecError
from httpd_operator.quantity import QuantityError, parse_quantity
from httpd_operator.render import render_body
from httpd_operator.settings import Settings
from httpd_operator.status import Observed, desired_status, merge_conditions


def test_server_defaults_and_foreign_fields_do_not_count_as_drift() -> None:
    want = {"spec": {"containers": [{"name": "httpd", "image": "a"}]}, "metadata": {"labels": {"x": "1"}}}
    have = {"spec": {"containers": [{"name": "httpd", "image": "a", "imagePullPolicy": "IfNotPresent"}]},
            "metadata": {"labels": {"x": "1", "other": "2"}, "annotations": {"tool": "y"}}}
    assert is_subset(want, have)
    assert merge_patch(want, have) == {}


def test_patch_carries_only_the_differing_fields_and_whole_lists() -> None:
    want = {"spec": {"replicas": 2, "template": {"containers": [{"name": "httpd", "image": "b"}]},
                     "selector": {"a": "b"}}}
    have = {"spec": {"replicas": 1, "template": {"containers": [{"name": "httpd", "image": "a", "x": 1}]},
                     "selector": {"a": "b"}}}
    assert merge_patch(want, have) == {"spec": {"replicas": 2, "template": {"containers": [
        {"name": "httpd", "image": "b"}]}}}


def test_int_or_string_and_booleans_compare_as_kubernetes_does() -> None:
    assert is_subset({"port": 8080}, {"port": "8080"})
    assert not is_subset({"readOnly": True}, {"readOnly": 1})
    assert not is_subset([1, 2], [1, 2, 3])


@pytest.mark.parametrize(("text", "value"), [
    ("1Gi", Decimal(2**30)), ("500M", Decimal(500 * 10**6)), ("1.5Gi", Decimal(3 * 2**29)),
    ("100m", Decimal("0.1")), ("1e3", Decimal(1000)), (10, Decimal(10)),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1GB", "lots", "", "1 Gi", "Gi", "--1", True])
def test_bad_quantities(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)  # type: ignore[arg-type]


_site = functools.partial(site, uid="u", generation=2)


def test_status_moves_from_pending_to_progressing_to_ready() -> None:
    raw = _site(replicas=2)
    rendered = render_body(raw, Settings())
    pending = desired_status(raw, rendered, Observed(claim={"status": {"phase": "Pending"}}))
    assert pending["phase"] == "Pending"
    assert {c["type"]: c["reason"] for c in pending["conditions"]}["VolumeReady"] == "ClaimPending"
    bound = {"spec": {"storageClassName": "fast"},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    rolling = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "replicas": 2,
                                                        "readyReplicas": 1, "updatedReplicas": 1,
                                                        "availableReplicas": 1}}
    progressing = desired_status(raw, rendered, Observed(claim=bound, deployment=rolling))
    assert progressing["phase"] == "Progressing" and progressing["ready"] == "1/2"
    done = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
                                                     "updatedReplicas": 2, "availableReplicas": 2}}
    ready = desired_status(raw, rendered, Observed(claim=bound, deployment=done))
    assert ready["phase"] == "Ready"
    assert ready["observedGeneration"] == 2
    assert ready["volume"] == {"type": "Managed", "mountPath": "/usr/local/apache2/htdocs", "readOnly": False,
                               "seed": "IfEmpty", "persistent": True, "source": "claim web-htdocs",
                               "claimName": "web-htdocs", "retained": True, "phase": "Bound",
                               "summary": "web-htdocs (Bound)", "capacity": "1Gi", "storageClassName": "fast",
                               "accessModes": ["ReadWriteOnce"]}
    assert "placed on one node" in ready["conditions"][0]["message"]
    assert ready["selector"] == "app.kubernetes.io/name=httpd,app.kubernetes.io/instance=web"


def test_lost_claim_degrades_the_site() -> None:
    raw = _site()
    status = desired_status(raw, render_body(raw, Settings()), Observed(claim={"status": {"phase": "Lost"}}))
    assert status["phase"] == "Degraded"
    assert status["conditions"][0]["reason"] == "VolumeLost"


def test_refused_spec_is_failed_and_a_missing_source_is_pending() -> None:
    failed = desired_status(_site(), SpecError("spec.port", "bad"), Observed())
    assert failed["phase"] == "Failed" and failed["conditions"][0]["reason"] == "InvalidSpec"
    waiting = desired_status(_site(), SpecError("spec.volume.fromSite", "x", "SourceSiteNotFound"), Observed())
    assert waiting["phase"] == "Pending"


def test_transition_time_moves_only_when_status_changes() -> None:
    old = [{"type": "Ready", "status": "False", "reason": "A", "message": "", "lastTransitionTime": "T0"}]
    same = merge_conditions([{"type": "Ready", "status": "False", "reason": "B", "message": "m"}], old, "T1")
    assert same[0]["lastTransitionTime"] == "T0" and same[0]["reason"] == "B"
    flipped = merge_conditions([{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}], old, "T1")
    assert flipped[0]["lastTransitionTime"] == "T1"
