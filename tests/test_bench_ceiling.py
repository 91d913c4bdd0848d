"""The demo-data ceiling: the replay of the generator must match the export it generated."""

from __future__ import annotations

import argparse

from bench import ceiling


def test_the_oracle_replays_the_demo_generator_and_reports_its_ceiling(capsys):
    args = argparse.Namespace(users=300, items=90, interactions=4000, seed=3, protocol="random")
    assert ceiling.main(args) == 0
    out = capsys.readouterr().out
    value = float(out.rsplit("ceiling_p10=", 1)[1])
    # Users mostly pick their own cluster's items: knowing the clusters ranks far above chance
    assert 0.1 < value <= 1.0
