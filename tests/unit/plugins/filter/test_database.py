"""The connection budget across PM2's workers, and a database URL read without its secrets."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardenkit.nodeapp.plugins.filter.database import db_endpoint, db_pool_plan


@pytest.mark.parametrize(
    ("budget", "workers", "pool"),
    [
        (0, 4, 0),  # no budget: the app keeps its own pool size
        (30, 4, 6),  # 4 workers + 1 (reload or gate) = 5 processes
        (30, 2, 10),
        (10, 1, 5),  # fork mode: the worker and the gate
        (2, 1, 1),
        (3, 2, 1),
        (100, 11, 8),  # rounded down: 12 x 8 = 96
    ],
)
def test_workers_and_the_one_more_process_stay_within_the_budget(budget, workers, pool):
    plan = db_pool_plan(budget, workers)
    assert plan["pool_max"] == pool
    assert plan["error"] == ""
    assert plan["processes"] == workers + 1
    assert plan["pool_max"] * plan["processes"] <= budget


def test_a_budget_below_the_workers_says_what_would_fit():
    plan = db_pool_plan(3, 4)
    assert plan["pool_max"] == 0
    assert "app_db_connection_budget 3" in plan["error"]
    assert "to 5 or more" in plan["error"]
    assert "pm2_instances: 2" in plan["error"]
    # What it proposes does fit.
    assert db_pool_plan(3, 2)["error"] == ""
    assert db_pool_plan(5, 4)["error"] == ""


def test_a_budget_of_one_leaves_nothing():
    plan = db_pool_plan(1, 1)
    assert "leaves no connection" in plan["error"]
    assert "to 2 or more" in plan["error"]


@pytest.mark.parametrize(("budget", "workers"), [(-1, 2), (10, 0), ("many", 2)])
def test_impossible_numbers_are_an_error(budget, workers):
    with pytest.raises(AnsibleFilterError, match="db_pool_plan"):
        db_pool_plan(budget, workers)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:s3cret@db.internal:6432/app", ("postgres", "db.internal", 6432)),
        ("postgresql://app@10.0.0.5/app?sslmode=require", ("postgresql", "10.0.0.5", 5432)),
        ("postgres://app:pw@[2001:db8::1]:5433/app", ("postgres", "2001:db8::1", 5433)),
        ("postgres://app:pw@/app?host=/run/postgresql", ("postgres", "/run/postgresql", 5432)),
        ("mysql://root:pw@mysql.internal/app", ("mysql", "mysql.internal", 3306)),
        (" POSTGRES://u:p@db:5432/x\n", ("postgres", "db", 5432)),
    ],
)
def test_the_address_is_read_and_nothing_else(url, expected):
    got = db_endpoint(url)
    assert (got["scheme"], got["host"], got["port"]) == expected
    assert got["error"] == ""
    assert not any("s3cret" in str(v) or v == "pw" for v in got.values())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "must be the database's URL"),
        (None, "must be the database's URL"),
        ("redis://u:s3cret@cache:6379", "must start with"),
        ("db.internal:5432", "must start with"),
        ("postgres://u:s3cret@db:notaport/x", "its port"),
        ("postgres://u:s3cret@:5432/x", "names no database host"),
    ],
)
def test_a_bad_url_is_named_never_shown(url, words):
    got = db_endpoint(url, "PG_URL")
    assert words in got["error"]
    assert got["error"].startswith("PG_URL in app_env")
    assert "s3cret" not in got["error"]
