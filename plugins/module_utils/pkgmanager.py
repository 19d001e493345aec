# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Which JavaScript package manager an app uses, and how to install it.

Decided on the control node from the app's top-level file names, package.json,
``.yarnrc.yml`` and the head of ``yarn.lock``, so a wrong guess fails before anything reaches
a host: an install with another manager, or one free to rewrite the lockfile, builds
dependencies nobody reviewed. The manager comes as one npm-registry tarball, checked against
the registry's integrity and the hash corepack pins in ``packageManager``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import TypedDict

MANAGERS = ("npm", "pnpm", "yarn", "bun")

# Lockfile -> manager, in the order a manager prefers its own: npm reads
# npm-shrinkwrap.json over package-lock.json; bun reads its text lockfile over bun.lockb.
LOCKFILES = {
    "pnpm-lock.yaml": "pnpm",
    "npm-shrinkwrap.json": "npm",
    "package-lock.json": "npm",
    "yarn.lock": "yarn",
    "bun.lock": "bun",
    "bun.lockb": "bun",
}

# The lockfile each manager's plain install writes (bun before 1.2: bun.lockb).
WRITES = {
    "pnpm": "pnpm-lock.yaml",
    "npm": "package-lock.json",
    "yarn": "yarn.lock",
    "bun": "bun.lock",
}

# Installs that fail instead of writing a different lockfile.
INSTALL_COMMANDS = {
    ("pnpm", None): "pnpm install --frozen-lockfile",
    ("npm", None): "npm ci",
    ("yarn", "classic"): "yarn install --frozen-lockfile",
    ("yarn", "berry"): "yarn install --immutable",
    ("bun", None): "bun install --frozen-lockfile",
}

# The hashes corepack accepts after "+" in packageManager, with their hex lengths.
HASH_HEX_LENGTHS = {"sha1": 40, "sha224": 56, "sha256": 64, "sha512": 128}

ARCHES = ("x64", "arm64")

_SEMVER_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = re.compile(
    rf"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-{_SEMVER_ID}(?:\.{_SEMVER_ID})*)?"
)
_PACKAGE_NAME = re.compile(r"(?:@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*")
_EXAMPLE = '"packageManager": "pnpm@9.15.9"'


def _quoted(value: str, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def _major(version: str) -> int:
    match = SEMVER.fullmatch(version)
    if not match:
        raise ValueError(f"expected an exact version such as 9.15.9, got {_quoted(version)}")
    return int(match.group(1))


class PackageManagerField(TypedDict):
    """package.json's ``packageManager``, parsed."""

    name: str
    version: str
    hash_algo: str | None
    hash_hex: str | None


class Detected(TypedDict):
    """What :func:`detect` found."""

    name: str
    flavour: str | None
    version: str | None
    hash_algo: str | None
    hash_hex: str | None
    lockfile: str
    install_command: str
    yarn_path: str | None
    warnings: list[str]


def parse_package_manager(value: str) -> PackageManagerField:
    """package.json's ``packageManager`` split as corepack reads it: ``name@x.y.z[+algo.hex]``.

    Only exact versions: a range or tag would let the installed manager change under an
    unchanged commit, and a URL would bypass the registry checks.
    """

    def refuse(why: str) -> ValueError:
        return ValueError(
            f'package.json "packageManager" is {_quoted(value)}: {why}; expected '
            f"<name>@<exact version>, optionally followed by +<sha1|sha224|sha256|sha512>.<hex>, "
            f"e.g. {_EXAMPLE}"
        )

    if not isinstance(value, str):
        raise refuse("not a string")
    name, at, rest = value.partition("@")
    if not at:
        raise refuse("no version")
    if name not in MANAGERS:
        raise refuse(f"the name must be one of {', '.join(MANAGERS)}")
    version, plus, digest = rest.partition("+")
    if not SEMVER.fullmatch(version):
        raise refuse(f"{_quoted(version)} is not an exact version (no ranges, tags or URLs)")
    hash_algo = hash_hex = None
    if plus:
        hash_algo, dot, hash_hex = digest.partition(".")
        if not dot or hash_algo not in HASH_HEX_LENGTHS:
            raise refuse("the hash must be +<algo>.<hex> with algo sha1, sha224, sha256 or sha512")
        length = HASH_HEX_LENGTHS[hash_algo]
        if len(hash_hex) != length or not re.fullmatch(r"[0-9a-fA-F]+", hash_hex):
            raise refuse(f"a {hash_algo} hash is {length} hex digits")
        hash_hex = hash_hex.lower()
    return {"name": name, "version": version, "hash_algo": hash_algo, "hash_hex": hash_hex}


def _yarn_path(yarnrc: str) -> str | None:
    """``yarnPath`` from .yarnrc.yml: the yarn release the repository ships."""
    for line in yarnrc.splitlines():
        match = re.match(r"yarnPath\s*:(.*)$", line)
        if not match:
            continue
        raw = match.group(1).strip()
        if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] and len(raw) > 1:
            raw = raw[1:-1]
        else:
            raw = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        path = PurePosixPath(raw)
        if not raw or path.is_absolute() or raw.startswith("~") or ".." in path.parts:
            raise ValueError(
                f".yarnrc.yml yarnPath is {_quoted(raw)}: it must be a path inside the "
                "repository, relative to the app's source directory (e.g. "
                ".yarn/releases/yarn-4.5.3.cjs), without '..'"
            )
        return raw
    return None


