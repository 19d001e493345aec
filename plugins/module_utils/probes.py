"""HTTP probes: one request, no redirects followed, no proxy, never raises for the network.

A ``301`` is the answer a probe reports (following it would hide a misrouted path), and
the environment's ``http_proxy`` must not carry a request meant for 127.0.0.1.

HTTPS probes do not verify the certificate: they go to this host's own address (the
certificate names the public host, not 127.0.0.1) and ask whether the site answers, not
whether its certificate is valid.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.procfs import Listener
from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import redact_text

BODY_SAMPLE_CHARS = 200
_READ_BYTES = 4096
USER_AGENT = "hardenkit-diagnose/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError carrying the 3xx status


def _unverified_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    urllib.request.HTTPSHandler(context=_unverified_tls()),
    _NoRedirect(),
)


def _describe(exc: BaseException, timeout: float) -> str:
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g}s"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "closed without a response"
    if isinstance(reason, http.client.HTTPException):
        return f"bad HTTP response ({type(reason).__name__})"
    text = str(reason) or type(reason).__name__
    return text[:200]


def http_probe(
    url: str,
    expected_status: int,
    timeout: float,
    host_header: str | None = None,
    via: str = "direct",
) -> dict[str, Any]:
    """GET ``url`` once; report status, whether it was the expected one, and timing.

    Returns ``{url, path, via, expected, status, ok, latency_ms, body_sample, error}``;
    ``status`` is None and ``error`` set when nothing answered.
    """
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = {"User-Agent": USER_AGENT, "Connection": "close", "Accept": "*/*"}
    if host_header:
        headers["Host"] = host_header
    result: dict[str, Any] = {
        "url": url,
        "path": path,
        "via": via,
        "expected": expected_status,
        "status": None,
        "ok": False,
        "latency_ms": None,
        "body_sample": "",
        "error": None,
    }
    req = urllib.request.Request(url, headers=headers, method="GET")
    start = time.monotonic()
    body = b""
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            result["status"] = resp.status
            body = resp.read(_READ_BYTES)
    except urllib.error.HTTPError as exc:  # 3xx/4xx/5xx: an answer, not a failure to probe
        result["status"] = exc.code
        try:
            body = exc.read(_READ_BYTES)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            exc.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        result["error"] = _describe(exc, timeout)
    result["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
    # An error page can echo configuration; mask it like any other text we report.
    result["body_sample"] = redact_text(body.decode("utf-8", errors="replace"))[:BODY_SAMPLE_CHARS]
    result["ok"] = result["status"] == expected_status
    return result


def probe_host(listeners: Iterable[Listener], port: int) -> str:
    """The address to reach ``port`` on this host.

    Loopback when the socket accepts it (``0.0.0.0``, ``127.0.0.1``), ``[::1]`` for an
    IPv6-only wildcard (nginx's ``listen [::]:80`` is IPv6-only by default), else the one
    specific address it is bound to. With no listener: 127.0.0.1, where "connection
    refused" is the truthful answer.
    """
    addrs = [lst.address for lst in listeners if lst.port == port]
    if not addrs:
        return "127.0.0.1"
    if any(a in ("0.0.0.0", "127.0.0.1", "::ffff:127.0.0.1") for a in addrs):
        return "127.0.0.1"
    if any(a.startswith("127.") for a in addrs):
        return next(a for a in addrs if a.startswith("127."))
    if any(a in ("::", "::1") for a in addrs):
        return "[::1]"
    addr = sorted(addrs)[0]
    if addr.startswith("::ffff:"):
        return addr[len("::ffff:") :]
    return f"[{addr}]" if ":" in addr else addr


def probe_url(host: str, port: int, path: str, scheme: str = "http") -> str:
    return f"{scheme}://{host}:{port}{path}"


def run_probes(
    jobs: list[dict[str, Any]], timeout: float, workers: int = 8
) -> list[dict[str, Any]]:
    """Run ``http_probe`` for each job ``{url, expected, host_header, via}`` concurrently,
    results in job order (a hung route costs one timeout, not one per probe)."""
    if not jobs:
        return []

    def one(job: dict[str, Any]) -> dict[str, Any]:
        return http_probe(
            job["url"], job["expected"], timeout, job.get("host_header"), job.get("via", "direct")
        )

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(one, jobs))


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=1):
            return True
    except OSError:
        return False


def _wait_for(host: str, port: int, listening: bool, timeout: float, interval: float) -> bool:
    """Whether ``host:port`` accepts connections (``listening``) or refuses them (not)
    within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _accepts(host, port) != listening:
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_listening(host: str, port: int, timeout: float, interval: float = 0.2) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    return _wait_for(host, port, True, timeout, interval)


def probe_until(
    host: str,
    port: int,
    probes: list[dict[str, Any]],
    *,
    listen_timeout: float = 0,
    retries: int = 0,
    delay: float = 1,
    timeout: float = 15,
    scheme: str = "http",
) -> dict[str, Any]:
    """Wait for ``port`` to listen, then probe each ``{path, status}``; a failing probe is
    tried again, on its own, up to ``retries`` times ``delay`` seconds apart.

    Returns ``{ok, listening, attempts, probes}``: ``probes`` holds each probe's last
    result (``http_probe``'s shape), in the given order.
    """
    listening = listen_timeout <= 0 or wait_listening(host, port, listen_timeout)
    out: dict[str, Any] = {"ok": False, "listening": listening, "attempts": 0, "probes": []}
    if not listening:
        return out
    jobs = [
        {"url": probe_url(host, port, p["path"], scheme), "expected": int(p["status"])}
        for p in probes
    ]
    # Every slot is filled on the first pass: all jobs are in ``todo`` then.
    results: list[dict[str, Any]] = [{} for _ in jobs]
    todo = list(range(len(jobs)))
    while todo:
        out["attempts"] += 1
        for i, result in zip(todo, run_probes([jobs[i] for i in todo], timeout), strict=True):
            results[i] = result
        todo = [i for i in todo if not results[i]["ok"]]
        if todo and out["attempts"] <= retries:
            time.sleep(delay)
        else:
            break
    out["probes"] = results
    out["ok"] = not todo
    return out


def wait_free(host: str, port: int, timeout: float, interval: float = 0.1) -> bool:
    """Whether ``host:port`` stops accepting connections within ``timeout`` seconds."""
    return _wait_for(host, port, False, timeout, interval)


def start_and_probe(
    host: str,
    port: int,
    probes: list[dict[str, Any]],
    *,
    start: Callable[[], str],
    stop: Callable[[], None],
    read_log: Callable[[], list[str]],
    free_timeout: float = 5,
    **probe_args: Any,
) -> dict[str, Any]:
    """The pre-traffic gate in one step: wait up to ``free_timeout`` s for the port to be
    free, ``start()`` what is to be probed (it returns an error text, "" once started),
    ``probe_until``, then ``stop()`` whatever the outcome. On a failure the result carries
    ``read_log()`` (read before the stop), masked.

    Returns ``probe_until``'s result with ``busy`` (the port stayed in use: nothing was
    started), ``start_error`` and ``log``.
    """
    out: dict[str, Any] = {
        "ok": False,
        "listening": False,
        "attempts": 0,
        "probes": [],
        "busy": False,
        "start_error": "",
        "log": [],
    }
    if not wait_free(host, port, free_timeout):
        out["busy"] = True
        return out
    try:
        out["start_error"] = start()
        if not out["start_error"]:
            out.update(probe_until(host, port, probes, **probe_args))
        if not out["ok"]:
            out["log"] = [redact_text(line) for line in read_log()]
    finally:
        stop()
    return out


def probe_spec(retries: int = 0, timeout: float = 15) -> dict[str, dict[str, Any]]:
    """The argument spec of the options every probing module takes (``probe``,
    ``pm2_service``), with that module's defaults."""
    return {
        "port": {"type": "int", "required": True},
        "probes": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "path": {"type": "str", "required": True},
                "status": {"type": "int", "default": 200},
            },
        },
        "listen_timeout": {"type": "float", "default": 0},
        "retries": {"type": "int", "default": retries},
        "delay": {"type": "float", "default": 1},
        "timeout": {"type": "float", "default": timeout},
    }


