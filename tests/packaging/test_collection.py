"""The collection as users get it, not as the checkout runs it.

``ansible-galaxy collection build`` makes the artifact; the tests check what it carries and
what it leaves out, install it into an empty directory, and run its modules, a lookup, a
role and one of its playbooks by full name against a Docker container with Ansible pointed
only at that directory and the venv's own collections (never at the checkout's
``collections/`` symlink). Last, ``ansible-builder create`` turns execution-environment.yml
into a build context, and the context is checked for the pins the kit is tested with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Where the `ansible` package keeps its collections (ansible.posix, community.general,
# community.docker). Not found through sys.path: tests/conftest.py puts the checkout's
# collections/ there first.
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
IMAGE = "hardenkit-base:debian12"
# Same flags as scripts/demo.sh and the Molecule scenarios: systemd without --privileged.
SYSTEMD_FLAGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "SYS_PTRACE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
]

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# Roles, modules and plugins the kit cannot do without; the artifact is also compared
# file by file with the checkout, so a role added later (watchdog) is covered too.
CORE_ROLES = {
    "app",
    "node_runtime",
    "app_release",
    "dev_cleanup",
    "pm2",
    "nginx_proxy",
    "logrotate",
    "diagnostics",
}
CORE_MODULES = {"diagnose", "reap_processes", "build_check"}
# The only top-level entries an artifact may have: collection content. Anything new at the
# root of the repository must be put here or in galaxy.yml's build_ignore on purpose.
ALLOWED_TOP_LEVEL = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "changelogs",
    "docs",
    "meta",
    "playbooks",
    "plugins",
    "roles",
}
# Repository tooling that must never ship.
NEVER_SHIPPED = {
    "tests",
    "molecule",
    ".venv",
    "examples",
    "reports",
    "bench",
    "collections",
    "inventories",
    "scripts",
    ".cache",
    ".git",
    "execution-environment.yml",
    "requirements.txt",
    "requirements-dev.txt",
    "ansible.cfg",
    "Makefile",
}


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: int = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must succeed; its output in the failure message otherwise."""
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result.stdout


