"""The sandbox fit (plugins/module_utils/sandbox.py): which settings a host accepts."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.sandbox import fit, status_text

SANDBOX = ["NoNewPrivileges=yes", "ProtectProc=invisible", "PrivateUsers=yes", "PrivateTmp=yes"]


def host(*conflicts: frozenset[str], broken: str = "") -> tuple[list[list[str]], object]:
    """A host whose units fail (217) when they hold all of a conflict set, or ``broken``."""
    seen: list[list[str]] = []

    def probe(trial):
        seen.append(list(trial))
        given = set(trial)
        if broken in given or any(c <= given for c in conflicts):
            return 217
        return 0

    return seen, probe


def test_a_host_that_accepts_all_costs_one_unit():
    seen, probe = host()
    assert fit(SANDBOX, probe) == (SANDBOX, [], 1)
    assert seen == [SANDBOX]


def test_without_ptrace_the_later_of_two_conflicting_settings_goes():
    _, probe = host(frozenset({"ProtectProc=invisible", "PrivateUsers=yes"}))
    kept, dropped, probes = fit(SANDBOX, probe)
    assert kept == ["NoNewPrivileges=yes", "ProtectProc=invisible", "PrivateTmp=yes"]
    assert dropped == [
        {
            "setting": "PrivateUsers=yes",
            "status": "217/USER",
            "with": ["NoNewPrivileges=yes", "ProtectProc=invisible"],
        }
    ]
    assert probes == 2 + len(SANDBOX)


def test_a_setting_that_fails_alone_goes_whatever_its_place():
    _, probe = host(broken="NoNewPrivileges=yes")
    kept, dropped, _ = fit(SANDBOX, probe)
    assert kept == SANDBOX[1:]
    assert [d["setting"] for d in dropped] == ["NoNewPrivileges=yes"]


def test_a_host_where_even_a_bare_unit_fails_is_an_error():
    def probe(trial):
        return 217

    with pytest.raises(RuntimeError, match=r"without any sandbox setting failed too .status 217/U"):
        fit(SANDBOX, probe)


def test_status_names():
    assert status_text(226) == "226/NAMESPACE"
    assert status_text(1) == "1"