def detect(
    files: Iterable[str],
    package_json: Mapping,
    yarnrc: str | None = None,
    yarn_lock_head: str | None = None,
) -> Detected:
    """The app's package manager, from its lockfile, checked against ``packageManager``.

    The lockfile decides because the frozen install needs it; ``packageManager`` only
    settles which of two lockfiles is current, and any disagreement is an error, since
    the host would otherwise install with a manager the developers do not use.
    """
    present = set(files)
    lockfiles = [f for f in LOCKFILES if f in present]
    if not lockfiles:
        raise ValueError(
            "no lockfile found in the app's source directory: expected pnpm-lock.yaml, "
            "package-lock.json (or npm-shrinkwrap.json), yarn.lock, or bun.lock (or bun.lockb). "
            "Run the app's package manager once (`pnpm install`, `npm install`, "
            "`yarn install` or `bun install`) and commit the lockfile it writes"
        )
    by_manager: dict[str, str] = {}
    for lockfile in lockfiles:
        by_manager.setdefault(LOCKFILES[lockfile], lockfile)

    pm = None
    raw_pm = package_json.get("packageManager")
    if raw_pm is not None:
        pm = parse_package_manager(raw_pm)

    warnings: list[str] = []
    if len(by_manager) > 1:
        if pm is None or pm["name"] not in by_manager:
            names = " and ".join(by_manager.values())
            said = "" if pm is None else f' (package.json "packageManager" says {raw_pm})'
            raise ValueError(
                f"lockfiles of different package managers: {names}{said}. Remove the ones "
                "the app no longer uses, or name the one it uses in package.json "
                f'"packageManager" (e.g. {_EXAMPLE})'
            )
        name = pm["name"]
        for other, lockfile in by_manager.items():
            if other != name:
                warnings.append(
                    f'{lockfile} ignored: package.json "packageManager" says {raw_pm}; '
                    f"remove {lockfile} if the app no longer uses {other}"
                )
    else:
        (name,) = by_manager
        if pm is not None and pm["name"] != name:
            raise ValueError(
                f'package.json "packageManager" says {raw_pm} but the lockfile is '
                f'{by_manager[name]}: remove the "packageManager" field, or commit the '
                f"{WRITES[pm['name']]} that `{pm['name']} install` writes"
            )
    lockfile = by_manager[name]

    flavour = None
    yarn_path = None
    if name == "yarn":
        flavour = _yarn_flavour(present, pm, raw_pm, yarn_lock_head, warnings)
        if flavour == "berry" and yarnrc is not None:
            yarn_path = _yarn_path(yarnrc)

    return {
        "name": name,
        "flavour": flavour,
        "version": pm["version"] if pm else None,
        "hash_algo": pm["hash_algo"] if pm else None,
        "hash_hex": pm["hash_hex"] if pm else None,
        "lockfile": lockfile,
        "install_command": INSTALL_COMMANDS[(name, flavour)],
        "yarn_path": yarn_path,
        "warnings": warnings,
    }


