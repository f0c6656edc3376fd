"""The Events the operator posts about a site: shaped so that the API server accepts them
whatever the site (a 253-character name, a long message), and so `kubectl describe` shows them."""

from __future__ import annotations

import datetime

from httpd_operator.events import MAX_MESSAGE, event

SITE = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}


def test_an_event_refers_to_its_site_and_says_who_posted_it() -> None:
    now = datetime.datetime(2026, 11, 29, 1, 2, 3, tzinfo=datetime.UTC)
    got = event(SITE, "Warning", "InvalidSpec", "spec.port: must be 1024 or more", now)
    assert got["metadata"] == {"namespace": "ns", "generateName": "web."}
    assert got["involvedObject"] == {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "name": "web",
                                     "namespace": "ns", "uid": "u-1"}
    assert (got["type"], got["reason"], got["source"]) == ("Warning", "InvalidSpec", {"component": "httpd-operator"})
    assert got["firstTimestamp"] == got["lastTimestamp"] == "2026-11-29T01:02:03Z"


def test_long_names_and_messages_are_cut_to_what_the_server_accepts() -> None:
    name = ".".join(c * 63 for c in "abcd")[:253]
    got = event({**SITE, "metadata": {**SITE["metadata"], "name": name}}, "Normal", "Applied", "x" * 5000 + "END")
    # kube-apiserver keeps 58 characters of a generateName and adds 5: a valid name in any case.
    assert len(got["metadata"]["generateName"]) <= 58 and got["metadata"]["generateName"].endswith(".")
    assert len(got["message"]) <= MAX_MESSAGE and got["message"].endswith("END") and "..." in got["message"]
    assert got["involvedObject"]["name"] == name  # the reference itself is never cut
