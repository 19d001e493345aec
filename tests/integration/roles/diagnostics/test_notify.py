"""The run's notification, end to end: the diagnostics role's report and fleet entry points
run by ansible-playbook over three local hosts in serial batches, as deploy.yml runs them
(a failing host writes the fleet summary from its rescue, then fails; the rollout stops),
with hardenkit_notify_webhook_url pointing at a real HTTP server in this process. One
message per run, and the URL (its path is the credential) never in Ansible's output.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.hk_testlib import free_port, run_playbook, write_local_run
from tests.unit.roles.diagnostics.test_fleet import LIVE, NEW, OLD, crashed

# The fleet's scenario pair: a module-scoped fixture, imported (``as``: used, not re-defined).
from tests.unit.roles.diagnostics.test_fleet import pair as pair
from tests.unit.roles.diagnostics.test_report import CHANGES

TOKEN = "T0001/B0002/s3cr3t-hook-token"

PLAYBOOK = """\
- name: Deploy the app
  hosts: all
  gather_facts: false
  serial: 1
  max_fail_percentage: 0
  tasks:
    - name: Deploy and check
      block:
        - name: Fail where the run is to fail
          ansible.builtin.fail:
            msg: the release regressed
          when: fails | default(false)
      rescue:
        - name: Write the failing host's report
          ansible.builtin.include_role:
            name: hardenkit.nodeapp.diagnostics
            tasks_from: report
        - name: Note that this host is failing
          ansible.builtin.set_fact:
            diagnostics_fleet_failing: true
        - name: Write the fleet summary from the rescue
          ansible.builtin.include_role:
            name: hardenkit.nodeapp.diagnostics
            tasks_from: fleet
          vars:
            diagnostics_fleet_write: failing
        - name: Fail the host
          ansible.builtin.fail:
            msg: rolled back
    - name: Write the report
      ansible.builtin.include_role:
        name: hardenkit.nodeapp.diagnostics
        tasks_from: report
    - name: Write the fleet summary
      ansible.builtin.include_role:
        name: hardenkit.nodeapp.diagnostics
        tasks_from: fleet
      vars:
        diagnostics_fleet_write: batch_end
