"""hardenkit.nodeapp.build_step, run by the real ansible-playbook on the control node
(connection local): a long step prints its elapsed time and latest line while it runs, its
whole output lands in the log, secrets handed over on standard input never show, and a
failing step fails with its own output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
SECRET = "hk-secret-7f3a9c1e5b"


def play(
    tmp_path: Path, argv: list[str], stdin: str, interval: int = 2, secrets: list[str] | None = None
) -> tuple[subprocess.CompletedProcess, dict]:
    log = tmp_path / "build.log"
    out = tmp_path / "result.json"
    task = {
        "hardenkit.nodeapp.build_step": {
            "argv": argv,
            "stdin": stdin,
            "log": str(log),
            "label": "Build shop 1",
            "timeout": 60,
            "interval": interval,
            "secrets": secrets or [],
        },
        "register": "step",
        "ignore_errors": True,
    }
    keep = {
        "ansible.builtin.copy": {
            "content": "{{ step | to_json }}",
            "dest": str(out),
            "mode": "0600",
        }
    }
    book = tmp_path / "play.yml"
    book.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [task, keep],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            str(book),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done, json.loads(out.read_text())


def test_a_long_step_shows_it_is_alive_and_keeps_its_whole_output(tmp_path):
    script = (
        'eval "$(cat)"; for i in 1 2 3 4 5 6 7; do'
        ' printf "\\033[32mcompiling %s with $TOKEN\\033[0m\\n" $i; sleep 1; done'
    )
    done, step = play(tmp_path, ["bash", "-c", script], f"TOKEN={SECRET}\n", secrets=[SECRET])
    out = done.stdout
    assert done.returncode == 0, out[-3000:]
    assert f"[localhost] Build shop 1: started, log {tmp_path}/build.log" in out
    progress = re.findall(
        r"\[localhost\] Build shop 1: (\d+:\d\d): compiling (\d) with \*\*\*", out
    )
    assert len(progress) >= 2, out
    assert [int(n) for _, n in progress] == sorted(int(n) for _, n in progress)
    assert re.search(r"Build shop 1: done after 0:0[6-9]", out)
    assert SECRET not in out and "\033[" not in out
    # the whole output, as the build wrote it, root's alone
    log = (tmp_path / "build.log").read_text()
    assert [f"compiling {i} with {SECRET}" in log for i in range(1, 8)] == [True] * 7
    assert oct((tmp_path / "build.log").stat().st_mode & 0o777) == "0o600"
    assert step["rc"] == 0 and step["changed"] and not step.get("failed")
    assert "compiling 7 with ***" in step["stdout"] and SECRET not in json.dumps(step)
    assert "== Build shop 1" in log and "== Build shop 1" not in step["stdout"]


def test_a_failing_step_fails_with_its_own_output_only(tmp_path):
    (tmp_path / "build.log").write_text("an earlier step's line\n")
    done, step = play(
        tmp_path, ["bash", "-c", 'eval "$(cat)"; echo "ERR_PNPM_FROZEN $X"; exit 3'], "X=lockfile\n"
    )
    assert step["failed"] and step["rc"] == 3
    assert "Build shop 1 failed with exit status 3" in step["msg"]
    assert str(tmp_path / "build.log") in step["msg"]
    assert "ERR_PNPM_FROZEN lockfile" in step["stdout"]
    assert "an earlier step's line" not in step["stdout"]
    assert "an earlier step's line" in (tmp_path / "build.log").read_text()
    assert "Build shop 1: failed (exit 3) after" in done.stdout


def test_a_quiet_step_still_reports_every_interval(tmp_path):
    done, _ = play(tmp_path, ["bash", "-c", "cat >/dev/null; sleep 3; echo one; sleep 5"], "")
    assert re.search(r"Build shop 1: 0:0[2-3]: \(no output yet\)", done.stdout), done.stdout
    lines = re.findall(r"Build shop 1: \d+:\d\d: one( \(no new output\))?", done.stdout)
    assert len(lines) >= 2, done.stdout
    assert lines[-1] == " (no new output)"
