"""The one reader of a release's environment file (roles/app_release/files/node-env.cjs),
run by Node: PM2's ecosystem file requires it, the pre-traffic gate preloads it. The
audit's M10: the gate must see exactly what PM2 gives the app (a PEM key's newlines, tabs,
non-ASCII text), where systemd's EnvironmentFile= kept the JSON escapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.pm2service import read_env_file
from tests.hk_testlib import ROOT, trusted

NODE = shutil.which("node")
READER = ROOT / "roles" / "app_release" / "files" / "node-env.cjs"
ENV = {
    "JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
    "GREETING": "Grüße, 世界",
    "TABBED": "a\tb",
    "QUOTED": 'say "hi" \\ $HOME `x`',
    "PORT": "1234",
}


# What the role puts under app_env for every release (vars/main.yml,
# __app_release_identity_env): the release id and the app's Server Actions key.
IDENTITY = {
    "NEXT_DEPLOYMENT_ID": "0123abcd4567",
    "NEXT_SERVER_ACTIONS_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
}


def render_env(env: dict[str, str]) -> str:
    """.hardenkit.env as the role writes it (templates/app.env.j2)."""
    source = (ROOT / "roles" / "app_release" / "templates" / "app.env.j2").read_text()
    templar = Templar(
        loader=DataLoader(),
        variables={
            "app_env": env,
            "__app_release_identity_env": IDENTITY,
            "ansible_managed": "Ansible managed",
        },
    )
    return templar.template(trusted(source))


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_m10_the_gate_reads_the_environment_as_pm2_does(tmp_path: Path):
    env_file = tmp_path / ".hardenkit.env"
    env_file.write_text(render_env(ENV))
    show = "console.log(JSON.stringify(Object.fromEntries(Object.entries(process.env))))"
    # The gate: node --require <reader>, the file named, the kit's variables on top.
    gate = subprocess.run(
        [NODE, "--require", str(READER), "-e", show],
        env={
            "PATH": os.environ["PATH"],
            "HARDENKIT_ENV_FILE": str(env_file),
            "HARDENKIT_FIXED_ENV": "PORT",
            "PORT": "15000",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(gate.stdout)
    for key in ("JWT_PRIVATE_KEY", "GREETING", "TABBED", "QUOTED"):
        assert seen[key] == ENV[key], key
    assert seen["PORT"] == "15000"  # the kit's own wins, as in PM2's ecosystem file
    assert "HARDENKIT_ENV_FILE" not in seen and "HARDENKIT_FIXED_ENV" not in seen
    # PM2's ecosystem file: readEnv(file), the same function.
    pm2 = subprocess.run(
        [
            NODE,
            "-e",
            f"console.log(JSON.stringify(require({json.dumps(str(READER))})"
            f"({json.dumps(str(env_file))})))",
        ],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(pm2.stdout) == {**IDENTITY, **ENV}


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_m10_a_missing_file_is_an_empty_environment_and_a_broken_one_an_error(tmp_path: Path):
    load = f"require({json.dumps(str(READER))})"
    ok = subprocess.run(
        [NODE, "-e", f"console.log(JSON.stringify({load}('{tmp_path}/none')))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(ok.stdout) == {}
    (tmp_path / "bad").write_text("A=not json\n")
    bad = subprocess.run(
        [NODE, "-e", f"{load}('{tmp_path}/bad')"], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "SyntaxError" in bad.stderr


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_names_pm2_service_compares_are_those_node_reads(tmp_path: Path):
    """pm2_service restarts PM2 when a name went away (pm2#3486): it must read the names
    as PM2's reader does, from the file the role writes and from lines it would skip."""
    env_file = tmp_path / ".hardenkit.env"
    env_file.write_text(render_env(ENV) + '\n# a comment\n=nameless\nX_2="="\n')
    out = subprocess.run(
        [
            NODE,
            "-e",
            f"console.log(JSON.stringify(Object.keys(require({json.dumps(str(READER))})"
            f"({json.dumps(str(env_file))}))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert read_env_file(str(env_file)) == set(json.loads(out.stdout)) == {*ENV, *IDENTITY, "X_2"}


def test_app_env_wins_over_the_release_identity():
    """app_env may set the deployment id or the Server Actions key itself: its value, once."""
    text = render_env({"NEXT_DEPLOYMENT_ID": "mine"})
    lines = [line for line in text.splitlines() if line.startswith("NEXT_")]
    assert lines == [
        'NEXT_DEPLOYMENT_ID="mine"',
        f'NEXT_SERVER_ACTIONS_ENCRYPTION_KEY="{IDENTITY["NEXT_SERVER_ACTIONS_ENCRYPTION_KEY"]}"',
    ]
