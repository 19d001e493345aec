#!/usr/bin/python3
"""hardenkit watchdog: probe an app's health, reload or restart it when it stays unhealthy.

Run by a systemd timer (one oneshot run per interval) with a JSON config written by the
hardenkit.nodeapp.watchdog role:

    hardenkit-watchdog.py /etc/hardenkit/watchdog/<app>.json

Each run probes the health path directly on the app's port and through Nginx. After
``failures_before_action`` failed runs in a row it acts:

* the app fails directly: ``systemctl reload <pm2 unit>`` (PM2's graceful startOrReload)
  first; if the app still fails ``failures_before_action`` runs later, ``systemctl restart``;
* only the path through Nginx fails: ``systemctl reload-or-restart nginx``: a graceful
  reload of a running Nginx (its master checks the new configuration and keeps the old one
  if that fails; no connection drops), a start of a stopped one (whose unit runs ``nginx -t``
  first). Never a restart of a running Nginx: an app can answer differently through Nginx
  than directly, and that must not drop every site's connections.

Within ``deploy_grace`` seconds of a release switch (the ``current`` link's mtime) it
does not probe: the deploy's own checks decide and roll back.

Every run also asks the app's database (``database``: host and port, never the URL's
credentials) for a connection. When it takes none, the watchdog says so and alerts once
per outage, and while it is away it does not reload or restart a failing app: new workers
would only add a storm of reconnections to a database that is away. It counts failures
again only once the database is back, so the app's pool gets ``failures_before_action``
runs to reconnect by itself. Only a PostgreSQL server is connected to (closed before a
byte is sent, which it does not log), its name resolved within 2 s; a MySQL server counts
such connections against the client, so it is never probed.

Never more than ``max_actions`` actions within ``action_window`` seconds: past that the
watchdog logs that it holds off and alerts once. Every probe failure, action and
recovery is logged to the journal with its reason (syslog level prefixes), and optionally
POSTed as JSON to a webhook (an action twice: when it starts and with its result). The
webhook must be https unless ``webhook_allow_http`` is set, and a redirect from it is a
failed alert: it is never followed (urllib would send the token to the new URL).
A PM2 unit stopped on purpose (inactive, not failed) is
left alone.

With ``metrics_file`` set it writes, atomically on every run, Prometheus text for
node_exporter's textfile collector: each probe's result and latency, the PM2 unit's workers
(its cgroup's processes but the daemon) and how many it has started, the actions by kind,
the live release, the last run's verdict (left by the run, tasks/run_record.yml) and the
database's reachability and the app's connections to it
(``docs/metrics.md`` names them; ``docs/alerts.yml`` alerts on them).

Standard library only, and the kit's own ``dbcheck`` (installed beside this file, as the
collection ships it); state lives in one JSON file.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pwd
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# The collection's own reader of the database, installed beside this file in its package
# tree (roles/watchdog/vars/main.yml): the diagnosis and the watchdog judge it alike.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ansible_collections.hardenkit.nodeapp.plugins.module_utils import dbcheck

# journald reads these prefixes as the line's priority (SyslogLevelPrefix=yes).
ERR, WARNING, NOTICE, INFO = "<3>", "<4>", "<5>", "<6>"


@dataclass
class Probe:
    """One probe's outcome: ok, and what happened (status or error) for the log."""

    ok: bool
    detail: str
    seconds: float | None = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the 3xx reaches the caller as an HTTPError.

    urllib's own handler would send the request's custom headers (a webhook token) on to
    whatever host the Location names, as a GET.
    """

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def probe(url: str, expect_status: int, timeout: float, host_header: str = "") -> Probe:
    """GET ``url`` without following redirects; ok when the status is ``expect_status``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # a local probe of our own Nginx, by address
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=ctx), urllib.request.ProxyHandler({})
    )
    req = urllib.request.Request(url, headers={"User-Agent": "hardenkit-watchdog"})
    if host_header:
        req.add_header("Host", host_header)
    start = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except TimeoutError:
        return Probe(False, f"no answer within {timeout:g} s")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(False, f"{type(reason).__name__}: {reason}")
    took = time.monotonic() - start
    if status == expect_status:
        return Probe(True, f"{status} in {took * 1000:.0f} ms", took)
    return Probe(False, f"{status} (expected {expect_status}) in {took * 1000:.0f} ms", took)