def ansible_env(collections_dir: Path, cfg: Path) -> dict[str, str]:
    """Environment that sees the installed copy and the venv's collections, nothing else.

    Inherited ANSIBLE_* settings (`make` exports ANSIBLE_COLLECTIONS_PATH pointing at the
    checkout) and PYTHONPATH are dropped.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_COLLECTIONS_PATH": f"{collections_dir}{os.pathsep}{SITE_PACKAGES}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    return env


def checkout_files(*tops: str) -> set[str]:
    """Files under these top-level directories of the checkout, as the build walks them."""
    found = set()
    for top in tops:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if "__pycache__" in rel.parts or path.suffix == ".pyc" or path.is_dir():
                continue
            found.add(rel.as_posix())
    return found


# --- a) the artifact ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifact")
    ok(run([BIN / "ansible-galaxy", "collection", "build", "--output-path", out, ROOT], cwd=out))
    built = list(out.glob("hardenkit-nodeapp-*.tar.gz"))
    assert [p.name for p in built] == [f"hardenkit-nodeapp-{GALAXY['version']}.tar.gz"]
    return built[0]


@pytest.fixture(scope="module")
def contents(artifact: Path) -> dict:
    with tarfile.open(artifact) as tar:
        members = tar.getmembers()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        files = json.load(tar.extractfile("FILES.json"))
    return {
        "members": members,
        "names": {m.name for m in members},
        "manifest": manifest,
        "files": {f["name"]: f for f in files["files"] if f["name"] != "."},
    }


def test_manifest_names_the_collection_and_its_dependencies(contents):
    info = contents["manifest"]["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (
        "hardenkit",
        "nodeapp",
        GALAXY["version"],
    )
    assert info["dependencies"] == GALAXY["dependencies"]
    assert contents["manifest"]["file_manifest_file"]["name"] == "FILES.json"


def test_artifact_carries_every_role_module_and_plugin(contents):
    files = contents["files"]
    roles_here = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    assert roles_here >= CORE_ROLES, "roles/ lost a role the kit needs"
    roles_shipped = {n.split("/")[1] for n in files if n.startswith("roles/") and n.count("/") > 1}
    assert roles_shipped == roles_here
    for role in roles_here:
        for must in ("tasks/main.yml", "meta/main.yml", "meta/argument_specs.yml"):
            assert f"roles/{role}/{must}" in files, f"{role}: {must} missing from the artifact"

    modules = {
        Path(n).stem for n in files if n.startswith("plugins/modules/") and n.endswith(".py")
    }
    assert modules >= CORE_MODULES
    for kind in ("module_utils", "filter", "lookup"):
        assert any(n.startswith(f"plugins/{kind}/") and n.endswith(".py") for n in files), kind
    assert "playbooks/harden.yml" in files and "meta/runtime.yml" in files
    # ansible-core 2.19 deprecates strategy plugins outside ansible.builtin: none ships.
    assert not [n for n in files if n.startswith("plugins/strategy/")]

    # File by file: everything in these directories of the checkout ships, nothing else does.
    shipped = {
        n
        for n, f in files.items()
        if f["ftype"] == "file" and n.split("/")[0] in {"roles", "plugins", "playbooks", "meta"}
    }
    assert shipped == checkout_files("roles", "plugins", "playbooks", "meta")


def test_artifact_leaves_out_the_repository_tooling(contents):
    names = contents["names"]
    top = {n.split("/")[0] for n in names}
    assert top <= ALLOWED_TOP_LEVEL, f"unexpected top-level entries: {top - ALLOWED_TOP_LEVEL}"
    assert not top & NEVER_SHIPPED
    # The changelog's releases ship (antsibull-changelog's changelog.yaml), not the fragments
    # of unreleased changes.
    assert "changelogs/changelog.yaml" in contents["files"]
    assert not [n for n in names if n.startswith(("changelogs/fragments", "changelogs/."))]
    assert not [
        n
        for n in names
        if "ansible_collections" in n or "__pycache__" in n or n.endswith(".pyc") or "/.venv/" in n
    ]
    # The checkout's collections/ symlink, or any other link, would ship as a link.
    assert not [m.name for m in contents["members"] if m.issym() or m.islnk()]
    assert set(contents["files"]) == {n.rstrip("/") for n in names} - {
        "MANIFEST.json",
        "FILES.json",
    }


# --- b) installed elsewhere and run from there ---------------------------------------------


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """A systemd container from the local base image, removed afterwards."""
    try:
        reachable = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"docker engine not reachable: {exc}")
    if reachable.returncode != 0:
        pytest.skip(f"docker engine not reachable: {reachable.stderr.strip()}")
    ok(run(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE]))  # `make images`
    name = f"hk-packaging-{uuid.uuid4().hex[:8]}"
    try:
        ok(
            run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    name,
                    "--hostname",
                    name,
                    *SYSTEMD_FLAGS,
                    IMAGE,
                    "/lib/systemd/systemd",
                ]
            )
        )
        yield name
    finally:
        run(["docker", "rm", "-f", name])


def wait_for_systemd(name: str) -> None:
    # Right after `docker run`, systemctl may find no systemd yet ("not been booted with
    # systemd"): ask again until it answers.
    deadline = time.monotonic() + 60
    while True:
        result = run(
            ["docker", "exec", name, "timeout", "30", "systemctl", "is-system-running", "--wait"],
            timeout=60,
        )
        state = result.stdout.strip()
        if state in {"running", "degraded"}:
            return
        assert time.monotonic() < deadline, f"systemd in {name}: {state!r} {result.stderr!r}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def installed(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The artifact installed into an empty directory, and an environment that uses it."""
    assert (SITE_PACKAGES / "ansible_collections" / "ansible" / "posix").is_dir()
    assert not (SITE_PACKAGES / "ansible_collections" / "hardenkit").exists()
    base = tmp_path_factory.mktemp("installed")
    collections_dir = base / "collections"
    cfg = base / "ansible.cfg"
    cfg.write_text(
        textwrap.dedent("""\
        [defaults]
        interpreter_python = auto_silent
        retry_files_enabled = false
        stdout_callback = ansible.builtin.default

        [connection]
        # As in the repository's ansible.cfg: one `docker exec` per task instead of three.
        pipelining = true
        """)
    )
    env = ansible_env(collections_dir, cfg)
    # No --no-deps: ansible.posix and community.general, galaxy.yml's dependencies, are
    # resolved against the `ansible` package in the venv (on ANSIBLE_COLLECTIONS_PATH), so
    # --offline succeeds only if what galaxy.yml asks for is really there.
    out = ok(
        run(
            [
                BIN / "ansible-galaxy",
                "collection",
                "install",
                artifact,
                "-p",
                collections_dir,
                "--offline",
            ],
            env=env,
            cwd=base,
        )
    )
    assert "hardenkit.nodeapp:" in out and "was installed successfully" in out
    return {
        "base": base,
        "env": env,
        "path": collections_dir / "ansible_collections" / "hardenkit" / "nodeapp",
    }


