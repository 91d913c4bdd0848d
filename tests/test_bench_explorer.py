"""``python -m bench explorer`` on a small tenant: it publishes, measures and reports each page."""

from __future__ import annotations

from bench.__main__ import main


def test_the_explorer_benchmark_reports_every_page_and_the_redis_cost(capsys):
    code = main(["explorer", "--users", "400", "--items", "120", "--rounds", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "explorer histories" in out and "B/user" in out and "B/item" in out
    for page in ("find", "tenant", "learner", "learner, cold", "item", "item JSON"):
        assert f"\n{page} " in out
    assert "OK the 100 ms target" in out
