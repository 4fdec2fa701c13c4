"""The scale-out benchmark's machinery, end to end on a tiny plan (no timing asserted):
two replicas behind the deployed nginx config, one PostgreSQL log, one private Redis.

Skipped without PostgreSQL, redis-server, nginx or wrk (failed under
PDP_REQUIRE_SERVICES=1); the whole run is marked slow, so `make test-fast` leaves it out."""

from __future__ import annotations

import os
import shutil

import pytest

from bench import scaleout
from tests.audit.pgschema import require_postgres

TINY = scaleout.Plan(seconds=1.0, rounds=1, connections=8, trials=2, idle_s=0.5,
                     ceiling_records=300, ceiling_tasks=16)


def test_nginx_config_is_composes_with_names_and_ports_made_local() -> None:
    one = scaleout.nginx_config([4101], 4200)
    two = scaleout.nginx_config([4101, 4102], 4200)
    assert "server 127.0.0.1:4101 max_fails=1 fail_timeout=5s;" in one
    assert "4102" not in one and "pdp-" not in one
    assert "server 127.0.0.1:4102 max_fails=1 fail_timeout=5s;" in two
    assert "listen 127.0.0.1:4200;" in two and "listen 8181;" not in two
    assert "proxy_next_upstream error timeout;" in two  # the deployed retry rule, kept
    with pytest.raises(ValueError, match="more upstreams"):
        scaleout.nginx_config([1, 2, 3], 4200)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 51)]
    assert scaleout.percentile(values, 0.5) == 25.0
    assert scaleout.percentile(values, 0.99) == 50.0  # with 50 trials, p99 is the largest
    assert scaleout.percentile([3.0], 0.99) == 3.0


@pytest.mark.slow
def test_the_whole_run_measures_every_part_on_a_tiny_plan() -> None:
    require_postgres()
    missing = [b for b in ("redis-server", "nginx", "wrk")
               if shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{missing} not installed; PDP_REQUIRE_SERVICES=1 requires them")
        pytest.skip(f"{missing} not installed")
    result = scaleout.measure(TINY)
    rounds = result["rounds"]
    assert sorted(r.replicas for r in rounds) == [1, 2]
    for r in rounds:
        assert r.run.requests > 0 and r.run.not_ok == 0 and r.run.errors == 0
        assert r.records >= r.run.requests  # every answered decision is in the log
        assert 0 < r.commits <= r.records
        assert r.cpu_s["PDP A"] > 0 and r.cpu_s["nginx"] > 0
    assert result["chain"].startswith("verifies")
    top = result["ceiling"]
    assert top["records"] == 2 * TINY.ceiling_records and top["per_commit"] >= 1
    pubsub = result["pubsub"]
    assert pubsub["unseen"] == 0 and len(pubsub["declared"]) == TINY.trials
    assert pubsub["calls_per_change"].get("publish", 0) > 0  # changes went through pub/sub
    text = scaleout.report(result)
    assert "| decisions/s (2 ÷ 1: the scaling ratio" in text
    assert "records/s (one chain, two writers)" in text