def test_ansible_finds_the_installed_copy_not_the_checkout(installed):
    for kind, name, rel in (
        ("module", "diagnose", "plugins/modules/diagnose.py"),
        ("lookup", "source_hash", "plugins/lookup/source_hash.py"),
    ):
        doc = json.loads(
            ok(
                run(
                    [BIN / "ansible-doc", "-t", kind, "--json", f"hardenkit.nodeapp.{name}"],
                    env=installed["env"],
                    cwd=installed["base"],
                )
            )
        )
        filename = doc[f"hardenkit.nodeapp.{name}"]["doc"]["filename"]
        assert filename == str(installed["path"] / rel)


PLAYBOOK = """\
---
- name: Modules, a lookup and a role of the installed hardenkit.nodeapp
  hosts: app_servers
  gather_facts: false
  tasks:
    - name: Diagnose the bare host
      hardenkit.nodeapp.diagnose:
        app_name: "{{ app_name }}"
        app_root: /srv/pkgtest
        probe_timeout: 2
      register: diagnosis

    - name: Find the stray sleep in check mode
      hardenkit.nodeapp.reap_processes: &reap
        patterns: ['^nodemon 3217$']
        scope_paths: [/srv/pkgtest]
        timeout: 5
      check_mode: true
      register: reap_check

    - name: Stop the stray sleep
      hardenkit.nodeapp.reap_processes: *reap
      register: reap

    - name: Check a build whose API route file is missing
      hardenkit.nodeapp.build_check:
        path: /srv/pkgtest/incomplete
        fail_on_incomplete: false
      register: build_incomplete

    - name: Check a complete build
      hardenkit.nodeapp.build_check:
        path: /srv/pkgtest/complete
      register: build_complete

    - name: Give the logrotate role a bad size through its validate entry point
      block:
        - name: Validate the logrotate settings
          ansible.builtin.include_role:
            name: hardenkit.nodeapp.logrotate
            tasks_from: validate
          vars:
            logrotate_max_size: lots
      rescue:
        - name: Keep the rejection
          ansible.builtin.set_fact:
            logrotate_rejected: "{{ ansible_failed_result.msg }}"

    - name: Keep the results for the test
      ansible.builtin.copy:
        dest: "{{ work_dir }}/results.json"
        content: "{{ results | to_nice_json }}"
        mode: "0644"
      delegate_to: localhost
      vars:
        results:
          diagnosis: "{{ diagnosis }}"
          reap_check: "{{ reap_check }}"
          reap: "{{ reap }}"
          build_incomplete: "{{ build_incomplete }}"
          build_complete: "{{ build_complete }}"
          logrotate_rejected: "{{ logrotate_rejected | default('not rejected') }}"
          source_hash: "{{ lookup('hardenkit.nodeapp.source_hash', app_src) }}"

# Its diagnostics role (by full name, with its dependency hardenkit.nodeapp.app, a filter,
# a template and vars files) diagnoses the host and writes the report.
- name: The collection's own diagnose playbook
  ansible.builtin.import_playbook: hardenkit.nodeapp.diagnose
  vars:
    hardenkit_reports_dir: "{{ work_dir }}/reports"
"""


NEXT_BUILDS = """\
for release in incomplete complete; do
    server=/srv/pkgtest/$release/.next/server
    mkdir -p "$server/app/api/health"
    echo pkgtest-build > "/srv/pkgtest/$release/.next/BUILD_ID"
    echo '{"/page": "app/page.js", "/api/health/route": "app/api/health/route.js"}' \\
        > "$server/app-paths-manifest.json"
    echo 'module.exports = {}' > "$server/app/page.js"
done
echo 'module.exports = {}' > /srv/pkgtest/complete/.next/server/app/api/health/route.js
"""


