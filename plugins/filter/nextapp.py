"""What an app's Next.js configuration says of its build's shape, read on the control node."""

from __future__ import annotations

import os
import re

CONFIG_FILES = (
    "next.config.js",
    "next.config.mjs",
    "next.config.cjs",
    "next.config.ts",
    "next.config.mts",
)
# `output: "standalone"` (or 'standalone', `standalone`), not inside a // comment.
_OUTPUT = re.compile(r"""^[^/\n]*?\boutput\s*:\s*["'`](standalone|export)["'`]""", re.M)


def next_output(src: str) -> str:
    """``standalone`` or ``export`` when the app's next.config sets ``output`` so, else "".

    Read as text (the config may need its dependencies to run): a literal ``output:`` at
    the top of a line's code is what `create-next-app` users and Next.js's docs write. A
    value computed at build time (``output: process.env.X``) is not seen; set
    app_release_standalone then.
    """
    for name in CONFIG_FILES:
        try:
            with open(
                os.path.join(os.path.expanduser(str(src)), name), encoding="utf-8", errors="replace"
            ) as fh:
                text = fh.read(200_000)
        except OSError:
            continue
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        match = _OUTPUT.search(text)
        return match.group(1) if match else ""
    return ""


class FilterModule:
    def filters(self):
        return {"next_output": next_output}
