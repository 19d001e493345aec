# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Which official Node.js build to install for an app.

Apps say which Node.js they want in several places and dialects: the role's
``node_runtime_version``, an ``.nvmrc`` or ``.node-version`` file (nvm, fnm, nodenv) or
``engines.node`` in package.json (a semver range). :func:`pick_spec` decides which of them
wins and :func:`resolve` turns it into one release from nodejs.org's ``dist/index.json``
(read with :func:`parse_index`) that has a build for the host (:func:`host_arch`), so the
app gets the Node.js its developers test with instead of whatever the distribution ships.
:func:`tarball_name` and :func:`parse_shasums` name the download and its checksum.

The semver matcher is written here (the controller and the host may have no third-party
packages) and covers what package.json files use; prereleases are only read, never matched,
since nodejs.org's index holds none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

ARCHES = {
    "x86_64": "linux-x64",
    "amd64": "linux-x64",
    "aarch64": "linux-arm64",
    "arm64": "linux-arm64",
}

# Specs that mean "the newest release of all" (nvm: node, stable; n/fnm: latest, current).
NEWEST = {"latest", "current", "node", "stable"}

# How many release lines an error message lists.
SHOWN = 4

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
# A bare version a user writes: 22, v22, 22.11, 22.11.0 (newest match wins, LTS or not).
_BARE = re.compile(r"v?\d+(?:\.\d+){0,2}")
_XR = r"(\d+|[xX*])"
_PARTIAL = re.compile(
    rf"v?{_XR}(?:\.{_XR}(?:\.{_XR}(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?)?)?"
)
_COMPARATOR = re.compile(r"(~>|<=|>=|[<>=~^])?(.+)")
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")

# A bound is (major, minor, patch, rank): rank 0 for a prerelease such as 21.0.0-0, which
# sorts just below 21.0.0, and 1 otherwise; releases are always rank 1.
Bound = tuple[int, int, int, int]
Comparator = tuple[str, Bound]
# A comparator no release satisfies (node-semver's <0.0.0-0, what ``>*`` and ``<*`` mean).
NEVER: Comparator = ("<", (0, 0, 0, 0))

_TESTS = {
    "<": lambda v, b: v < b,
    "<=": lambda v, b: v <= b,
    ">": lambda v, b: v > b,
    ">=": lambda v, b: v >= b,
    "=": lambda v, b: v == b,
}


# --- the index ----------------------------------------------------------------------------