def _yarn_flavour(
    present: set[str],
    pm: PackageManagerField | None,
    raw_pm: str | None,
    yarn_lock_head: str | None,
    warnings: list[str],
) -> str:
    """classic (yarn 1) or berry (yarn 2+): their lockfiles and install flags differ."""
    has_rc = ".yarnrc.yml" in present
    berry_lock = yarn_lock_head is not None and "__metadata:" in yarn_lock_head
    classic_lock = yarn_lock_head is not None and not berry_lock
    if pm is None:
        return "berry" if has_rc or berry_lock else "classic"
    if _major(pm["version"]) < 2:
        if berry_lock:
            raise ValueError(
                f'package.json "packageManager" says {raw_pm} but yarn.lock was written by '
                'yarn 2 or later (it has __metadata:): set "packageManager" to the yarn '
                "release that wrote it, or regenerate yarn.lock with yarn 1 and commit it"
            )
        if has_rc:
            warnings.append(
                f'.yarnrc.yml ignored: package.json "packageManager" says {raw_pm}, and '
                "yarn 1 reads .yarnrc, not .yarnrc.yml"
            )
        return "classic"
    if classic_lock and not has_rc:
        raise ValueError(
            f'package.json "packageManager" says {raw_pm} but yarn.lock is a yarn 1 '
            "lockfile (no __metadata:) and there is no .yarnrc.yml: run `yarn install` "
            f"with {pm['name']}@{pm['version']} and commit the yarn.lock it writes, or set "
            '"packageManager" to the yarn 1 release the app uses'
        )
    return "berry"


def _check_release(name: str, flavour: str | None, version: str) -> None:
    """Refuse a manager release whose registry package this module does not know."""
    if name not in MANAGERS:
        raise ValueError(f"unknown package manager {name!r}: expected one of {MANAGERS}")
    major = _major(version)
    if name == "yarn":
        if flavour not in ("classic", "berry"):
            raise ValueError(f"yarn's flavour must be classic or berry, got {flavour!r}")
        if (flavour == "berry") != (major >= 2):
            raise ValueError(
                f"yarn {version} is not yarn {flavour}: classic is yarn 1, berry yarn 2 and later"
            )
    elif flavour is not None:
        raise ValueError(f"only yarn has a flavour, got {flavour!r} for {name}")
    if name == "pnpm" and not 6 <= major <= 11:
        # pnpm 12's npm package only holds a launcher that downloads the native binary
        # (@pnpm/exe.<os>-<arch>) when first run: a fetch on the host that the integrity
        # checks here never see. Before 6 the entry point moved around (lib/bin, bin/*.js).
        raise ValueError(
            f"pnpm {version} is not supported: pnpm 6 to 11 are (pnpm 12 and later fetch "
            'a native binary on first run). Pin one in package.json "packageManager", '
            'e.g. "packageManager": "pnpm@10.34.9"'
        )


def registry_package(name: str, flavour: str | None, version: str, arch: str = "x64") -> str:
    """The npm-registry package that carries this release (corepack's choice on an npm registry)."""
    if arch not in ARCHES:
        raise ValueError(f"unsupported CPU architecture {arch!r}: expected x64 or arm64")
    _check_release(name, flavour, version)
    if name == "yarn":
        return "yarn" if flavour == "classic" else "@yarnpkg/cli-dist"
    if name == "bun":
        return "@oven/bun-linux-x64" if arch == "x64" else "@oven/bun-linux-aarch64"
    return name


def tarball_url(registry: str, package: str, version: str) -> str:
    """Where the registry keeps a package's tarball: ``<registry>/<name>/-/<base>-<v>.tgz``."""
    if not re.match(r"https?://[^/]", registry):
        raise ValueError(f"the npm registry must be an http(s) URL, got {registry!r}")
    if not _PACKAGE_NAME.fullmatch(package):
        raise ValueError(f"not an npm package name: {package!r}")
    if not SEMVER.fullmatch(version):
        raise ValueError(f"expected an exact version such as 9.15.9, got {version!r}")
    base = package.rsplit("/", 1)[-1]
    return f"{registry.rstrip('/')}/{package}/-/{base}-{version}.tgz"


# The file run from the tarball, below its top package/ directory. Checked against each
# package.json "bin" on registry.npmjs.org and the tarballs' listings (and corepack 0.36's
# config.json): pnpm 6.0.0-10.34.9 bin/pnpm.cjs, 11.0.0-11.29.0 bin/pnpm.mjs (its bin/pnpm.cjs
# is only a shim for old corepacks); npm 1.1.25-12.2.3 bin/npm-cli.js; yarn 1.22.22 and
# @yarnpkg/cli-dist 2.4.1-4.18.1 bin/yarn.js; @oven/bun-linux-{x64,aarch64} 1.1.38 and 1.4.5
# have no "bin" but ship the executable bin/bun. Only bun's is native; the others run with node.
def entry_point(name: str, flavour: str | None, version: str) -> str:
    """The file in the unpacked tarball (its ``package/`` stripped) that is the manager."""
    _check_release(name, flavour, version)
    if name == "pnpm":
        return "bin/pnpm.cjs" if _major(version) <= 10 else "bin/pnpm.mjs"
    return {"npm": "bin/npm-cli.js", "yarn": "bin/yarn.js", "bun": "bin/bun"}[name]


