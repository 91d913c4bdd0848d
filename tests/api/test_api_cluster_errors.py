"""A Redis Cluster failing over answers 503 (try again), like a Redis that cannot be reached."""

from __future__ import annotations

import pytest
from publish_fixture import publish_tiny_model
from redis import exceptions

from api.reader import Reader

# What redis-py's cluster client raises while a failover is under way: the cluster is down
# or a slot has no master yet, a slot is being moved, redirects went round until their budget
# ran out ("TTL exhausted"), or a replica is being promoted.
FAILOVER_ERRORS = [
    exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
    exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    exceptions.MovedError("3999 127.0.0.1:7002"),
    exceptions.AskError("3999 127.0.0.1:7002"),
    exceptions.ClusterError("TTL exhausted."),
    exceptions.SlotNotCoveredError("Command # 1 (GET ml:t:0:current) of pipeline caused error"),
]


@pytest.mark.parametrize("error", FAILOVER_ERRORS, ids=lambda e: type(e).__name__)
def test_cluster_failover_errors_answer_503_in_the_contract_envelope(api, monkeypatch, error):
    # Given a published tenant and a cluster that answers every read with a failover error
    publish_tiny_model(api.redis)

    def failing(self, tenant):
        raise error

    monkeypatch.setattr(Reader, "version", failing)
    # When Totara asks for either list
    for result in (api.user_items(), api.similar_items()):
        # Then it is told to come back later, in the error envelope, without the node's address
        assert result.status_code == 503
        assert result.json == {"error": "true", "msg": "Service unavailable: the model store "
                                                       "(Redis) cannot be reached"}
        assert "127.0.0.1" not in result.text


def test_a_plain_response_error_stays_a_500(api, monkeypatch):
    # A wrong command or a wrong type is a defect, not a failover: it must not hide as a 503.
    def failing(self, tenant):
        raise exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")

    monkeypatch.setattr(Reader, "version", failing)
    assert api.user_items().status_code == 500
