#!/usr/bin/env python3
"""A bounded request loop: GET a URL until a stop file appears or the time runs out.

Usage: load_loop.py [--server-action] URL RESULT_JSON STOP_FILE MAX_SECONDS [INTERVAL]
Writes {requests, ok, failed, statuses, errors, worst_ms, seconds, started, first_fail,
last_fail} to RESULT_JSON (the last three as Unix times, so a fault's recovery time can
be read against the moment it was injected: last_fail is when the last failed request was
sent, so every request sent after it succeeded). A failed request is a non-2xx answer or
no answer at all.

With --server-action, URL is a comma-separated list of pages with a Server Action form
(the example app's /sign): each round reads the form from one page and posts it, as a
browser without JavaScript does, to the next, so the posts alternate between the servers.
A round succeeds when the action answers 303 to ?signed=<name>.<time>.<rendered>.<ran>;
"pairs" counts each "<release that rendered the form> > <release that ran the action>".
"""

import html
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter

FORM = re.compile(r"<form[^>]*>(.*?)</form>", re.S)
INPUT = re.compile(r"<input([^>]*?)/?>")
ATTR = re.compile(r'([\w$:-]+)="([^"]*)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_action(page: str, target: str, ctx: ssl.SSLContext, pairs: Counter) -> int:
    """Read the form on ``page``, post it to ``target``; the action's status (303 when it ran)."""
    with urllib.request.urlopen(page, timeout=10, context=ctx) as resp:
        body = resp.read().decode()
    form = FORM.search(body)
    if not form:
        return 0
    fields = []
    for tag in INPUT.finditer(form.group(1)):
        attrs = {k: html.unescape(v) for k, v in ATTR.findall(tag.group(1))}
        fields.append((attrs.get("name", ""), attrs.get("value", "")))
    boundary = uuid.uuid4().hex
    data = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
        for n, v in fields
    )
    req = urllib.request.Request(
        target,
        data=(data + f"--{boundary}--\r\n").encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        if exc.code != 303:
            return exc.code
        signed = urllib.parse.parse_qs(urllib.parse.urlsplit(exc.headers["Location"]).query)
        parts = signed.get("signed", [""])[0].split(".")
        if len(parts) < 4:
            return 0
        pairs[f"{parts[-2]} > {parts[-1]}"] += 1
        return 303


def main() -> int:
    args = sys.argv[1:]
    actions = args[0] == "--server-action"
    if actions:
        args = args[1:]
    url, result_path, stop_file, max_s = args[0], args[1], args[2], float(args[3])
    interval = float(args[4]) if len(args) > 4 else 0.05
    urls = url.split(",")
    pairs: Counter = Counter()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    statuses: Counter = Counter()
    errors: Counter = Counter()
    worst = 0.0
    first_fail = last_fail = None
    first_error = ""
    started = time.time()
    start = time.monotonic()
    while time.monotonic() - start < max_s and not os.path.exists(stop_file):
        t0 = time.monotonic()
        sent = time.time()
        ok = False
        try:
            if actions:
                n = sum(statuses.values()) + sum(errors.values())
                code = post_action(urls[n % len(urls)], urls[(n + 1) % len(urls)], ctx, pairs)
                statuses[str(code)] += 1
                ok = code == 303
            else:
                with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
                    resp.read()
                    statuses[str(resp.status)] += 1
                    ok = 200 <= resp.status < 300
        except urllib.error.HTTPError as exc:
            statuses[str(exc.code)] += 1
        except OSError as exc:
            errors[type(exc).__name__] += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
        if not ok:
            first_fail = first_fail or sent
            last_fail = sent
        worst = max(worst, (time.monotonic() - t0) * 1000)
        time.sleep(interval)
    total = sum(statuses.values()) + sum(errors.values())
    ok = statuses["303"] if actions else sum(n for c, n in statuses.items() if c.startswith("2"))
    result = {
        "requests": total,
        "ok": ok,
        "failed": total - ok,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "worst_ms": round(worst, 1),
        "seconds": round(time.monotonic() - start, 1),
        "started": round(started, 3),
        "first_fail": first_fail and round(first_fail, 3),
        "last_fail": last_fail and round(last_fail, 3),
    }
    if first_error:
        result["first_error"] = first_error
    if actions:
        result["pairs"] = dict(pairs)
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
