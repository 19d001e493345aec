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

When the app fails and its database (``database``: host and port, never the URL's
credentials) takes no connection either, it does not reload or restart the app: new
workers would only add a storm of reconnections to a database that is away. It logs and
alerts once with that reason, and counts failures again only once the database is back,
so the app's pool gets ``failures_before_action`` runs to reconnect by itself. Only a
PostgreSQL server is connected to (once, closed before a byte is sent, which it does not
log); a MySQL server counts such connections against the client, so it is never probed.

Never more than ``max_actions`` actions within ``action_window`` seconds: past that the
watchdog logs that it holds off and alerts once. Every probe failure, action and
recovery is logged to the journal with its reason (syslog level prefixes), and optionally
POSTed as JSON to a webhook (an action twice: when it starts and with its result). The
webhook must be https unless ``webhook_allow_http`` is set, and a redirect from it is a
failed alert: it is never followed (urllib would send the token to the new URL).
A PM2 unit stopped on purpose (inactive, not failed) is
left alone. Standard library only; state lives in one JSON file.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# journald reads these prefixes as the line's priority (SyslogLevelPrefix=yes).
ERR, WARNING, NOTICE, INFO = "<3>", "<4>", "<5>", "<6>"


@dataclass
class Probe:
    """One probe's outcome: ok, and what happened (status or error) for the log."""

    ok: bool
    detail: str


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
    took = (time.monotonic() - start) * 1000
    if status == expect_status:
        return Probe(True, f"{status} in {took:.0f} ms")
    return Probe(False, f"{status} (expected {expect_status}) in {took:.0f} ms")


def reach_database(db: dict[str, Any] | None, timeout: float) -> Probe | None:
    """One connection to a PostgreSQL database, closed at once; None when there is no
    database to ask (none configured, or a MySQL server, which is never connected to)."""
    if not db or db.get("scheme", "postgres") not in ("postgres", "postgresql"):
        return None
    host, port = str(db["host"]), int(db["port"])
    if host.startswith("/"):
        family, target, where = socket.AF_UNIX, f"{host}/.s.PGSQL.{port}", host
    else:
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        except OSError as exc:
            return Probe(False, f"database {host}:{port}: {exc.strerror or exc}")
        family, target, where = info[0], info[4], f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as exc:
        return Probe(False, f"database {where}: {exc.strerror or exc}")
    finally:
        sock.close()
    return Probe(True, f"database {where} answers")


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
    actions per window was reached; ``db_down`` that the app fails while its database
    (``database``, asked only when the app fails) takes no connection, so nothing is done
    until it is back; ``recovered`` that the app is healthy again after failures (an
    event to report, nothing to do).
    """
    logs: list[tuple[str, str]] = []
    threshold = int(cfg["failures_before_action"])
    window = float(cfg["action_window"])
    state["actions"] = [a for a in state.get("actions", []) if now - a["time"] < window]

    if not direct.ok and database is not None and not database.ok:
        first = not state.get("db_down")
        state.update(db_down=True, failures=0, kind="app")
        reason = f"the app fails (direct {direct.detail}) and {database.detail}"
        if first:
            logs.append(
                (
                    ERR,
                    f"{reason}: not reloading the app while its database is away; acting "
                    "again only if the app still fails once the database is back",
                )
            )
            return "db_down", reason, logs
        return None, reason, logs
    if state.get("db_down") and database is not None and database.ok:
        state["db_down"] = False
        logs.append((NOTICE, f"{database.detail} again; the app still fails"))

    if direct.ok and (upstream is None or upstream.ok):
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
        state.update(failures=0, episode_actions=0, kind=None, held=False, db_down=False)
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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    state_path = cfg["state_file"]
    state = load_state(state_path)

    unit_state = systemctl("show", "--property=ActiveState", "--value", cfg["pm2_service"])[1]
    if unit_state == "inactive":
        if not state.get("paused"):
            log(NOTICE, f"{cfg['pm2_service']} is stopped on purpose: not probing until it runs")
        state.update(paused=True, failures=0, episode_actions=0, kind=None, held=False)
        save_state(state_path, state)
        return 0
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
            state["last_run"] = int(time.time())
            save_state(state_path, state)
            return 0

    timeout = float(cfg["timeout"])
    status = int(cfg["health_status"])
    # Both probes at once, so a hung app costs one timeout per run, not two.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        direct_f = pool.submit(probe, cfg["direct_url"], status, timeout)
        upstream_f = None
        if cfg.get("upstream_url"):
            upstream_f = pool.submit(
                probe, cfg["upstream_url"], status, timeout, cfg.get("host_header", "")
            )
        direct = direct_f.result()
        upstream = upstream_f.result() if upstream_f else None
    # The database only when the app fails: a healthy app needs no second opinion.
    database = None if direct.ok else reach_database(cfg.get("database"), timeout)
    now = time.time()
    action, reason, logs = decide(state, direct, upstream, now, cfg, database)
    for level, message in logs:
        log(level, message)
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
    state["last_run"] = int(now)
    save_state(state_path, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
