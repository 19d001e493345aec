"""Choosing a Node.js build (plugins/module_utils/nodeversion.py): specs, ranges, downloads."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.nodeversion import (
    clean_spec,
    host_arch,
    parse_index,
    parse_range,
    parse_shasums,
    pick_spec,
    resolve,
    satisfies,
    tarball_name,
)

BOTH = ["linux-x64", "linux-arm64", "osx-arm64-tar", "win-x64-zip"]

# A slice of dist/index.json, out of order as a mirror may serve it: 24 and 23 are current
# (no LTS), 22 turned LTS (jod) at 22.11.0, which here lacks a linux-arm64 build.
INDEX = [
    {"version": "v22.12.0", "lts": "Jod", "files": BOTH},
    {"version": "v24.1.0", "lts": False, "files": BOTH},
    {"version": "v24.0.0", "lts": False, "files": BOTH},
    {"version": "v23.11.1", "lts": False, "files": BOTH},
    {"version": "v22.11.0", "lts": "Jod", "files": ["linux-x64", "win-x64-zip"]},
    {"version": "v22.10.0", "lts": False, "files": BOTH},
    {"version": "v21.7.3", "lts": False, "files": BOTH},
    {"version": "v20.18.1", "lts": "Iron", "files": BOTH},
    {"version": "v20.11.1", "lts": "Iron", "files": BOTH},
    {"version": "v20.9.0", "lts": "Iron", "files": BOTH},
    {"version": "v20.8.0", "lts": False, "files": BOTH},
    {"version": "v18.20.5", "lts": "Hydrogen", "files": BOTH},
    {"version": "v18.18.2", "lts": "Hydrogen", "files": BOTH},
    {"version": "v16.20.2", "lts": "Gallium", "files": ["linux-x64"]},
    {"version": "nightly-2024", "lts": False, "files": BOTH},
]
RELEASES = parse_index(INDEX)


def pick(spec, arch="linux-x64", source="node_runtime_version"):
    return resolve(spec, RELEASES, source=source, arch=arch)["version"]


# --- the index ----------------------------------------------------------------------------


def test_the_index_is_read_newest_first_and_foreign_entries_are_skipped():
    assert [r["text"] for r in RELEASES][:5] == [
        "24.1.0",
        "24.0.0",
        "23.11.1",
        "22.12.0",
        "22.11.0",
    ]
    assert len(RELEASES) == len(INDEX) - 1
    assert RELEASES[3] == {"version": (22, 12, 0), "text": "22.12.0", "lts": "jod", "files": BOTH}
    assert RELEASES[0]["lts"] is None


# --- semver ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "yes", "no"),
    [
        ("1.2.3", ["1.2.3"], ["1.2.4", "1.2.2"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("v1.2.3", ["1.2.3"], ["1.2.4"]),
        ("1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1.9"]),
        ("1", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.9"]),
        ("1.x", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("1.*", ["1.5.0"], ["2.0.0"]),
        ("1.X.x", ["1.5.0"], ["2.0.0"]),
        ("1.x.3", ["1.0.0", "1.9.9"], ["2.0.0"]),  # a wildcard makes the rest wildcards
        ("1.2.x", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("*", ["0.0.0", "99.0.0"], []),
        ("x", ["1.0.0"], []),
        ("", ["1.0.0"], []),
        (">=*", ["1.0.0"], []),
        ("<=*", ["1.0.0"], []),
        (">*", [], ["0.0.0", "99.0.0"]),
        ("<*", [], ["0.0.0", "99.0.0"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        (">1", ["2.0.0"], ["1.9.9"]),
        (">=1.2.3", ["1.2.3", "9.0.0"], ["1.2.2"]),
        (">=1.2", ["1.2.0"], ["1.1.9"]),
        (">= 1", ["1.0.0"], ["0.9.9"]),
        ("<1.2.3", ["1.2.2"], ["1.2.3"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        ("<1", ["0.9.9"], ["1.0.0"]),
        ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<=1", ["1.9.9"], ["2.0.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("~>1.2.3", ["1.2.9"], ["1.3.0"]),
        ("~ 1.2", ["1.2.5"], ["1.3.0"]),
        ("^1.2.3", ["1.2.3", "1.9.9"], ["1.2.2", "2.0.0"]),
        ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        ("^1", ["1.0.0", "1.9.9"], ["2.0.0"]),
        ("^1.x", ["1.0.0"], ["2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("^0.0", ["0.0.9"], ["0.1.0"]),
        ("^0", ["0.9.9"], ["1.0.0"]),
        ("1.2.3 - 2.3.4", ["1.2.3", "2.3.4"], ["1.2.2", "2.3.5"]),
        ("1.2 - 2.3", ["1.2.0", "2.3.9"], ["1.1.9", "2.4.0"]),
        ("1 - 2", ["1.0.0", "2.9.9"], ["0.9.9", "3.0.0"]),
        ("* - 2", ["0.0.0", "2.9.9"], ["3.0.0"]),
        ("1 - *", ["1.0.0", "99.0.0"], ["0.9.9"]),
        (">=1.2.3 <2", ["1.2.3", "1.9.9"], ["1.2.2", "2.0.0"]),
        ("  >=  1.2.3   <  2  ", ["1.5.0"], ["2.0.0"]),
        (">1 <1", [], ["1.0.0", "2.0.0"]),
        ("1.2.3 || 2.x", ["1.2.3", "2.5.0"], ["1.2.4", "3.0.0"]),
        ("1 || 3 - 4 || >=9", ["1.5.0", "3.0.0", "4.9.9", "10.0.0"], ["2.0.0", "5.0.0"]),
        ("||", ["1.0.0"], []),
        ("1.2.3+build.5", ["1.2.3"], ["1.2.4"]),
        # Prereleases sort just below their release; no release is one.
        ("<21.0.0-0", ["20.9.9"], ["21.0.0"]),
        (">=20.0.0-0", ["20.0.0"], ["19.9.9"]),
        (">20.0.0-rc.1", ["20.0.0"], ["19.9.9"]),
        ("=20.0.0-rc.1", [], ["20.0.0"]),
    ],
)
def test_ranges(spec, yes, no):
    alternatives = parse_range(spec)
    for text in yes:
        assert satisfies(tuple(int(n) for n in text.split(".")), alternatives), (spec, text)
    for text in no:
        assert not satisfies(tuple(int(n) for n in text.split(".")), alternatives), (spec, text)


@pytest.mark.parametrize(
    "spec",
    [
        ">=20,<21",
        "20.x.y",
        "abc",
        ">>20",
        "1.2.3.4",
        "1 -2",
        "18 -",
        "^",
        "=> 20",
        "20 - 22 - 24",
        "system",
        "lts",
        "1.2.3-",
        "-1",
    ],
)
def test_text_that_is_no_range_is_refused(spec):
    with pytest.raises(ValueError, match=r"not a version"):
        parse_range(spec)


# --- resolve ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        # node_runtime_version
        (None, "22.12.0"),
        ("", "22.12.0"),
        ("lts", "22.12.0"),
        ("latest", "24.1.0"),
        ("current", "24.1.0"),
        ("node", "24.1.0"),
        ("22", "22.12.0"),
        ("23", "23.11.1"),
        ("22.11", "22.11.0"),
        ("22.10", "22.10.0"),
        ("22.11.0", "22.11.0"),
        ("v22.11.0", "22.11.0"),
        ("20.8", "20.8.0"),  # a bare version takes the newest release that starts so, LTS or not
        # .nvmrc / .node-version
        ("v20", "20.18.1"),
        ("20.11.1", "20.11.1"),
        ("lts/*", "22.12.0"),
        ("LTS/*", "22.12.0"),
        ("lts/iron", "20.18.1"),
        ("lts/Iron", "20.18.1"),
        ("lts/-1", "20.18.1"),
        ("lts/-2", "18.20.5"),
        ("lts/-0", "22.12.0"),
        ("stable", "24.1.0"),
        ("v20.11.1\n", "20.11.1"),
        ("  lts/hydrogen  \n", "18.20.5"),
        ("# pinned for prod\n\nv20.11.1   # matches CI\n", "20.11.1"),
        ("  \n# nothing here\n", "22.12.0"),
        # engines.node: a range takes its newest LTS release
        (">=20.9.0", "22.12.0"),
        (">= 20", "22.12.0"),
        (">=18.18 <21", "20.18.1"),
        ("^20.9.0", "20.18.1"),
        ("~20.11.0", "20.11.1"),
        ("~20.9", "20.9.0"),
        ("20.x", "20.18.1"),
        ("20.*", "20.18.1"),
        ("18 || 20 || >=22", "22.12.0"),
        ("^18.18 || ^20.9", "20.18.1"),
        ("=20.11.1", "20.11.1"),
        ("18.17 - 20", "20.18.1"),
        ("16 - 18.18", "18.18.2"),
        ("*", "22.12.0"),
        ("<21", "20.18.1"),
        (">20 <23", "22.12.0"),
        # ... or, when none in it is LTS, its newest
        (">=23", "24.1.0"),
        ("20.8.x", "20.8.0"),
        (">=21 <22", "21.7.3"),
    ],
)
def test_resolve(spec, version):
    assert pick(spec) == version


def test_resolve_reports_what_it_chose_and_why():
    assert resolve(
        ">=20.9.0", RELEASES, source="package.json engines.node", arch="linux-arm64"
    ) == {
        "version": "22.12.0",
        "major": 22,
        "lts": "jod",
        "source": "package.json engines.node",
        "spec": ">=20.9.0",
    }
    assert resolve(None, RELEASES, source="the newest LTS", arch="linux-x64")["spec"] is None
    chosen = resolve("# pin\n23\n", RELEASES, source=".nvmrc", arch="linux-x64")
    assert chosen == {
        "version": "23.11.1",
        "major": 23,
        "lts": None,
        "source": ".nvmrc",
        "spec": "23",
    }


def test_a_release_without_a_build_for_the_host_is_passed_over():
    # 22.11.0 has no linux-arm64 build: a range goes on to the next release in it ...
    assert pick("~22.11", arch="linux-x64") == "22.11.0"
    assert pick(">=22.11.0 <22.12", arch="linux-x64") == "22.11.0"
    assert pick("22.10 - 22.11", arch="linux-arm64") == "22.10.0"
    # ... and prefers a non-LTS release with a build to an LTS one without
    assert pick("16 || 24", arch="linux-arm64") == "24.1.0"
    assert pick("16 || 24", arch="linux-x64") == "16.20.2"
    assert pick("lts/gallium", arch="linux-x64") == "16.20.2"


def test_a_version_without_a_build_for_the_host_says_so():
    with pytest.raises(ValueError) as caught:
        pick("22.11.0", arch="linux-arm64", source=".node-version")
    message = str(caught.value)
    assert message.startswith(
        ".node-version asks for Node.js '22.11.0', but no release it"
        " allows (22.11.0) has an official linux-arm64 build."
    )
    assert "Newest linux-arm64 releases: 24.1.0, 23.11.1, 22.12.0 (LTS jod), 21.7.3." in message
    assert message.endswith(
        "Change .node-version to allow one of them, or set node_runtime_version."
    )


def test_a_spec_nothing_matches_names_its_source_and_what_there_is():
    with pytest.raises(ValueError) as caught:
        pick(">=26", source="package.json engines.node")
    assert str(caught.value) == (
        "package.json engines.node asks for Node.js '>=26', but no official Node.js release"
        " matches it. Newest linux-x64 releases: 24.1.0, 23.11.1, 22.12.0 (LTS jod), 21.7.3."
        " Change package.json engines.node to allow one of them, or set node_runtime_version."
    )


def test_node_runtime_version_is_not_told_to_set_itself():
    with pytest.raises(ValueError, match=r"^node_runtime_version asks for Node.js '19'") as caught:
        pick("19")
    assert str(caught.value).endswith("Change node_runtime_version to allow one of them.")


def test_an_alias_is_explained_when_nothing_matches():
    releases = parse_index([{"version": "v23.1.0", "lts": False, "files": BOTH}])
    with pytest.raises(ValueError, match=r"^.nvmrc asks for Node.js 'lts/\*' \(the newest LTS"):
        resolve("lts/*", releases, source=".nvmrc", arch="linux-x64")
    with pytest.raises(
        ValueError,
        match=r"^No Node.js version is set, so the newest LTS"
        r" release is used, but there is none. Newest linux-x64"
        r" releases: 23.1.0. Set node_runtime_version to one",
    ):
        resolve(None, releases, source="the newest LTS", arch="linux-x64")


def test_an_architecture_nodejs_org_does_not_build_for_is_named():
    with pytest.raises(ValueError, match=r"^.nvmrc: nodejs.org has no linux-s390x build of any"):
        resolve("22", RELEASES, source=".nvmrc", arch="linux-s390x")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (">=20,<21", r"^package.json engines.node: cannot read '>=20,<21' as a Node.js version"),
        ("system", r"^package.json engines.node: cannot read 'system' .*for example 22, "),
        (
            "lts/argon",
            r"^package.json engines.node asks for Node.js 'lts/argon', but no Node.js"
            r" LTS line is called 'argon'; .*: jod, iron, hydrogen, gallium$",
        ),
        ("lts/-4", r"only 4 LTS lines \(jod, iron, hydrogen, gallium\)"),
        ("20\n22\n", r"^package.json engines.node holds more than one line: '20 / 22'"),
    ],
)
def test_a_spec_that_cannot_be_read_names_its_source(spec, message):
    with pytest.raises(ValueError, match=message):
        pick(spec, source="package.json engines.node")


# --- pick_spec ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "chosen"),
    [
        (("22", "20", "18", ">=16"), ("22", "node_runtime_version")),
        (("", "v20.11.1\n", "18", ">=16"), ("v20.11.1", ".nvmrc")),
        ((None, None, " 18.20.5\n", ">=16"), ("18.20.5", ".node-version")),
        (("", "# nothing\n", "", ">=16 <23"), (">=16 <23", "package.json engines.node")),
        (("  ", None, None, None), (None, "the newest LTS")),
        ((22, None, None, None), ("22", "node_runtime_version")),
    ],
)
def test_pick_spec(given, chosen):
    assert pick_spec(*given) == chosen


def test_a_file_that_cannot_be_cleaned_still_wins_and_resolve_reports_it():
    spec, source = pick_spec("", "20\n22\n", "18", None)
    assert (spec, source) == ("20\n22\n", ".nvmrc")
    with pytest.raises(ValueError, match=r"^.nvmrc holds more than one line"):
        resolve(spec, RELEASES, source=source, arch="linux-x64")


def test_clean_spec():
    assert clean_spec(None) == ""
    assert clean_spec("\n  v22 # jod \n\n") == "v22"
    assert clean_spec("#only a comment") == ""


# --- downloads ----------------------------------------------------------------------------


def test_tarball_name():
    assert tarball_name("22.11.0", "linux-x64") == "node-v22.11.0-linux-x64.tar.xz"
    assert tarball_name("v20.18.1", "linux-arm64") == "node-v20.18.1-linux-arm64.tar.xz"


def test_parse_shasums():
    x64 = "a" * 64
    arm = "B" * 64
    text = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        f"{x64}  node-v22.11.0-linux-x64.tar.xz\n"
        f"{arm} *node-v22.11.0-linux-arm64.tar.xz\r\n"
        "\n"
        "deadbeef  short.tar.xz\n"
        "-----BEGIN PGP SIGNATURE-----\n"
    )
    assert parse_shasums(text) == {
        "node-v22.11.0-linux-x64.tar.xz": x64,
        "node-v22.11.0-linux-arm64.tar.xz": "b" * 64,
    }
    assert parse_shasums("") == {}


@pytest.mark.parametrize(
    ("fact", "arch"),
    [
        ("x86_64", "linux-x64"),
        ("amd64", "linux-x64"),
        ("aarch64", "linux-arm64"),
        ("arm64", "linux-arm64"),
        ("AArch64 ", "linux-arm64"),
    ],
)
def test_host_arch(fact, arch):
    assert host_arch(fact) == arch


def test_an_unsupported_architecture_names_the_supported_ones():
    with pytest.raises(ValueError, match=r"'armv7l': only x86_64 \(linux-x64\) and aarch64"):
        host_arch("armv7l")
