"""The thin client against a server that answers like the real one where it is not JSON."""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator

import pytest

from httpd_operator.connection import Cluster
from httpd_operator.kube import ApiError, Kube, discover_versions


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves policy/v1 with PodDisruptionBudgets; any other group: kube-apiserver's plain-text 404."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/apis/policy/v1":
            body, kind = b'{"resources": [{"name": "poddisruptionbudgets"}]}', "application/json"
            self.send_response(200)
        else:
            body, kind = b"404 page not found\n", "text/plain; charset=utf-8"
            self.send_response(404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    async with Kube(Cluster(server=f"http://127.0.0.1:{server.server_address[1]}"), timeout=5) as kube:
        yield kube
    server.shutdown()
    server.server_close()


async def test_a_plain_text_404_is_an_api_error(kube: Kube) -> None:
    with pytest.raises(ApiError) as exc:
        await kube.call("GET", "/apis/monitoring.coreos.com/v1")
    assert exc.value.status == 404


async def test_discovery_skips_add_ons_the_cluster_lacks(kube: Kube) -> None:
    found = dict(await discover_versions(kube))
    assert found["PodDisruptionBudget"] == "policy/v1"
    assert "ServiceMonitor" not in found
    assert found["CronJob"] == "batch/v1"  # nothing served: today's version, as before discovery
