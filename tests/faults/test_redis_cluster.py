"""The key layout on a real Redis Cluster: three ``redis-server --cluster-enabled yes`` on loopback
ports joined by ``redis-cli --cluster create``, the worker and the API (gunicorn) on
``ML_REDIS_URL=redis+cluster://...`` (redis-py's cluster client).

publish -> serve -> publish again (the replaced version deleted: multi-key UNLINK in a cluster
pipeline) -> serve -> the cluster emptied -> the worker republishes the saved models -> serve.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import requests
from conftest import KEY
from kombu import Connection
from redis.cluster import RedisCluster
from servers import Api, RedisServer, free_port, port_open, start_worker, wait_for

from consumer import events
from consumer.sender import send
from consumer.topology import Topology
from published import keys
from recommender.ingest import export
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cluster_port() -> int:
    # The cluster bus listens on port + 10000: both must be free.
    while True:
        port = free_port()
        if port < 55000 and not port_open(port + 10000):
            return port


@pytest.fixture
def cluster(tmp_path):
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    nodes = []
    try:
        for i in range(3):
            folder = tmp_path / f"node{i}"
            nodes.append(RedisServer(folder, _cluster_port(), [
                "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                "--cluster-node-timeout", "2000"]).start())
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in nodes], "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        client = RedisCluster(host="127.0.0.1", port=nodes[0].port)
        wait_for(lambda: client.cluster_info().get("cluster_state") == "ok", 20, "cluster ok")
        yield nodes, client
        client.close()
    finally:
        for node in nodes:
            node.kill()


def _versions(client: RedisCluster, tenant: str) -> list[str]:
    return [v.decode() for v in client.zrange(keys.versions(tenant), 0, -1)]


def test_publish_serve_publish_serve_and_self_healing_on_a_redis_cluster(
        cluster, fault_env, shared_broker, processes, tmp_path):
    nodes, client = cluster
    url_broker, prefix = shared_broker
    env = {**fault_env, "ML_REDIS_URL": f"redis+cluster://127.0.0.1:{nodes[0].port}",
           "ML_BROKER_URL": url_broker, "ML_BROKER_PREFIX": prefix, "ML_PUBLISH_GRACE": "0"}
    settings = config.from_env(env)
    # The tenants' keys hash to different slots (and so may live on different nodes).
    assert client.keyslot(keys.current("0")) != client.keyslot(keys.current("1"))
    processes.append(start_worker(env, tmp_path / "worker.log"))
    api = Api(env, tmp_path / "api.log").start()
    processes.append(api.process)
    queries = []
    for tenant in ("0", "1"):
        data = export.load_tenant(settings.export_dir, tenant)
        article = next(k for k in data.items.keys if k.startswith("engage_article"))
        queries += [("/user-items", {"totara_user_id": int(data.users.ids[3]),
                                     "item_type": "container_course", "tenant": tenant,
                                     "n_items": 5}),
                    ("/similar-items", {"totara_item_id": article, "tenant": tenant,
                                        "n_items": 5})]

    def publish(tenant: str, force: bool = False) -> None:
        with Connection(url_broker) as connection:
            send(connection, Topology(prefix), events.make_event(
                events.TRAIN, tenant=tenant, force=force or None))

    def served() -> list[dict]:
        return [requests.get(api.url + path, params=params, headers=signed_headers(KEY),
                             timeout=(1, 2)).json() for path, params in queries]

    def all_served() -> bool:
        return all(answer["success"] is True for answer in served())

    # publish -> serve
    publish("0")
    publish("1")
    wait_for(lambda: client.hget(keys.last_run("1"), "status") == b"published"
             and client.hget(keys.last_run("0"), "status") == b"published", 60, "published")
    wait_for(all_served, 5, "both tenants served")
    first = _versions(client, "0")
    assert len(first) == 1
    # publish again -> serve: the new version is current, the replaced one deleted
    publish("0", force=True)
    # The new version is registered before the old one is deleted: wait for both steps.
    wait_for(lambda: len(now := _versions(client, "0")) == 1 and now != first, 60,
             "republished and the replaced version deleted")
    second = _versions(client, "0")
    assert len(second) == 1 and second != first
    assert client.exists(*keys.version_keys("0", first[0])) == 0
    time.sleep(1.1)  # the API's cached pointers expire
    assert all_served()
    health = requests.get(api.url + "/health-check", headers=signed_headers(KEY),
                          timeout=(1, 2)).json()["totara"]
    assert health["redis_reachable"] == "true" and health["tenants_published"] == 2
    assert health["tenant_0_version"] == second[0]
    # the whole cluster emptied -> the worker republishes the saved models -> served again
    for node in nodes:
        node.client().flushall()
    wait_for(all_served, 30, "served again after the cluster lost its data")
    # ml:tenants is re-added just after each pointer switch, so readiness may lag an instant.
    wait_for(lambda: requests.get(api.url + "/readyz", timeout=2).status_code == 200, 10,
             "ready again")
