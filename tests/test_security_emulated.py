"""Safe by default (issue 16) with the real operator against the emulated API server: the site's
NetworkPolicy kept, changed and pruned like the other optional children, and the install's off
switch."""

from __future__ import annotations

from support import Api, eventually, site

from httpd_operator.settings import Settings

POLICIES = "networking.k8s.io/v1/networkpolicies"


def ready(api: Api, name: str) -> bool:
    return api.site_status("ns", name).get("phase") == "Ready"


async def test_network_policy_is_kept_in_shape_and_removed_when_switched_off(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", metrics={"enabled": True}))
    policy = await eventually(lambda: api.get(POLICIES, "ns", "web"))
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == [8080, 9117]
    await eventually(lambda: ready(api, "web"))
    # A hand edit opening every port is put back.
    await api.request("PATCH", "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/web",
                      {"spec": {"ingress": [{}]}})
    await eventually(lambda: api.get(POLICIES, "ns", "web")["spec"]["ingress"] == policy["spec"]["ingress"])
    await api.patch_site("ns", "web", {"spec": {"networkPolicy": {"egress": "DNSOnly"}}})
    await eventually(lambda: api.get(POLICIES, "ns", "web")["spec"].get("policyTypes") == ["Ingress", "Egress"])
    await api.patch_site("ns", "web", {"spec": {"networkPolicy": {"enabled": False}}})
    await eventually(lambda: api.get(POLICIES, "ns", "web") is None)
    await eventually(lambda: ready(api, "web"))


async def test_a_bad_peer_is_refused_naming_the_field(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", networkPolicy={"ingress": {"peers": [{"podSelector": {"app": "x"}}]}}))
    await eventually(lambda: api.site_status("ns", "web").get("phase") == "Failed")
    (cond,) = [c for c in api.site_status("ns", "web")["conditions"] if c["type"] == "Ready"]
    assert cond["message"].startswith("spec.networkPolicy.ingress.peers[0].podSelector.app:")
    assert api.get(POLICIES, "ns", "web") is None and api.get("apps/v1/deployments", "ns", "web") is None


async def test_off_for_the_install_writes_and_watches_no_network_policy(api: Api, operator) -> None:
    await operator(Settings(network_policies=False))
    await api.create_site(site("web"))
    await eventually(lambda: ready(api, "web"))
    assert api.get(POLICIES, "ns", "web") is None
    assert not [r for r in api.server._requests if "networkpolicies" in r.url.path]


async def test_status_says_what_the_policy_allows_and_that_a_network_plugin_enforces_it(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", metrics={"enabled": True}, networkPolicy={"egress": "DNSOnly"}))
    await eventually(lambda: ready(api, "web"))
    assert api.site_status("ns", "web")["networkPolicy"] == (
        "NetworkPolicy web: http from anywhere; metrics from monitoring; egress DNS only "
        "(enforced only where the network plugin implements NetworkPolicy)")
    await api.patch_site("ns", "web", {"spec": {"networkPolicy": {"enabled": False}}})
    await eventually(lambda: "networkPolicy" not in api.site_status("ns", "web"))
