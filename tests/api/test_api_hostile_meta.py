"""A meta or last_run hash holding values that are no numbers (hand-edited, half-written) is read
as absent by the health check, the status page and the tenant metrics alike: never an error."""

from __future__ import annotations

import pytest
from publish_fixture import publish_tiny_model

from published import keys

HOSTILE = ["nan", "inf", "-inf", "1e400", "", "garbage", "9" * 5000]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_meta_and_run_values_read_as_absent_in_every_view(api, raw):
    version = publish_tiny_model(api.redis, "0")
    api.redis.hset(keys.meta("0", version), mapping={
        name: raw for name in ("trained_at", "auc", "precision_at_10", "recall_at_10",
                               "n_users", "n_items", "n_interactions", "incremental_runs")})
    api.redis.hset(keys.last_run("0"), mapping={"status": "failed", "at": raw})
    api.redis.set(keys.SCHEDULE_LEADER, raw)

    facts = api.get("/health-check").json["totara"]
    assert facts["tenant_0_status"] == "trained" and facts["tenant_0_last_run"] == "failed"
    assert not {"tenant_0_auc", "tenant_0_version_age_seconds",
                "tenant_0_last_run_age_seconds"} & set(facts)

    page = api.get("/", headers={})
    assert page.status_code == 200
    row = page.text.split('data-tenant="0"')[1].split("</tr>")[0]
    assert row.count('<td class="num">-') == 6  # three sizes, three quality figures
    assert "not scheduled yet" in page.text

    metrics = api.get("/metrics").text
    assert 'totara_ml_tenant_trained{tenant="0"} 1.0' in metrics
    for family in ("validation_score", "export_size", "published_version_age_seconds",
                   "incremental_runs", "last_run_timestamp_seconds"):
        assert f"totara_ml_tenant_{family}{{" not in metrics
    assert "\ntotara_ml_next_retrain_timestamp_seconds " not in metrics