def check_database(db: dict[str, Any] | None, uid: int | None) -> dict[str, Any] | None:
    """``dbcheck.check``: whether the database answers (a PostgreSQL server only; its name
    resolved within 2 s) and the app's connections to it; None without a database."""
    if not db or not db.get("host"):
        return None
    return dbcheck.check(db, uid)


def database_probe(facts: dict[str, Any] | None) -> Probe | None:
    """The database as a probe for ``decide``; None when it was not asked (no database, or
    a MySQL server, which is never connected to)."""
    if not facts or facts["reachable"] is None:
        return None
    where = facts["host"] if facts["host"].startswith("/") else f"{facts['host']}:{facts['port']}"
    if facts["reachable"]:
        return Probe(True, f"database {where} answers")
    return Probe(False, f"database {where} takes no connection ({facts['error']})")


def decide(
    state: dict[str, Any],
    direct: Probe,
    upstream: Probe | None,
    now: float,
    cfg: dict[str, Any],
    database: Probe | None = None,
) -> tuple[str | None, str, list[tuple[str, str]]]:
    """Update ``state`` for one run; return (action or None, reason, log lines).

    Pure: no I/O, so the policy is unit-tested. Actions are ``reload``, ``restart``
    (the PM2 unit) and ``reload-nginx``; ``hold`` means one was due but the bound of
    actions per window was reached; ``db_down`` that the app's database (``database``,
    asked on every run) takes no connection: said and alerted once per outage, whether
    the app fails or not, and while it is away a failing app is neither reloaded nor
    restarted; ``recovered`` that the app is healthy again after failures, or its
    database back (an event to report, nothing to do).
    """
    logs: list[tuple[str, str]] = []
    threshold = int(cfg["failures_before_action"])
    window = float(cfg["action_window"])
    state["actions"] = [a for a in state.get("actions", []) if now - a["time"] < window]
    db_away = database is not None and not database.ok

    if db_away:
        assert database is not None
        first = not state.get("db_down")
        state["db_down"] = True
        if direct.ok:
            reason = f"{database.detail}; the app still answers {cfg['health_path']}"
            if first:
                logs.append((ERR, f"{reason}: alerting once, nothing to do on this host"))
                return "db_down", reason, logs
        else:
            state.update(failures=0, kind="app")
            reason = f"the app fails (direct {direct.detail}) and {database.detail}"
            # Said once per outage: when the app fails with the database away, or starts
            # failing while it is away.
            held = not state.get("db_hold")
            state["db_hold"] = True
            if held:
                logs.append(
                    (
                        ERR,
                        f"{reason}: not reloading the app while its database is away; acting "
                        "again only if the app still fails once the database is back",
                    )
                )
            return ("db_down" if first else None), reason, logs
    elif state.get("db_down") and database is not None and not direct.ok:
        state.update(db_down=False, db_hold=False)
        logs.append((NOTICE, f"{database.detail} again; the app still fails"))

    if direct.ok and (upstream is None or upstream.ok):
        if db_away:  # said above; nothing else to do while it is away
            return None, "", logs
        if state.get("failures", 0) or state.get("episode_actions", 0) or state.get("db_down"):
            logs.append(
                (
                    NOTICE,
                    f"healthy again after {state.get('failures', 0)} failed probe(s) "
                    f"and {state.get('episode_actions', 0)} action(s)"
                    + (", its database away until now" if state.get("db_down") else "")
                    + f": direct {direct.detail}"
                    + (f", via nginx {upstream.detail}" if upstream else ""),
                )
            )
            action_taken = "recovered"
        else:
            action_taken = None
        state.update(
            failures=0, episode_actions=0, kind=None, held=False, db_down=False, db_hold=False
        )
        return action_taken, "", logs

    kind = "app" if not direct.ok else "nginx"
    if state.get("kind") != kind:
        state.update(failures=0, episode_actions=0, held=False)
    state["kind"] = kind
    state["failures"] = state.get("failures", 0) + 1
    reason = (
        f"{state['failures']} failed probe(s) in a row of {cfg['health_path']}: "
        f"direct {direct.detail}" + (f", via nginx {upstream.detail}" if upstream else "")
    )
    logs.append((WARNING, f"probe failed ({state['failures']}/{threshold}): {reason}"))
    if state["failures"] < threshold:
        return None, reason, logs

    if kind == "app":
        action = "reload" if state.get("episode_actions", 0) == 0 else "restart"
    else:
        action = "reload-nginx"
    if len(state["actions"]) >= int(cfg["max_actions"]):
        if not state.get("held"):
            logs.append(
                (
                    ERR,
                    f"would {action}, but {len(state['actions'])} action(s) in the last "
                    f"{window:g} s already (max {cfg['max_actions']}): holding off; {reason}",
                )
            )
            state["held"] = True
            return "hold", reason, logs
        return None, reason, logs
    state["actions"].append({"time": now, "action": action, "reason": reason})
    state["episode_actions"] = state.get("episode_actions", 0) + 1
    state["failures"] = 0  # the next threshold runs judge the action
    return action, reason, logs