def pm_hashed_file(name: str, flavour: str | None) -> str | None:
    """What a ``packageManager`` hash covers: None for the tarball, else a file inside it.

    corepack fetches yarn 2+ as the single file bin/yarn.js (repo.yarnpkg.com, or
    @yarnpkg/cli-dist's copy) and hashes that file; every other manager it hashes as the
    registry tarball.
    """
    return "bin/yarn.js" if name == "yarn" and flavour == "berry" else None


def _short(hex_digest: str) -> str:
    return hex_digest[:16] + ("..." if len(hex_digest) > 16 else "")


def check_integrity(
    data: bytes,
    integrity: str | None,
    hash_algo: str | None,
    hash_hex: str | None,
    *,
    pm_data: bytes | None = None,
) -> None:
    """Refuse a downloaded tarball that matches neither the registry nor packageManager.

    ``integrity`` is the registry's SRI string (any one of its hashes matching suffices);
    ``hash_algo``/``hash_hex`` the packageManager hash, checked against ``pm_data`` when
    given (the file :func:`pm_hashed_file` names), else ``data``. Each one given must match.
    """
    if not integrity and not hash_hex and not hash_algo:
        raise ValueError(
            "nothing to check the download against: the registry gave no integrity and "
            'package.json "packageManager" has no +<algo>.<hex> hash'
        )
    if integrity:
        tried = []
        for entry in integrity.split():
            algo, dash, b64 = entry.partition("-")
            if not dash or algo not in ("sha1", "sha256", "sha384", "sha512"):
                continue
            try:
                expected = base64.b64decode(b64.split("?", 1)[0], validate=True).hex()
            except (binascii.Error, ValueError):
                continue
            got = hashlib.new(algo, data).hexdigest()
            if got == expected:
                break
            tried.append(f"expected {algo} {_short(expected)}, got {_short(got)}")
        else:
            if not tried:
                raise ValueError(f"registry integrity {integrity!r} holds no usable hash")
            raise ValueError("registry integrity check failed: " + "; ".join(tried))
    if hash_algo or hash_hex:
        if hash_algo not in HASH_HEX_LENGTHS or not hash_hex:
            raise ValueError(
                f'package.json "packageManager" hash is incomplete or unknown: '
                f"{hash_algo!r} {hash_hex!r}"
            )
        got = hashlib.new(hash_algo, data if pm_data is None else pm_data).hexdigest()
        if got != hash_hex.lower():
            raise ValueError(
                f'package.json "packageManager" hash check failed: expected {hash_algo} '
                f"{_short(hash_hex.lower())}, got {_short(got)}"
            )


def host_files(pm: Mapping[str, object], pm_dir: str, node_bin: str) -> list[dict[str, str]]:
    """What installing the package manager ``pm`` (``detect``'s result, with ``archive``,
    ``archive_sha1`` and ``commands``) under ``pm_dir`` puts on the host, one entry each for
    ``hardenkit.nodeapp.drift`` and the role's write tasks: its two directories, the
    tarball (``archive``: the control node's copy, ``sha1`` its digest), one file the
    unpacked tarball holds (``unpacked``: only its presence is compared), and a wrapper per
    command (``content``), which runs the command's file with ``node_bin`` (bun's is a
    native executable, run as it is)."""
    commands = pm.get("commands") or {}
    if not isinstance(commands, Mapping) or not commands:
        raise ValueError("the package manager has no commands")
    root = {"owner": "root", "group": "root"}
    bin_dir = f"{pm_dir}/path"
    tarball = f"{pm_dir}/package.tgz"
    runner = "" if pm.get("native") else f"{node_bin} "
    files = [
        {"path": pm_dir, "state": "directory", "mode": "0755", **root},
        {"path": bin_dir, "state": "directory", "mode": "0755", **root},
        {"path": tarball, "archive": str(pm.get("archive") or ""), "mode": "0644", **root},
        {"path": f"{pm_dir}/{next(iter(commands.values()))}", "unpacked": tarball},
    ]
    if pm.get("archive_sha1"):
        files[2]["sha1"] = str(pm["archive_sha1"])
    for cmd, entry in commands.items():
        files.append(
            {
                "path": f"{bin_dir}/{cmd}",
                "content": f'#!/bin/sh\nexec {runner}{pm_dir}/{entry} "$@"\n',
                "mode": "0755",
                **root,
            }
        )
    return files
