"""L2: proxy credentials stay in root-only files, never in a task's environment.

Ansible puts a task's `environment:` on the command line of the process it starts, where
`ps` shows it to every local user and sudo logs it. The node_runtime role's tasks are read
here as they are, their `environment:` rendered with the facts facts.yml records; the files
that hold the credentials are checked for their mode; the download that replaces get_url
behind such a proxy runs against a local proxy that wants them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.hk_testlib import trusted

ROOT = Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "node_runtime"
SECRET = "Pr0xyPass"
PROXY = f"http://u:{SECRET}@proxy.example.com:3128"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def templar(**given: Any) -> Templar:
    variables = {
        **trusted(load(ROLE / "defaults" / "main.yml")),
        "ansible_managed": "Ansible managed",
        "ansible_check_mode": False,
        **given,
        **trusted(
            {
                k: v
                for k, v in load(ROLE / "vars" / "main.yml").items()
                if not k.startswith("__node_runtime_wanted")
            }
        ),
    }
    return Templar(loader=DataLoader(), variables=variables)


def tasks(name: str) -> list[dict[str, Any]]:
    return load(ROLE / "tasks" / name)


def facts(**given: Any) -> dict[str, Any]:
    """What facts.yml's set_fact records for these settings."""
    task = next(
        t
        for t in tasks("facts.yml")
        if t["name"] == "Record the environment for Node.js, npm and pnpm"
    )
    t = templar(**given, **trusted(task["vars"]))
    return {
        k: t.template(trust_as_template(v)) for k, v in task["ansible.builtin.set_fact"].items()
    }


@pytest.mark.parametrize("setting", ["node_runtime_http_proxy", "node_runtime_https_proxy"])
def test_l2_proxy_credentials_never_in_a_task_environment(setting):
    given = {setting: PROXY}
    recorded = facts(**given)
    assert SECRET not in str(recorded["node_runtime_env"])
    assert recorded["node_runtime_env"]["no_proxy"] == "localhost,127.0.0.1,::1"
    # for a step that passes it on stdin (app_release's build)
    assert SECRET in str(recorded["node_runtime_proxy_env"])
    assert recorded["node_runtime_npmrc"] == "/etc/hardenkit/node_runtime/npmrc"
    # every task of the role with an environment, rendered as Ansible would
    t = templar(**given, **recorded, ansible_facts={})
    seen = 0
    for path in sorted((ROLE / "tasks").glob("*.yml")):
        for task in tasks(path.name) or []:
            if "environment" not in task:
                continue
            seen += 1
            env = t.template(trust_as_template(task["environment"]))
            assert SECRET not in str(env), (path.name, task["name"], env)
            if task["name"] == "Install PM2":
                assert env["npm_config_userconfig"] == "/etc/hardenkit/node_runtime/npmrc"
    assert seen >= 2
    # behind a proxy with credentials, pnpm comes through the file-reading download
    # (the condition on the proxy; the other, that pnpm is not unpacked yet, is the same)
    downloads = {
        task["name"]: t.template(
            trust_as_template("{{ " + next(w for w in task["when"] if "proxy" in w) + " }}")
        )
        for task in tasks("pnpm.yml")
        if task["name"].startswith("Download pnpm")
    }
    assert downloads == {
        "Download pnpm": False,
        "Download pnpm through the proxy with credentials": True,
    }


def test_l2_a_proxy_without_credentials_stays_in_the_environment():
    recorded = facts(node_runtime_https_proxy="http://proxy.example.com:3128")
    assert recorded["node_runtime_env"]["https_proxy"] == "http://proxy.example.com:3128"
    assert recorded["node_runtime_env"]["npm_config_https_proxy"] == "http://proxy.example.com:3128"
    assert "http_proxy" not in facts()["node_runtime_env"]
    assert facts()["node_runtime_npmrc"] == ""