def probe_args(params: Mapping[str, Any]) -> dict[str, Any]:
    """``probe_until``'s keyword arguments from a module's ``probe_spec`` options; raises
    ValueError for a negative wait, retry count or delay, or a timeout not above 0."""
    if min(params["retries"], params["delay"], params["listen_timeout"]) < 0 or (
        params["timeout"] <= 0
    ):
        raise ValueError("retries, delay and listen_timeout must not be negative, timeout > 0")
    return {k: params[k] for k in ("listen_timeout", "retries", "delay", "timeout")}


def probe_failure(where: str, result: Mapping[str, Any], listen_timeout: float) -> str:
    """What failed in ``probe_until``'s ``result`` at ``where`` (``host:port``), "" when
    nothing did."""
    if not result["listening"]:
        return f"nothing listened on {where} within {listen_timeout:g} s"
    if not result["ok"]:
        attempts = result["attempts"]
        return (
            f"probes failed on {where} ({attempts} attempt{'s' if attempts != 1 else ''}): "
            + describe_failures(result["probes"])
        )
    return ""


def describe_failures(results: list[dict[str, Any]]) -> str:
    """``/api/health answered 500 (expected 200); / connection refused``."""
    return "; ".join(
        f"{r['path']} answered {r['status']} (expected {r['expected']})"
        if r["status"] is not None
        else f"{r['path']} {r['error']}"
        for r in results
        if not r["ok"]
    )