# What ``decide`` may do, each counted in the metrics (``recovered`` is an event, not an act).
ACTION_KINDS = ("reload", "restart", "reload-nginx", "hold", "db_down")


def unit_show(unit: str) -> dict[str, str]:
    """The PM2 unit's state, main process and cgroup, from one ``systemctl show``."""
    props = ("ActiveState", "MainPID", "ControlGroup")
    _, out = systemctl("show", *(f"--property={p}" for p in props), unit)
    found = dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)
    return {p: found.get(p, "") for p in props}


# Where a unit's cgroup lists its processes: the unified hierarchy (Debian 12 and 13), or
# its mount beside the v1 controllers (a hybrid host), or systemd's own v1 hierarchy.
CGROUP_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")


def unit_workers(show: dict[str, str], mounts: tuple[str, ...] = CGROUP_MOUNTS) -> list[int] | None:
    """The processes of the unit's cgroup but its main one (PM2's daemon): its workers.
    None when the cgroup cannot be read (the unit is not running)."""
    if not show.get("ControlGroup"):
        return None
    for mount in mounts:
        try:
            with open(f"{mount}{show['ControlGroup']}/cgroup.procs", encoding="ascii") as fh:
                pids = [int(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            continue
        return sorted(pid for pid in pids if str(pid) != show.get("MainPID"))
    return None


def count_starts(state: dict[str, Any], workers: list[int] | None) -> None:
    """Add the workers not seen at the previous run to ``worker_starts`` (PM2 started them:
    a crash's restart, a reload or a deploy). The first run only records what runs."""
    if workers is None:
        return
    if "workers" in state:
        new = set(workers) - set(state["workers"])
        state["worker_starts"] = state.get("worker_starts", 0) + len(new)
    state["workers"] = workers


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(
    cfg: dict[str, Any],
    state: dict[str, Any],
    probes: dict[str, Probe],
    workers: list[int] | None,
    database: dict[str, Any] | None,
    release: str,
    now: float,
    run: dict[str, Any] | None = None,
) -> str:
    """Prometheus text for node_exporter's textfile collector. A metric whose source was
    not read this run (no probe during a deploy's grace, no database) is left out."""
    lines: list[str] = []
    app = {"app": cfg["app"]}

    def family(name: str, kind: str, text: str, samples: list[tuple[dict, float]]) -> None:
        if not samples:
            return
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        for labels, value in samples:
            body = ",".join(f'{k}="{_label(str(v))}"' for k, v in {**app, **labels}.items())
            lines.append(f"{name}{{{body}}} {value:g}")

    path = {"path": cfg["health_path"]}
    family(
        "hardenkit_probe_up",
        "gauge",
        "Whether the health probe answered its expected status (1) or not (0).",
        [({**path, "route": r}, int(p.ok)) for r, p in probes.items()],
    )
    family(
        "hardenkit_probe_duration_seconds",
        "gauge",
        "How long the health probe took to answer.",
        [({**path, "route": r}, p.seconds) for r, p in probes.items() if p.seconds is not None],
    )
    if workers is not None:
        family(
            "hardenkit_pm2_workers_online",
            "gauge",
            "Processes of the PM2 unit besides its daemon: the app's workers.",
            [({}, len(workers))],
        )
    family(
        "hardenkit_pm2_worker_starts_total",
        "counter",
        "Workers PM2 started (a restart, a reload or a deploy), seen by the watchdog.",
        [({}, state.get("worker_starts", 0))],
    )
    counts = state.get("counts", {})
    family(
        "hardenkit_watchdog_actions_total",
        "counter",
        "What the watchdog did, by kind (hold: an action held off; db_down: none while "
        "the database is away).",
        [({"action": kind}, counts.get(kind, 0)) for kind in ACTION_KINDS],
    )
    family(
        "hardenkit_watchdog_last_run_timestamp_seconds",
        "gauge",
        "When the watchdog last ran.",
        [({}, int(now))],
    )
    if release:
        family(
            "hardenkit_release_info",
            "gauge",
            "The live release (the current link).",
            [({"release": release}, 1)],
        )
    if run and run.get("verdict"):
        family(
            "hardenkit_run_verdict",
            "gauge",
            "1, for the verdict of the last hardenkit run on this host (its report's).",
            [({"verdict": run["verdict"]}, 1)],
        )
        family(
            "hardenkit_run_finished_timestamp_seconds",
            "gauge",
            "When the last hardenkit run on this host wrote its report.",
            [({}, int(run.get("finished") or 0))],
        )
    if database:
        if database["reachable"] is not None:
            family(
                "hardenkit_database_up",
                "gauge",
                "Whether the app's database took a connection (1) or not (0).",
                [({}, int(database["reachable"]))],
            )
        if database["connections"] is not None:
            family(
                "hardenkit_database_connections",
                "gauge",
                "Established connections from the app's user to its database.",
                [({}, database["connections"])],
            )
        if database["budget"]:
            family(
                "hardenkit_database_connection_budget",
                "gauge",
                "The connections the app may hold (app_db_connection_budget).",
                [({}, database["budget"])],
            )
    return "\n".join(lines) + "\n"


def write_metrics(path: str, text: str) -> None:
    """Replace ``path`` at once, readable by node_exporter's user (the unit's umask is
    0077); the temporary name does not end in .prom, which the collector would read."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o644)
        fh.write(text)
    os.replace(tmp, path)


def systemctl(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=600, check=False
    )
    return proc.returncode, (proc.stderr or proc.stdout).strip()


def alert(cfg: dict[str, Any], event: dict[str, Any]) -> None:
    """POST the event as JSON to the webhook, if one is configured; never raises.

    Only over https (plain http when ``webhook_allow_http``), and never through a redirect:
    a 3xx is a failed alert. The log names neither the URL (a Slack-style webhook carries
    its credential in it) nor the headers.
    """
    url = cfg.get("webhook_url") or ""
    if not url:
        return
    scheme = url.split(":", 1)[0].lower()
    if scheme != "https" and not (scheme == "http" and cfg.get("webhook_allow_http")):
        log(WARNING, "alert not sent: the webhook URL is not https (webhook_allow_http is off)")
        return
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **(cfg.get("webhook_headers") or {})}
    opener = urllib.request.build_opener(NoRedirect)
    try:
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with opener.open(req, timeout=float(cfg.get("webhook_timeout", 5))) as resp:
            log(INFO, f"alert sent ({resp.status})")
    except urllib.error.HTTPError as exc:
        exc.close()
        what = ", a redirect (not followed)" if 300 <= exc.code < 400 else ""
        log(WARNING, f"alert not sent: the webhook answered {exc.code}{what}")
    except TimeoutError:
        log(WARNING, "alert not sent: no answer from the webhook in time")
    except urllib.error.URLError as exc:
        reason = exc.reason
        detail = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        log(WARNING, f"alert not sent: {detail}")
    except OSError as exc:
        log(WARNING, f"alert not sent: {type(exc).__name__}: {exc}")
    except ValueError as exc:
        # http.client's message quotes the bad URL or header value, which may be the secret.
        log(WARNING, f"alert not sent: {type(exc).__name__} (a malformed URL or header)")


def log(level: str, message: str) -> None:
    print(f"{level}{message}", flush=True)


def load_state(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(path: str, state: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    os.replace(tmp, path)


def act(action: str, cfg: dict[str, Any]) -> tuple[int, str]:
    unit = cfg["pm2_service"]
    if action == "reload":
        return systemctl("reload", unit)
    if action == "restart":
        return systemctl("restart", unit)
    # Nginx only: reloaded when it runs (nginx checks the new configuration and keeps the
    # old one if it is broken), started when it does not (nginx.service runs nginx -t first).
    return systemctl("reload-or-restart", "nginx")


def app_uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except (KeyError, TypeError):
        return None


def live_release(link: str) -> str:
    try:
        return os.path.basename(os.readlink(link).rstrip("/"))
    except (OSError, TypeError):
        return ""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    state_path = cfg["state_file"]
    state = load_state(state_path)
    metrics_file = cfg.get("metrics_file") or ""
    show = unit_show(cfg["pm2_service"])
    probes: dict[str, Probe] = {}
    database: dict[str, Any] | None = None

    def finish(now: float) -> int:
        state["last_run"] = int(now)
        save_state(state_path, state)
        if metrics_file:
            release = live_release(cfg.get("current_link", ""))
            run = load_state(cfg["run_record"]) if cfg.get("run_record") else None
            text = metrics_text(cfg, state, probes, workers, database, release, now, run)
            try:
                write_metrics(metrics_file, text)
            except OSError as exc:
                log(WARNING, f"metrics not written to {metrics_file}: {exc.strerror or exc}")
        return 0

    workers = unit_workers(show) if metrics_file else None
    count_starts(state, workers)
    uid = app_uid(cfg.get("app_user", ""))

    if show["ActiveState"] == "inactive":
        if not state.get("paused"):
            log(NOTICE, f"{cfg['pm2_service']} is stopped on purpose: not probing until it runs")
        state.update(paused=True, failures=0, episode_actions=0, kind=None, held=False)
        if metrics_file:
            database = check_database(cfg.get("database"), uid)
        return finish(time.time())
    state["paused"] = False

    # Right after a release switch the deploy's own checks decide (and roll back); a
    # watchdog reload then would only add restarts the deploy cannot explain.
    grace = float(cfg.get("deploy_grace", 0))
    if grace > 0 and cfg.get("current_link"):
        try:
            age = time.time() - os.lstat(cfg["current_link"]).st_mtime
        except OSError:
            age = grace
        if age < grace:
            log(INFO, f"release switched {age:.0f} s ago: the deploy's checks decide, not probing")
            if metrics_file:
                database = check_database(cfg.get("database"), uid)
            return finish(time.time())

    timeout = float(cfg["timeout"])
    status = int(cfg["health_status"])
    # Both probes and the database at once, so a hung app costs one timeout per run, not
    # two. The database every run: its outage is said even while the app still answers.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        database_f = pool.submit(check_database, cfg.get("database"), uid)
        direct_f = pool.submit(probe, cfg["direct_url"], status, timeout)
        upstream_f = None
        if cfg.get("upstream_url"):
            upstream_f = pool.submit(
                probe, cfg["upstream_url"], status, timeout, cfg.get("host_header", "")
            )
        direct = direct_f.result()
        upstream = upstream_f.result() if upstream_f else None
        database = database_f.result()
    probes["direct"] = direct
    if upstream is not None:
        probes["nginx"] = upstream
    now = time.time()
    action, reason, logs = decide(state, direct, upstream, now, cfg, database_probe(database))
    for level, message in logs:
        log(level, message)
    if action in ACTION_KINDS:
        counts = state.setdefault("counts", {})
        counts[action] = counts.get(action, 0) + 1
    event = {"app": cfg["app"], "host": socket.gethostname(), "time": int(now), "reason": reason}
    if action == "recovered":
        alert(cfg, {**event, "event": "recovered", "reason": logs[0][1]})
    elif action == "hold":
        alert(cfg, {**event, "event": "holding_off"})
    elif action == "db_down":
        alert(cfg, {**event, "event": "database_down"})
    elif action:
        log(NOTICE, f"{action}: {reason}")
        # Alert first: a reload waits for every worker to drain, which can take a while.
        alert(cfg, {**event, "event": action})
        save_state(state_path, state)
        rc, out = act(action, cfg)
        state["actions"][-1]["rc"] = rc
        if rc == 0:
            log(NOTICE, f"{action} done")
        else:
            log(ERR, f"{action} failed (rc {rc}): {out}")
        outcome = f"{action}_done" if rc == 0 else f"{action}_failed"
        alert(cfg, {**event, "event": outcome, "rc": rc})
    return finish(now)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
