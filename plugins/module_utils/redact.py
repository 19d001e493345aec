"""Mask secrets in text that diagnose reports (command lines, log lines, error output).

diagnose promises never to reveal environment values or secrets. Command lines and log
lines are the two places they leak through: ``sh -c DATABASE_URL=postgres://u:pw@db node x``,
``--api-key=...``, an error that prints its connection string. These rules mask values and
keep the shape, so the evidence still says what ran.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host
_URL_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?P<pw>[^@\s/]+)@")
# NAME=value shell assignments (environment): the value is what we must not show.
_ENV_ASSIGN = re.compile(
    r"(?<![\w./-])(?P<key>[A-Z_][A-Z0-9_]*)=(?P<val>[^\s'\"]+|'[^']*'|\"[^\"]*\")"
)
# --password=x, --api-key x, token: x, "secret": "x"
_SECRET_WORD = (
    r"(?:pass(?:word|wd)?|secret|token|api[_-]?key|auth(?:orization)?|credentials?|cookie)"
)
# "--password hunter2" / "--api-key=x" inside one string (sh -c ...): option form.
_SECRET_OPT = re.compile(
    r"(?P<key>--?[\w-]*" + _SECRET_WORD + r"[\w-]*)(?P<sep>=|\s+)(?P<val>[^\s\"',;]+)",
    re.IGNORECASE,
)
# "password: x", "token=x", JSON "secret":"x": key form (a separator is required, so
# "Authorization failed" in a log line stays readable).
_SECRET_KEY = re.compile(
    r"(?P<key>\b[\w-]*" + _SECRET_WORD + r"[\w-]*)(?P<sep>\"?\s*[=:]\s*\"?)(?P<val>[^\s\"',;]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<val>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Mask credentials, environment assignments and secret-looking options in ``text``."""
    text = _URL_USERINFO.sub(lambda m: f"{m['pre']}:{MASK}@", text)
    text = _ENV_ASSIGN.sub(lambda m: f"{m['key']}={MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _SECRET_OPT.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
    text = _SECRET_KEY.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
    return text


def redact_argv(argv: list[str]) -> list[str]:
    """Mask secrets in each argument; a secret option's value in the next argument too."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next and not arg.startswith("-"):
            out.append(MASK)
            mask_next = False
            continue
        mask_next = False
        red = redact_text(arg)
        # "--password hunter2" arrives as two arguments: the option alone says the next
        # argument is the secret.
        if re.fullmatch(r"--?[\w-]*" + _SECRET_WORD + r"[\w-]*", arg, re.IGNORECASE):
            mask_next = True
        out.append(red)
    return out


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"