def parse_index(data: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """nodejs.org's ``dist/index.json`` as releases, newest first.

    Each is ``{version: (22, 11, 0), text: "22.11.0", lts: "jod" or None, files: [...]}``.
    Entries without an ``vX.Y.Z`` version are skipped: a mirror may add its own.
    """
    releases: list[dict[str, Any]] = []
    for entry in data:
        match = _VERSION.fullmatch(str(entry.get("version", "")).strip())
        if not match:
            continue
        version = tuple(int(n) for n in match.groups())
        lts = entry.get("lts")
        releases.append(
            {
                "version": version,
                "text": "{}.{}.{}".format(*version),
                "lts": lts.strip().lower() if isinstance(lts, str) and lts.strip() else None,
                "files": list(entry.get("files") or []),
            }
        )
    releases.sort(key=lambda r: r["version"], reverse=True)
    return releases


# --- semver ranges ------------------------------------------------------------------------


def _partial(text: str) -> tuple[list[int | None], bool] | None:
    """``20.x`` as ([20, None, None], False); the flag says it names a prerelease."""
    match = _PARTIAL.fullmatch(text)
    if not match:
        return None
    parts: list[int | None] = []
    for part in match.groups()[:3]:
        # Once one part is a wildcard (or missing) the rest are too: 1.x.3 is 1.x.
        if part is None or part in "xX*" or (parts and parts[-1] is None):
            parts.append(None)
        else:
            parts.append(int(part))
    return parts, match.group(4) is not None


def _floor(parts: list[int | None], pre: bool = False) -> Bound:
    major, minor, patch = (p or 0 for p in parts)
    return major, minor, patch, 0 if pre else 1


def _above(major: int, minor: int | None) -> Bound:
    """The first version past a partial: 20 -> 21.0.0, 20.11 -> 20.12.0."""
    if minor is None:
        return major + 1, 0, 0, 1
    return major, minor + 1, 0, 1


def _desugar(op: str, parts: list[int | None], pre: bool) -> list[Comparator]:
    """One comparator as it is written (``^20.9``) as plain bounds (>=20.9.0 <21.0.0)."""
    major, minor, patch = parts
    if major is None:  # *, >=*, ^*: anything, except > and < which nothing satisfies
        return [NEVER] if op in ("<", ">") else []
    full = patch is not None
    if op == ">":
        return [(">", _floor(parts, pre))] if full else [(">=", _above(major, minor))]
    if op == ">=":
        return [(">=", _floor(parts, pre))]
    if op == "<":
        return [("<", _floor(parts, pre))]
    if op == "<=":
        return [("<=", _floor(parts, pre))] if full else [("<", _above(major, minor))]
    if op == "^":
        if major > 0 or minor is None:
            top: Bound = (major + 1, 0, 0, 1)
        elif minor > 0 or patch is None:
            top = (0, minor + 1, 0, 1)
        else:
            top = (0, 0, patch + 1, 1)
        return [(">=", _floor(parts, pre)), ("<", top)]
    if op in ("~", "~>"):
        return [(">=", _floor(parts, pre)), ("<", _above(major, minor))]
    # = or no operator: exact when full, else the partial's span.
    if full:
        return [("=", _floor(parts, pre))]
    return [(">=", _floor(parts)), ("<", _above(major, minor))]


def parse_range(text: str) -> list[list[Comparator]]:
    """A semver range as alternatives (``||``), each a list of bounds that must all hold.

    Raises ``ValueError`` for text that is not a range.
    """
    alternatives = []
    for alternative in text.split("||"):
        alternative = alternative.strip()
        hyphen = _HYPHEN.fullmatch(alternative)
        if hyphen:
            low, high = _partial(hyphen.group(1)), _partial(hyphen.group(2))
            if low is None or high is None:
                raise ValueError(f"not a version in a hyphen range: {alternative!r}")
            bounds = _desugar(">=", *low)
            bounds += _desugar("<=", *high)
            alternatives.append(bounds)
            continue
        # ">= 20" is ">=20": an operator binds to the version after it.
        alternative = re.sub(r"(~>|<=|>=|[<>=~^])\s+", r"\1", alternative)
        bounds = []
        for word in alternative.split():
            match = _COMPARATOR.fullmatch(word)
            partial = _partial(match.group(2)) if match else None
            if match is None or partial is None:
                raise ValueError(f"not a version or comparator: {word!r}")
            bounds += _desugar(match.group(1) or "=", *partial)
        alternatives.append(bounds)
    return alternatives


def satisfies(version: Sequence[int], alternatives: list[list[Comparator]]) -> bool:
    """Whether a release (22, 11, 0) is in a range from :func:`parse_range`."""
    key = (*version[:3], 1)
    return any(all(_TESTS[op](key, bound) for op, bound in bounds) for bounds in alternatives)


# --- choosing a release -------------------------------------------------------------------


def clean_spec(text: str | int | float | None) -> str:
    """A spec without comments, surrounding blanks and the trailing newline ("" if none).

    ``.nvmrc`` and ``.node-version`` may hold ``#`` comments; what is left must be one
    line, or ``ValueError``.
    """
    if text is None:
        return ""
    lines = [line.split("#", 1)[0].strip() for line in str(text).splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1:
        raise ValueError(f"holds more than one line: {' / '.join(lines)!r}")
    return lines[0] if lines else ""


def _lts_lines(releases: Sequence[dict[str, Any]]) -> list[str]:
    """LTS codenames, newest line first."""
    lines: list[str] = []
    for release in releases:
        if release["lts"] and release["lts"] not in lines:
            lines.append(release["lts"])
    return lines


def _newest_lines(releases: Sequence[dict[str, Any]]) -> str:
    """The newest release of the newest few major lines, for error messages."""
    shown: dict[int, str] = {}
    for release in releases:
        major = release["version"][0]
        if major not in shown and len(shown) < SHOWN:
            lts = f" (LTS {release['lts']})" if release["lts"] else ""
            shown[major] = release["text"] + lts
    return ", ".join(shown.values()) or "none"


def _choose(
    spec: str, releases: Sequence[dict[str, Any]], source: str
) -> tuple[list[dict[str, Any]], bool, str]:
    """The releases ``spec`` allows (newest first), whether LTS ones come first, and what an
    alias means, for messages."""
    word = spec.lower()
    if not word or word in ("lts", "lts/*"):
        return [r for r in releases if r["lts"]], False, " (the newest LTS release)"
    if word in NEWEST:
        return list(releases), False, " (the newest release)"
    if word.startswith("lts/"):
        name = word[4:].strip()
        lines = _lts_lines(releases)
        if re.fullmatch(r"-\d+", name):
            back = int(name[1:])
            if back >= len(lines):
                raise ValueError(
                    f"{source} asks for Node.js {spec!r}, but there are only {len(lines)} LTS"
                    f" lines ({', '.join(lines) or 'none'}); change it to lts/* or to one of"
                    " them"
                )
            name = lines[back]
        elif name not in lines:
            raise ValueError(
                f"{source} asks for Node.js {spec!r}, but no Node.js LTS line is called"
                f" {name!r}; change it to lts/* or to one of the LTS lines:"
                f" {', '.join(lines) or 'none'}"
            )
        return [r for r in releases if r["lts"] == name], False, f" (the LTS line {name})"
    try:
        alternatives = parse_range(spec)
    except ValueError as exc:
        raise ValueError(
            f"{source}: cannot read {spec!r} as a Node.js version or range ({exc}); write"
            " for example 22, 22.11.0, lts/*, lts/jod or >=20.9.0"
        ) from None
    matching = [r for r in releases if satisfies(r["version"], alternatives)]
    # A range prefers LTS: ">=20" means a supported release, not the short-lived current one;
    # a bare version (22, 22.11) means the newest release that starts so.
    return matching, not _BARE.fullmatch(spec), ""


def resolve(
    spec: str | None, releases: Sequence[dict[str, Any]], *, source: str, arch: str
) -> dict[str, Any]:
    """The newest release that ``spec`` allows and that has a build for ``arch``.

    ``spec`` is anything :func:`pick_spec` returns (a version, an nvm alias, a semver range;
    ``None`` or empty for the newest LTS); for a range the newest LTS release in it wins,
    else the newest. ``source`` names where it came from; every ``ValueError`` names it,
    since that is what the user has to change.
    """
    try:
        text = clean_spec(spec)
    except ValueError as exc:
        raise ValueError(f"{source} {exc}; it should hold one version such as 22") from None
    matching, prefer_lts, meaning = _choose(text, releases, source)
    built = [r for r in matching if arch in r["files"]]
    if prefer_lts:
        built = [r for r in built if r["lts"]] or built
    if built:
        release = built[0]
        return {
            "version": release["text"],
            "major": release["version"][0],
            "lts": release["lts"],
            "source": source,
            "spec": text or None,
        }
    built = [r for r in releases if arch in r["files"]]
    if not built:
        raise ValueError(f"{source}: nodejs.org has no {arch} build of any Node.js release")
    newest = _newest_lines(built)
    if matching:
        found = ", ".join(r["text"] for r in matching[:SHOWN])
        reason = f"but no release it allows ({found}) has an official {arch} build"
    elif text:
        reason = "but no official Node.js release matches it"
    else:
        reason = "but there is none"
    if not text:
        raise ValueError(
            f"No Node.js version is set, so the newest LTS release is used, {reason}."
            f" Newest {arch} releases: {newest}. Set node_runtime_version to one of them."
        )
    override = "" if source == "node_runtime_version" else ", or set node_runtime_version"
    raise ValueError(
        f"{source} asks for Node.js {text!r}{meaning}, {reason}. Newest {arch} releases: {newest}."
        f" Change {source} to allow one of them{override}."
    )


def pick_spec(
    node_runtime_version: str | None,
    nvmrc: str | None,
    node_version_file: str | None,
    engines_node: str | None,
) -> tuple[str | None, str]:
    """Which spec wins, and its source's name for messages.

    The role's variable first (the operator's word), then the app's own files in the order
    version managers read them, then package.json; a file holding only comments or blanks
    does not count. Specs come back cleaned by :func:`clean_spec`; one that cannot be
    cleaned comes back as written, for :func:`resolve` to report.
    """
    for text, source in (
        (node_runtime_version, "node_runtime_version"),
        (nvmrc, ".nvmrc"),
        (node_version_file, ".node-version"),
        (engines_node, "package.json engines.node"),
    ):
        try:
            cleaned = clean_spec(text)
        except ValueError:
            return str(text), source
        if cleaned:
            return cleaned, source
    return None, "the newest LTS"


# --- downloads ----------------------------------------------------------------------------


def tarball_name(version: str, arch: str) -> str:
    """``node-v22.11.0-linux-x64.tar.xz`` for 22.11.0 (or v22.11.0) on linux-x64."""
    return f"node-v{version.strip().removeprefix('v')}-{arch}.tar.xz"


def parse_shasums(text: str) -> dict[str, str]:
    """SHASUMS256.txt as {file name: sha256 hex}.

    Lines that are not ``<64 hex> <name>`` are skipped, so the signed SHASUMS256.txt.asc
    reads the same (its signature is not checked here).
    """
    sums = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(\S.*?)\s*", line.strip())
        if match:
            sums[match.group(2)] = match.group(1).lower()
    return sums


def host_arch(ansible_architecture: str) -> str:
    """The nodejs.org build name (linux-x64, linux-arm64) for ``ansible_architecture``."""
    arch = ARCHES.get(str(ansible_architecture).strip().lower())
    if arch is None:
        raise ValueError(
            f"no official Node.js build is used for the architecture"
            f" {ansible_architecture!r}: only x86_64 (linux-x64) and aarch64 (linux-arm64)"
            " are supported"
        )
    return arch