def test_modules_roles_and_playbooks_run_from_the_installed_copy(container, installed, tmp_path):
    work = tmp_path
    app_src = work / "app"
    app_src.mkdir()
    (app_src / "package.json").write_text('{"name": "pkgtest", "private": true}\n')
    (app_src / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    (work / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "app_servers": {
                            "hosts": {container: {}},
                            "vars": {
                                "ansible_connection": "docker",
                                "ansible_user": "root",
                                "ansible_python_interpreter": "/usr/bin/python3",
                                "app_name": "pkgtest",
                                "app_src": str(app_src),
                                "work_dir": str(work),
                            },
                        }
                    }
                }
            }
        )
    )
    (work / "site.yml").write_text(PLAYBOOK)

    wait_for_systemd(container)
    # Two Next.js builds, one lacking an API route file (the incident's ENOENT), and two
    # copies of a harmless "dev server": one in the app's directory (in scope, to be
    # stopped) and one elsewhere (same command line, to be left alone).
    ok(run(["docker", "exec", container, "sh", "-euc", NEXT_BUILDS]))
    # (named nodemon: only a dev tool by its first token is ever a target).
    for cwd in ("/srv/pkgtest", "/tmp"):
        ok(
            run(
                [
                    "docker",
                    "exec",
                    "-d",
                    "-w",
                    cwd,
                    container,
                    "bash",
                    "-c",
                    "exec -a nodemon sleep 3217",
                ]
            )
        )

    played = run(
        [BIN / "ansible-playbook", "-i", work / "hosts.yml", work / "site.yml"],
        env=installed["env"],
        cwd=work,
        timeout=300,
    )
    ok(played)
    results = json.loads((work / "results.json").read_text())
    sleeps_left = run(["docker", "exec", container, "pgrep", "-f", "-x", "nodemon 3217"])

    diagnosis = results["diagnosis"]
    assert diagnosis["changed"] is False
    assert diagnosis["facts"]["cpu_count"] >= 1
    assert diagnosis["facts"]["memory"], diagnosis["facts"]
    codes = {f["code"] for f in diagnosis["findings"]}
    # Nothing listens on the app port or port 80: the probe fails, no proxy in front.
    assert {"route_failed", "no_reverse_proxy"} <= codes, diagnosis["findings"]
    assert all(f["severity"] in {"critical", "warning", "info"} for f in diagnosis["findings"])
    assert all(p["ok"] is False for p in diagnosis["probes"])

    check, reap = results["reap_check"], results["reap"]
    assert [(p["cwd"], p["how"]) for p in check["stopped"]] == [("/srv/pkgtest", "check_mode")]
    assert [(p["cwd"], p["how"]) for p in reap["stopped"]] == [("/srv/pkgtest", "SIGTERM")]
    assert [p["cwd"] for p in reap["left_alone"]] == ["/tmp"]
    assert "scope" in reap["left_alone"][0]["reason"]
    assert len(sleeps_left.stdout.split()) == 1, "the out-of-scope sleep must still run"

    incomplete, complete = results["build_incomplete"], results["build_complete"]
    assert incomplete["complete"] is False
    assert incomplete["missing"] == [".next/server/app/api/health/route.js"]
    assert complete["complete"] is True and complete["build_id"] == "pkgtest-build"
    assert sorted(complete["routes"]) == ["/api/health/route", "/page"]

    assert "logrotate_max_size" in results["logrotate_rejected"]
    assert '"lots"' in results["logrotate_rejected"]

    assert len(results["source_hash"]) == 64
    int(results["source_hash"], 16)

    report_dir = work / "reports" / container
    report = json.loads((report_dir / "latest.json").read_text())
    assert report["app"] == "pkgtest"
    assert report["verdict"] == "unchanged"
    assert "route_failed" in {f["code"] for f in report["before"]["findings"]}
    assert "pkgtest" in (report_dir / "latest.md").read_text()


# --- c) the execution environment -----------------------------------------------------------


def pins(requirements_txt: Path) -> dict[str, str]:
    out = {}
    for line in requirements_txt.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[name.split("[")[0].lower()] = version
    return out


def shipped_version(collection: str) -> Version:
    """Version of a collection in the `ansible` package installed from requirements.txt."""
    namespace, name = collection.split(".")
    manifest = SITE_PACKAGES / "ansible_collections" / namespace / name / "MANIFEST.json"
    return Version(json.loads(manifest.read_text())["collection_info"]["version"])


