"""Redis memory per interaction event is bounded: an interaction leaves no per-event key, only
its entry in the user's bounded, expiring ``recent`` list; a redelivered one is not counted
twice. Measured on the real Redis with MEMORY USAGE of every key the worker wrote."""

from __future__ import annotations

import fakeredis
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection
from workerkit import FakeTrainer, make_worker, running, wait_for

from consumer import events, interactions
from consumer.sender import send
from consumer.topology import Topology
from published import keys, recent

USERS = 2
ROUNDS = 100  # events per user and phase: each user's list is full after the first phase


def _bytes(client: redis.Redis) -> int:
    """What every key of the test database costs, as Redis counts it (all elements sampled)."""
    return sum(client.memory_usage(key, samples=0) or 0 for key in client.scan_iter(count=1000))


def _interactions(first: int) -> list[events.Event]:
    return [events.make_event(events.INTERACTION, tenant="3", user_id=user,
                              item_id=f"engage_article{n}", timestamp=1700000000 + n,
                              rating=n % 2)
            for n in range(first, first + ROUNDS) for user in range(1, USERS + 1)]


def test_redis_memory_stays_bounded_however_many_interaction_events_arrive(
        memory_url, prefix, settings, real_redis):
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)
    sent = 0
    with running(make_worker(memory_url, prefix, settings, real_redis, FakeTrainer())) as worker:
        def phase(batch: list[events.Event]) -> int:
            nonlocal sent
            for event in batch:
                send(connection, topology, event)
            sent += len(batch)
            wait_for(lambda: worker.settler.counts.get("acked") == sent, 30, "events handled")
            return _bytes(real_redis)

        # Given users whose recent lists were filled by 100 interaction events each
        first = _interactions(0)
        full = phase(first)
        # When as many more arrive, and the first ones are delivered again
        more = phase(_interactions(ROUNDS))
        again = phase(first)
    connection.release()
    per_event = (more - full) / (USERS * ROUNDS)
    print(f"\nRedis bytes: {full} after {USERS * ROUNDS} interaction events, {more} after "
          f"{2 * USERS * ROUNDS}, {again} after {USERS * ROUNDS} redelivered: "
          f"{per_event:.1f} bytes per further event")
    # Then Redis holds only the users' lists, no key per event
    assert {k.decode().split(":")[2] for k in real_redis.scan_iter()} == {"recent"}
    assert all(real_redis.llen(keys.recent("3", u)) == recent.MAX_EVENTS
               for u in range(1, USERS + 1))
    # And memory no longer grows with the number of events: under 2 bytes per further event
    assert abs(more - full) < 2 * USERS * ROUNDS and abs(again - more) < 2 * USERS * ROUNDS


def test_a_redelivered_interaction_is_recorded_once(memory_url, prefix, settings, fake_redis):
    # Given an interaction event recorded in its user's list
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)
    event = events.make_event(events.INTERACTION, tenant="3", user_id=8,
                              item_id="engage_article5", timestamp=1700000000, rating=1)
    other = events.make_event(events.INTERACTION, tenant="3", user_id=8,
                              item_id="engage_article6", timestamp=1700000001)
    with running(make_worker(memory_url, prefix, settings, fake_redis, FakeTrainer())) as worker:
        # When it is delivered again, after another event of the same user
        for e in (event, other, event):
            send(connection, topology, e)
        wait_for(lambda: worker.settler.counts.get("acked") == 3)
    connection.release()
    # Then the list has each interaction once, and no marker was left for either
    assert fake_redis.llen(keys.recent("3", 8)) == 2
    assert not list(fake_redis.scan_iter(keys.done("*")))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 3), st.integers(0, 1)),
                max_size=250))
def test_any_sequence_of_deliveries_leaves_each_interaction_once_in_a_bounded_list(deliveries):
    # Given any sequence of deliveries to one user, repeats included (a small pool of items and
    # seconds, so copies are frequent)
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    pushed = []
    for item, second, rating in deliveries:
        event = events.make_event(events.INTERACTION, tenant="3", user_id=8,
                                  item_id=f"engage_article{item}", timestamp=1700000000 + second,
                                  rating=rating)
        if interactions.record(client, event):
            pushed.append(interactions.entry(event).encode())
    # Then no entry is in the list twice, the list is bounded, newest first, and only the event
    # counts that were pushed
    stored = client.lrange(keys.recent("3", 8), 0, -1)
    assert len(stored) == len(set(stored)) <= recent.MAX_EVENTS
    assert stored == pushed[::-1][:recent.MAX_EVENTS]
    assert not list(client.scan_iter(keys.done("*")))
