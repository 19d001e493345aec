"""logscan: tails read from the end, the incident's error lines counted, secrets masked."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils import logscan
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.logscan import (
    merge_counts,
    scan_file,
    scan_lines,
    tail_lines,
)
from tests.hk_testlib import FIXTURES

APP_ERR = str(FIXTURES / "logs" / "workbot-error.log")
APP_OUT = str(FIXTURES / "logs" / "workbot-out.log")
NGINX_ERR = str(FIXTURES / "logs" / "nginx-error.log")


def test_incident_app_log():
    scan = scan_file(APP_ERR, 500)
    assert scan["error"] is None
    assert scan["counts"] == {
        "ENOENT": 4,  # three open() errors and the `code: 'ENOENT'` line
        "EADDRINUSE": 3,
        "heap out of memory": 1,
        "unhandled rejection": 2,
        "upstream": 0,
        "database connections": 0,
    }
    assert scan["samples"]["ENOENT"][-1].endswith("app/api/health/route.js'")
    assert len(scan["samples"]["ENOENT"]) == 3  # at most three, the most recent
    assert "JavaScript heap out of memory" in scan["samples"]["heap out of memory"][0]
    assert "upstream" not in scan["samples"]


def test_sample_lines_have_secrets_masked():
    scan = scan_file(APP_ERR, 500)
    joined = " ".join(s for samples in scan["samples"].values() for s in samples)
    assert "s3cr3t-pw" not in joined
    assert "postgres://workbot:***@127.0.0.1" in joined


def test_nginx_upstream_errors():
    scan = scan_file(NGINX_ERR, 500)
    assert scan["counts"]["upstream"] == 4  # the buffering [warn] line is not one
    assert any("no live upstreams" in s for s in scan["samples"]["upstream"])


def test_clean_log_counts_nothing():
    scan = scan_file(APP_OUT, 500)
    assert sum(scan["counts"].values()) == 0
    assert scan["samples"] == {}


def test_only_the_tail_is_scanned():
    # the last 5 lines hold only the heap error among the patterns
    scan = scan_file(APP_ERR, 5)
    assert scan["lines"] == 5
    assert scan["counts"]["heap out of memory"] == 1
    assert scan["counts"]["ENOENT"] == 0


def test_missing_and_unreadable(tmp_path):
    assert scan_file(str(tmp_path / "nope.log"), 10)["error"] == "missing"
    assert scan_file(str(tmp_path), 10)["error"]  # a directory


def test_samples_truncated(tmp_path):
    log = tmp_path / "long.log"
    log.write_text("Error: ENOENT " + "x" * 1000 + "\n")
    scan = scan_file(str(log), 10)
    assert len(scan["samples"]["ENOENT"][0]) == 300


@pytest.mark.parametrize("count", [1, 3, 100, 4999, 5000, 6000])
def test_tail_lines_big_file(tmp_path, count, monkeypatch):
    monkeypatch.setattr(logscan, "_BLOCK", 1024)  # force many backwards reads
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    got = tail_lines(str(log), count)
    expected = [f"line {i}" for i in range(max(0, 5000 - count), 5000)]
    assert got == expected


def test_tail_lines_no_trailing_newline_and_empty(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("a\nb\nc")
    assert tail_lines(str(log), 2) == ["b", "c"]
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert tail_lines(str(empty), 5) == []
    assert tail_lines(str(log), 0) == []


def test_tail_lines_bounded_for_a_giant_line(tmp_path):
    log = tmp_path / "giant.log"
    log.write_bytes(b"x" * 300_000 + b"\nlast\n")
    assert tail_lines(str(log), 2, max_bytes=4096) == ["last"]


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        (
            "Error: ENOENT: no such file or directory, "
            "open '/workspace/projects/.next/server/app/page.js'",
            "ENOENT",
        ),
        ("Error: listen EADDRINUSE: address already in use 0.0.0.0:5000", "EADDRINUSE"),
        (
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            "heap out of memory",
        ),
        ("(node:1) UnhandledPromiseRejectionWarning: Error: boom", "unhandled rejection"),
        ("Unhandled Rejection at: Promise", "unhandled rejection"),
        ("process.on('unhandledRejection') fired", "unhandled rejection"),
        ("connect() failed (111: Connection refused) while connecting to upstream", "upstream"),
        ("upstream timed out (110: Connection timed out)", "upstream"),
        # The incident's pool against PostgreSQL's max_connections, and pools giving up.
        ("error: sorry, too many clients already", "database connections"),
        (
            "FATAL: remaining connection slots are reserved for roles with the SUPERUSER",
            "database connections",
        ),
        ("PostgresError: code 53300", "database connections"),
        ("Error: timeout exceeded when trying to connect", "database connections"),
        ("Error: Connection terminated due to connection timeout", "database connections"),
        (
            "PrismaClientKnownRequestError: Timed out fetching a new connection from the "
            "connection pool.",
            "database connections",
        ),
        ("KnexTimeoutError: Knex: Timeout acquiring a connection.", "database connections"),
        ("ER_CON_COUNT_ERROR: Too many connections", "database connections"),
    ],
)
def test_each_pattern(line, pattern):
    counts = scan_lines([line])["counts"]
    assert counts[pattern] == 1
    assert sum(counts.values()) == 1


def test_merge_counts():
    total = merge_counts([scan_file(APP_ERR, 500), scan_file(NGINX_ERR, 500)])
    assert total["EADDRINUSE"] == 3
    assert total["upstream"] == 4
