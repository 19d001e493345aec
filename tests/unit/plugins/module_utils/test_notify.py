"""The run's notification: its settings, which write of the fleet summary sends it, and the
message (module_utils/notify.py)."""

import json

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.fleet import fleet_summary
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.notify import (
    body,
    due,
    problems,
    settings_errors,
)

SECRET = "https://hooks.example.test/services/T000/B000/s3cr3t-token"
A, B, C = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"


def row(host, verdict, before=A, live=B, attempted=B, outcome=None):
    return {
        "host": host,
        "app": "workbot",
        "generated_at": "2026-12-07T10:00:00Z",
        "verdict": verdict,
        "outcome": outcome,
        "critical": 0,
        "warning": 0,
        "failed_probes": 0,
        "codes": [],
        "release": {"live": live, "attempted": attempted, "before": before},
        "pm2_restarts": 0,
        "regressions": [],
        "report": f"/r/{host}/x.md",
    }


def fleet(*rows, hosts=("web-1", "web-2", "web-3"), at_start=A):
    by_host = {r["host"]: r for r in rows}
    return fleet_summary(
        list(hosts),
        [by_host.get(h) for h in hosts],
        [at_start] * len(hosts),
        generated_at="2026-12-07T10:00:00Z",
        app="workbot",
    )


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fmt", "always", "allow_http", "named"),
    [
        ("ftp://hooks.example.test/x", "generic", False, False, "hardenkit_notify_webhook_url"),
        ("https://hooks.example.test/a b", "generic", False, False, "hardenkit_notify_webhook_url"),
        ("https://hooks.example.test/x\n", "generic", False, False, "hardenkit_notify_webhook_url"),
        ("https://hooks.example.test/x;y", "generic", False, False, "hardenkit_notify_webhook_url"),
        ("http://hooks.example.test/x", "generic", False, False, "hardenkit_notify_allow_http"),
        (SECRET, "teams", False, False, "hardenkit_notify_format"),
        (SECRET, "generic", "maybe", False, "hardenkit_notify_always"),
        (SECRET, "generic", False, "sometimes", "hardenkit_notify_allow_http"),
        (["https://x.test"], "generic", False, False, "hardenkit_notify_webhook_url"),
    ],
    ids=["ftp", "space", "newline", "semicolon", "http", "format", "always", "allow", "list"],
)
def test_bad_settings_are_named_and_the_url_never_shown(url, fmt, always, allow_http, named):
    errors = settings_errors(url, fmt, always, allow_http)
    assert len(errors) == 1 and named in errors[0], errors
    assert str(url).split("//")[-1] not in errors[0]


@pytest.mark.parametrize(
    ("url", "allow_http"),
    [
        ("", False),
        (None, False),
        (SECRET, False),
        ("http://127.0.0.1:9099/hook", True),
        ("http://127.0.0.1:9099/hook", "yes"),
        ("https://[::1]:8443/hook?x=1&y=2", "false"),
    ],
    ids=["off", "none", "https", "http-allowed", "http-allowed-as-text", "ipv6-query"],
)
def test_good_settings_pass(url, allow_http):
    """Flags given as text, as ``-e name=true`` gives them, count as flags."""
    assert settings_errors(url, "slack", True, allow_http) == []
    assert settings_errors(url, "generic", "true", allow_http) == []


# --- which write sends ---------------------------------------------------------------------

LAST = "web-3"


def test_a_run_where_all_went_well_sends_nothing_unless_asked():
    ok = fleet(row("web-1", "improved"), row("web-2", "unchanged"), row("web-3", "improved"))
    assert problems(ok) == []
    assert due(ok, "batch_end", ["web-1", "web-2", "web-3"], [], LAST) is False
    assert due(ok, "batch_end", ["web-1", "web-2", "web-3"], [], LAST, always=True) is True


def test_with_serial_batches_only_the_last_batch_sends():
    first = fleet(row("web-1", "improved"))
    assert due(first, "batch_end", ["web-1"], [], LAST, always=True) is False
    second = fleet(row("web-1", "improved"), row("web-2", "improved"))
    assert due(second, "batch_end", ["web-2"], [], LAST, always=True) is False
    last = fleet(row("web-1", "improved"), row("web-2", "improved"), row("web-3", "improved"))
    assert due(last, "batch_end", ["web-3"], [], LAST, always=True) is True


def test_the_batch_where_a_host_fails_sends_and_the_rollout_stops_there():
    stopped = fleet(row("web-1", "rolled_back", before=A, live=A, attempted=C))
    # serial 1: web-1 fails alone, from its rescue; web-2 and web-3 are never reached
    assert due(stopped, "failing", ["web-1"], ["web-1"], LAST) is True


def test_a_failing_host_does_not_send_while_others_of_its_batch_go_on():
    one = fleet(row("web-1", "rolled_back", live=A, attempted=C))
    assert due(one, "failing", ["web-1", "web-2"], ["web-1"], "web-2") is False
    # web-2 then finishes its batch (web-1 has left it): that write sends, with both rows
    both = fleet(
        row("web-1", "rolled_back", live=A, attempted=C),
        row("web-2", "improved"),
        hosts=("web-1", "web-2"),
    )
    assert due(both, "batch_end", ["web-2"], [], "web-2") is True


def test_hosts_failing_together_send_once_from_their_rescue():
    both = fleet(
        row("web-1", "failed", live=A), row("web-2", "failed", live=A), hosts=("web-1", "web-2")
    )
    assert due(both, "failing", ["web-1", "web-2"], ["web-1", "web-2"], "web-2") is True


def test_write_must_be_known():
    with pytest.raises(ValueError, match="write must be one of"):
        due(fleet(), "summary", [], [], LAST)


# --- the message ----------------------------------------------------------------------------


def rolled_back_run():
    return fleet(
        row("web-1", "improved", before=A, live=B, attempted=B),
        row("web-2", "rolled_back", before=B, live=B, attempted=C, outcome="rolled_back"),
    )


def test_the_generic_message_holds_each_hosts_verdict_and_releases():
    msg = body(rolled_back_run(), "generic", "Deploy the app", "/r/fleet/x.md")
    assert msg["source"] == "hardenkit" and msg["app"] == "workbot"
    assert msg["problems"] == ["web-2"]
    assert msg["summary"] == (
        "hardenkit Deploy the app of workbot: 1 improved, 1 rolled_back, 1 not reached"
    )
    web1, web2, web3 = msg["hosts"]
    assert web1["release"] == {"before": A, "after": B, "attempted": B}
    assert (web2["verdict"], web2["outcome"]) == ("rolled_back", "rolled_back")
    assert web2["release"] == {"before": B, "after": B, "attempted": C}
    assert web2["report"] == "/r/web-2/x.md"
    assert (web3["reached"], web3["release"]["after"]) == (False, A)
    assert msg["fleet_report"] == "/r/fleet/x.md"
    json.dumps(msg)


def test_the_slack_message_is_text_a_line_per_host():
    msg = body(rolled_back_run(), "slack", "Deploy the app")
    assert set(msg) == {"text"}
    lines = msg["text"].split("\n")
    assert lines[0].startswith("hardenkit Deploy the app of workbot: ")
    assert lines[1] == f"• web-1: improved, release {A} → {B}"
    assert lines[2] == f"• web-2: rolled_back, rolled_back, release {B} (tried {C})"
    assert lines[3] == f"• web-3: not reached, still on {A}"


def test_format_must_be_known():
    with pytest.raises(ValueError, match="format must be one of"):
        body(rolled_back_run(), "teams", "x")