"""


class Sink:
    """An HTTP server on loopback that keeps every POST's path and JSON body."""

    def __init__(self, status: int = 204) -> None:
        self.posts: list[tuple[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                sink.posts.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def hosts_of(pair, fail_second: bool) -> dict[str, dict[str, Any]]:
    incident, hardened = pair
    second: dict[str, Any] = {
        "diagnostics_before": hardened,
        "diagnostics_after": hardened,
        "diagnostics_release_attempted": LIVE,
    }
    if fail_second:
        second.update(
            fails=True,
            diagnostics_failed=crashed(hardened),
            diagnostics_outcome="rolled_back",
            diagnostics_release_attempted=NEW,
        )
    return {
        "web-1": {
            "diagnostics_before": incident,
            "diagnostics_after": hardened,
            "diagnostics_changes": CHANGES,
            "diagnostics_release_attempted": LIVE,
        },
        "web-2": second,
        "web-3": {
            "diagnostics_before": hardened,
            "diagnostics_after": hardened,
            "diagnostics_release_attempted": LIVE,
            "diagnostics_release_at_start": OLD,
        },
    }


def deploy(tmp_path: Path, pair, url: str, fail_second: bool, **settings: Any):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_local_run(
        tmp_path,
        hosts_of(pair, fail_second),
        {
            "pm2_reloads": 1,
            "hardenkit_notify_webhook_url": url,
            "hardenkit_notify_allow_http": True,
            **settings,
        },
    )
    (tmp_path / "deploy.yml").write_text(PLAYBOOK)
    proc = run_playbook(tmp_path, "deploy.yml")
    return proc, proc.stdout + proc.stderr


def test_a_rolled_back_deploy_sends_one_message_and_the_url_stays_secret(tmp_path, pair):
    with Sink() as sink:
        url = f"http://127.0.0.1:{sink.port}/services/{TOKEN}"
        proc, out = deploy(tmp_path, pair, url, fail_second=True)
    assert proc.returncode != 0, out  # web-2 failed: the rollout stopped
    assert len(sink.posts) == 1, (sink.posts, out[-3000:])
    path, msg = sink.posts[0]
    assert path == f"/services/{TOKEN}"
    assert msg["source"] == "hardenkit" and msg["play"] == "Deploy the app"
    assert msg["problems"] == ["web-2"]
    web1, web2, web3 = msg["hosts"]
    assert (web1["verdict"], web1["release"]["after"]) == ("improved", LIVE)
    assert (web2["verdict"], web2["outcome"]) == ("rolled_back", "rolled_back")
    assert web2["release"] == {"before": LIVE, "after": LIVE, "attempted": NEW}
    assert Path(web2["report"]).is_file()
    assert (web3["reached"], web3["release"]["after"]) == (False, OLD)
    assert Path(msg["fleet_report"]).is_file()
    assert TOKEN not in out and str(sink.port) not in out


def test_a_good_deploy_sends_nothing_unless_asked_then_once_in_slacks_shape(tmp_path, pair):
    with Sink() as sink:
        url = f"http://127.0.0.1:{sink.port}/hook/{TOKEN}"
        proc, out = deploy(tmp_path / "quiet", pair, url, fail_second=False)
        assert proc.returncode == 0, out[-3000:]
        assert sink.posts == []
        proc, out = deploy(
            tmp_path / "always",
            pair,
            url,
            fail_second=False,
            hardenkit_notify_always=True,
            hardenkit_notify_format="slack",
        )
    assert proc.returncode == 0, out[-3000:]
    assert len(sink.posts) == 1, sink.posts
    _, msg = sink.posts[0]
    assert set(msg) == {"text"}
    lines = msg["text"].split("\n")
    assert lines[0] == "hardenkit Deploy the app of workbot: 1 improved, 2 unchanged"
    assert [line.split(":")[0] for line in lines[1:4]] == ["• web-1", "• web-2", "• web-3"]
    assert TOKEN not in out


def test_a_notification_that_cannot_be_sent_is_warned_about_and_fails_nothing(tmp_path, pair):
    url = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}"  # nothing listens there
    proc, out = deploy(
        tmp_path / "down", pair, url, fail_second=False, hardenkit_notify_always=True
    )
    assert proc.returncode == 0, out[-3000:]
    assert "The run's notification to hardenkit_notify_webhook_url could not be sent" in out
    assert TOKEN not in out
    with Sink(status=500) as sink:
        url = f"http://127.0.0.1:{sink.port}/hook/{TOKEN}"
        proc, out = deploy(
            tmp_path / "refused", pair, url, fail_second=False, hardenkit_notify_always=True
        )
    assert proc.returncode == 0 and len(sink.posts) == 1, out[-3000:]
    assert "could not be sent (status 500)" in out and TOKEN not in out


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"hardenkit_notify_webhook_url": "http://hooks.example.test/x"},
            "hardenkit_notify_allow_http",
        ),
        ({"hardenkit_notify_format": "teams"}, "hardenkit_notify_format"),
    ],
    ids=["http", "format"],
)
def test_bad_settings_are_refused_by_the_validate_step(tmp_path, pair, settings, says):
    write_local_run(
        tmp_path,
        {"web-1": {}},
        {"hardenkit_notify_webhook_url": f"https://hooks.example.test/{TOKEN}", **settings},
    )
    (tmp_path / "validate.yml").write_text(
        "- name: Validate\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Validate the diagnostics input\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardenkit.nodeapp.diagnostics\n"
        "        tasks_from: validate\n"
    )
    proc = run_playbook(tmp_path, "validate.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and says in out, out[-3000:]
    assert TOKEN not in out and "hooks.example.test" not in out
