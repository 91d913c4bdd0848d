"""The whole chain on the real services: demo export -> export-ready -> worker -> pipeline ->
published pointers; then an interaction event -> the API's answer for a cold user."""

from __future__ import annotations

import falcon.testing
import pytest
from kombu import Connection
from workerkit import export_worker, running, wait_for

from api.app import create_app
from consumer import events
from consumer.sender import send
from consumer.topology import Topology
from published import keys
from recommender import pipeline
from recommender.ingest.export import load_tenant
from recommender.model.params import TrainParams
from runtime.signing import signed_headers

pytestmark = pytest.mark.integration

FAST = TrainParams(components=16, max_epochs=8, patience=2)


def fast_train(settings, client, tenant, **options):
    return pipeline.train_tenant(settings, client, tenant, params=FAST, **options)


def test_export_ready_publishes_every_tenant_and_interactions_reach_cold_users(
        amqp_url, prefix, base_env, real_redis, tmp_path):
    setup = export_worker(amqp_url, prefix, base_env, real_redis, tmp_path, fast_train)
    tenants, settings, export_dir = setup.tenants, setup.settings, setup.export_dir
    topology = Topology(prefix, amqp=True)
    with Connection(amqp_url) as connection, running(setup.worker):
        send(connection, topology, events.make_event(events.EXPORT_READY))
        wait_for(lambda: all(real_redis.get(keys.current(t)) for t in tenants), timeout=60)
        # A publish switches the pointer, then adds the tenant to the set (another cluster slot,
        # so not in the same script): the set is complete a moment after the pointers.
        wanted = {t.encode() for t in tenants}
        wait_for(lambda: real_redis.smembers(keys.TENANTS) == wanted, timeout=10)

        # A user who is not in the export: the API answers from popularity until the user does
        # something, then from the fold-in of what the user did.
        known = set(load_tenant(export_dir, "0").users.ids.tolist())
        cold = max(known) + 1000
        client = falcon.testing.TestClient(create_app(settings, real_redis))

        def course_ids() -> list[str]:
            result = client.simulate_get(
                "/user-items", headers=signed_headers(settings.totara_key),
                params={"totara_user_id": str(cold), "item_type": "container_course",
                        "tenant": "0", "n_items": "10"})
            assert result.status_code == 200 and result.json["success"], result.json
            return [item for item, _ in result.json["items"]]

        before = course_ids()
        assert before
        send(connection, topology, events.make_event(
            events.INTERACTION, tenant="0", user_id=cold, item_id=f"container_course{before[0]}",
            timestamp=1700000000, rating=1))
        wait_for(lambda: real_redis.llen(keys.recent("0", cold)) == 1)
        after = wait_for(lambda: (lambda ids: ids if ids != before else None)(course_ids()))
    assert before[0] not in after  # the course the user already took is not recommended again
