"""api/connection.py: each process connects to Redis on its own, without asking for its pid."""

from __future__ import annotations

import os

import pytest

from api import connection
from runtime.config import from_env


def _lazy(made: list) -> connection.LazyRedis:
    settings = from_env({"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": "k" * 20})

    def connect(_settings: object, **options: object) -> object:
        client = object()
        made.append(client)
        return client

    return connection.LazyRedis(settings, connect=connect)


def test_one_client_per_process_until_a_fork():
    made: list = []
    lazy = _lazy(made)
    assert lazy() is lazy() is made[0]
    assert len(made) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_connects_anew_and_the_parent_keeps_its_client():
    made: list = []
    lazy = _lazy(made)
    parent = lazy()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a client of its own, made after the fork
        try:
            fresh = lazy() is not parent and len(made) == 2
            os.write(write, b"1" if fresh else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert lazy() is parent and len(made) == 1
