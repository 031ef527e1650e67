"""Host names: DNS rebinding gets 421 and changes nothing; configured names and addresses pass."""

from __future__ import annotations

import fakeredis
import pytest
from starlette.testclient import TestClient

from tests.request_tables import JSON
from tests.unit.conftest import ADMIN_TOKEN, SUM_KEY, ClientFactory, make_settings


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "localhost.evil"])
def test_a_host_name_the_node_does_not_serve_changes_nothing(
    client: TestClient, redis_data: fakeredis.FakeRedis, host: str
) -> None:
    # DNS rebinding: a page on attacker.example, its name pointed at this machine, talks to the
    # service as its own origin. Its requests carry its own name.
    redis_data.set(SUM_KEY, "7")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for reply in (
        client.delete("/abacus/sum", headers={"Host": host, **auth}),
        client.post("/abacus/number", content='{"number": 1}', headers={**JSON, "Host": host}),
        client.get("/abacus/sum", headers={"Host": host}),
    ):
        assert reply.status_code == 421, reply.text
        assert reply.json()["error"] == "misdirected_request"
        assert reply.headers["x-request-id"]
    assert redis_data.get(SUM_KEY) == b"7"


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "LOCALHOST.", "127.0.0.1:8080", "10.1.2.3", "[::1]:80"]
)
def test_configured_names_and_ip_addresses_are_served(client: TestClient, host: str) -> None:
    assert client.get("/abacus/sum", headers={"Host": host}).status_code == 200


def test_configured_names_replace_the_default(make_client: ClientFactory) -> None:
    client = make_client(make_settings(ABACUS_SERVER_NAMES="abacus.example.com, api.example"))
    assert client.get("/abacus/sum", headers={"Host": "api.example:443"}).status_code == 200
    assert client.get("/abacus/sum", headers={"Host": "localhost"}).status_code == 421


@pytest.mark.parametrize("path", ["/livez", "/health"])
@pytest.mark.parametrize("host", ["10.244.1.7:8000", "[fd00:10:244::7]:8000", "172.18.0.4:8000"])
def test_probes_by_pod_address_are_served(client: TestClient, path: str, host: str) -> None:
    # Kubernetes' HTTP probes (and Docker's health checks) send the pod's or container's address
    # as Host: the default server names admit them, so no probe path needs an exception.
    assert client.get(path, headers={"Host": host}).status_code == 200


def test_metrics_answer_any_host(client: TestClient) -> None:
    # Scrapers address nodes by their discovery's names (node:8000 in compose).
    assert client.get("/metrics", headers={"Host": "node:8000"}).status_code == 200