@pytest.fixture(scope="module")
def ee_context(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`ansible-builder create` on a copy of the EE definition beside the built artifact.

    A copy, because the definition takes the artifact from beside itself and the test must
    not write into the checkout; the files it names are copied with it.
    """
    base = tmp_path_factory.mktemp("ee")
    src = base / "src"
    src.mkdir()
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    shutil.copy(ROOT / "execution-environment.yml", src)
    for dep in ("galaxy", "python", "system"):
        named = definition["dependencies"].get(dep)
        if isinstance(named, str):
            shutil.copy(ROOT / named, src)
    shutil.copy(artifact, src)
    context = base / "context"
    ok(
        run(
            [
                BIN / "ansible-builder",
                "create",
                "--file",
                src / "execution-environment.yml",
                "--context",
                context,
                "--output-filename",
                "Containerfile",
            ],
            cwd=base,
        )
    )
    return {
        "definition": definition,
        "context": context,
        "containerfile": (context / "Containerfile").read_text(),
    }


def build_arg(containerfile: str, name: str) -> str:
    for line in containerfile.splitlines():
        if line.startswith(f"ARG {name}="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError(f"no ARG {name} in the Containerfile")


def test_ee_installs_the_pinned_ansible_core_and_runner(ee_context):
    refs = build_arg(ee_context["containerfile"], "ANSIBLE_INSTALL_REFS").split()
    tested = pins(ROOT / "requirements.txt")
    assert f"ansible-core=={tested['ansible-core']}" in refs
    runner = [r for r in refs if r.startswith("ansible-runner")]
    assert len(runner) == 1 and "==" in runner[0], refs
    assert build_arg(ee_context["containerfile"], "PYCMD").startswith("/usr/bin/python3")


def test_ee_installs_the_collections_of_requirements_yml(ee_context):
    in_context = yaml.safe_load((ee_context["context"] / "_build" / "requirements.yml").read_text())
    assert in_context == yaml.safe_load((ROOT / "requirements.yml").read_text())
    wanted = {c["name"]: c["version"] for c in in_context["collections"]}
    # hardenkit.nodeapp's own dependencies are among them, with the same floors.
    for name, version in GALAXY["dependencies"].items():
        assert wanted.get(name) == version, name
    # The tested control node satisfies every floor: the `ansible` package pinned in
    # requirements.txt carries at least that version.
    for name, spec in wanted.items():
        assert spec.startswith(">="), f"{name}: {spec}"
        assert shipped_version(name) >= Version(spec[2:]), name
    assert (
        "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml"
    ) in ee_context["containerfile"]


def test_ee_installs_the_built_artifact_after_its_dependencies(ee_context, artifact):
    copied = ee_context["context"] / "_build" / "hardenkit" / artifact.name
    assert (
        hashlib.sha256(copied.read_bytes()).digest()
        == hashlib.sha256(artifact.read_bytes()).digest()
    )
    lines = ee_context["containerfile"].splitlines()
    deps = next(
        i for i, x in enumerate(lines) if "-r requirements.yml" in x and "collection install" in x
    )
    own = next(i for i, x in enumerate(lines) if "/build/hardenkit/hardenkit-nodeapp-" in x)
    assert deps < own, "the artifact must be installed after the collections it depends on"
    assert "--offline" in lines[own]
    bindep = (ee_context["context"] / "_build" / "bindep.txt").read_text().split("\n")
    assert "tar" in bindep  # app_release packs app_src with tar on the control node


@pytest.mark.parametrize("artifacts", [1, 0, 2], ids=["one", "none", "two"])
def test_ee_install_step_takes_exactly_one_artifact(ee_context, artifact, tmp_path, artifacts):
    """The artifact's RUN step, run here with /build and the image's collection path moved
    into tmp_path; the image has the requirements.yml collections where the venv has them."""
    step = next(
        x
        for x in ee_context["containerfile"].splitlines()
        if "/build/hardenkit/hardenkit-nodeapp-" in x
    )
    assert step.startswith("RUN ")
    build, collections_dir = tmp_path / "build", tmp_path / "collections"
    (build / "hardenkit").mkdir(parents=True)
    for i in range(artifacts):
        shutil.copy(artifact, build / "hardenkit" / f"hardenkit-nodeapp-0.{i}.0.tar.gz")
    script = (
        step[len("RUN ") :]
        .replace("/build/", f"{build}/")
        .replace("/usr/share/ansible/collections", str(collections_dir))
    )
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    result = run(["sh", "-c", script], env=ansible_env(collections_dir, cfg), cwd=tmp_path)
    installed = collections_dir / "ansible_collections" / "hardenkit" / "nodeapp" / "MANIFEST.json"
    if artifacts == 1:
        ok(result)
        assert installed.is_file()
    else:
        assert result.returncode != 0
        assert "need exactly one hardenkit-nodeapp-*.tar.gz" in result.stderr
        assert not installed.exists()