def test_l2_files_with_credentials_are_root_only_and_never_diffed():
    by_name = {t["name"]: t for t in tasks("network.yml")}
    # Each file is stated once (vars/main.yml), and the tasks write what the entry says.
    write = by_name["Write the proxy settings for apt, pnpm and git"]
    assert write["diff"] is False
    args = write["ansible.builtin.template"]
    assert (args["mode"], args["owner"], args["group"]) == (
        "{{ item.mode }}",
        "{{ item.owner }}",
        "{{ item.group }}",
    )
    t = templar(node_runtime_http_proxy=PROXY, node_runtime_https_proxy=PROXY)
    wanted = t.template(trust_as_template("{{ __node_runtime_proxy_files }}"))
    files = {Path(f["path"]).name: f for f in wanted}
    for name in ("80hardenkit-proxy", "npmrc", "gitconfig"):
        assert (files[name]["mode"], files[name]["owner"], files[name]["group"]) == (
            "0600",
            "root",
            "root",
        ), name
    assert files["node_runtime"]["state"] == "directory" and files["node_runtime"]["mode"] == "0700"
    # Not even the files' digests reach the log.
    drift = by_name["Read what differs from the proxy settings and the extra CA certificates"]
    assert t.template(trust_as_template(drift["no_log"])) is True
    # what they hold
    t = templar(node_runtime_http_proxy=PROXY, node_runtime_https_proxy=PROXY)
    for name in ("apt-proxy.conf.j2", "proxy.npmrc.j2"):
        text = t.template(trust_as_template((ROLE / "templates" / name).read_text()))
        assert PROXY in text, name
    npmrc = t.template(trust_as_template((ROLE / "templates" / "proxy.npmrc.j2").read_text()))
    assert f"https-proxy={PROXY}\n" in npmrc and "noproxy=localhost,127.0.0.1,::1" in npmrc


# --- the download behind a proxy with credentials, live ---------------------------------------

PAYLOAD = b"pnpm tarball bytes"


class Proxy(BaseHTTPRequestHandler):
    """A forward proxy that wants u:Pr0xyPass and answers every URL itself."""

    def do_GET(self) -> None:
        want = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
        if self.headers.get("Proxy-Authorization") != want:
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="p"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def fetch(npmrc: Path, dest: Path, sha: str) -> subprocess.CompletedProcess:
    script = (ROLE / "files" / "fetch_via_proxy.py").read_text()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(npmrc),
            "http://registry.invalid/pnpm/-/pnpm-1.tgz",
            str(dest),
            sha,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_l2_download_reads_the_proxy_from_the_root_only_file(tmp_path, proxy):
    port = proxy.server_address[1]
    npmrc = tmp_path / "npmrc"
    rendered = templar(node_runtime_http_proxy=f"http://u:{SECRET}@127.0.0.1:{port}").template(
        trust_as_template((ROLE / "templates" / "proxy.npmrc.j2").read_text())
    )
    npmrc.write_text(rendered)
    dest = tmp_path / "pnpm.tgz"
    sha = hashlib.sha512(PAYLOAD).hexdigest()
    # a wrong checksum: nothing is left behind
    bad = fetch(npmrc, dest, "0" * 128)
    assert bad.returncode != 0 and not dest.exists() and list(tmp_path.glob(".fetch.*")) == []
    result = fetch(npmrc, dest, sha)
    assert result.returncode == 0 and result.stdout.strip() == "changed", result.stderr
    assert dest.read_bytes() == PAYLOAD and oct(dest.stat().st_mode & 0o777) == "0o644"
    assert proxy.seen[-1] == "http://registry.invalid/pnpm/-/pnpm-1.tgz"  # type: ignore[attr-defined]
    # already there with that checksum: no second download
    count = len(proxy.seen)  # type: ignore[attr-defined]
    again = fetch(npmrc, dest, sha)
    assert again.stdout.strip() == "ok" and len(proxy.seen) == count  # type: ignore[attr-defined]
    # the credentials are in the file, not on the command line
    assert SECRET not in " ".join([str(npmrc), str(dest), sha])
