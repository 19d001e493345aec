"""redact: what diagnose shows of command lines and log lines carries no secret."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.redact import (
    redact_argv,
    redact_text,
    shorten,
)


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("DATABASE_URL=postgres://workbot:pw1@db/workbot node server.js", "pw1", "node server.js"),
        ("connect postgres://workbot:s3cr3t@127.0.0.1:5432/x failed", "s3cr3t", "workbot:***@"),
        ("SESSION_SECRET=abc123 NODE_ENV=production next start", "abc123", "next start"),
        ("node app.js --api-key=sk-live-1 --port 5000", "sk-live-1", "--port 5000"),
        ("node app.js --password hunter2 --port 5000", "hunter2", "--port 5000"),
        ('{"password":"hunter2","user":"x"}', "hunter2", '"user":"x"'),
        ("token: ghp_abcdef", "ghp_abcdef", "token: ***"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi", "Authorization"),
    ],
)
def test_secrets_masked(text, secret, kept):
    out = redact_text(text)
    assert secret not in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "Error: ENOENT: no such file or directory, open '/workspace/projects/.next/server/x.js'",
        "Error: listen EADDRINUSE: address already in use 0.0.0.0:5000",
        "Authorization failed for user workbot",
        "node /srv/workbot/current/node_modules/next/dist/bin/next start --port 5000",
        "GET /api/health?x=1 200",
    ],
)
def test_ordinary_text_unchanged(text):
    assert redact_text(text) == text


def test_redact_argv_masks_separate_option_value():
    argv = ["node", "x.js", "--db-password", "hunter2", "--port", "5000"]
    assert redact_argv(argv) == ["node", "x.js", "--db-password", "***", "--port", "5000"]
    # an option right after a secret option is not its value
    assert redact_argv(["x", "--token", "--verbose"]) == ["x", "--token", "--verbose"]


def test_shorten():
    assert shorten("abc", 3) == "abc"
    assert shorten("abcdef", 4) == "abc…"
