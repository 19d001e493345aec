#!/usr/bin/python3
"""Owner, mode and content digest of what an app user must never reach (molecule/hostile_app):
/etc's own entry and its account, sudo, cron and profile files, /root, and every setuid or
setgid file. Printed as JSON; two runs are compared."""

import hashlib
import json
import os
import stat
import sys

WATCH = [
    "/etc",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/root",
    "/usr/local/bin",
]
LISTED = ["/etc/cron.d", "/etc/profile.d", "/etc/sudoers.d", "/etc/cron.daily", "/root"]
SKIP = {"/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/srv"}


def entry(path):
    st = os.lstat(path)
    out = {"uid": st.st_uid, "gid": st.st_gid, "mode": oct(st.st_mode)}
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as fh:
            out["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        out["link"] = os.readlink(path)
    return out


state = {p: entry(p) for p in WATCH}
for d in LISTED:
    for name in sorted(os.listdir(d)):
        if d == "/root" and name == ".ansible":
            continue  # Ansible's own temporary files
        state[f"{d}/{name}"] = entry(f"{d}/{name}")
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP]
    for name in files:
        path = os.path.join(top, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            state[path] = entry(path)
json.dump(state, sys.stdout, indent=1, sort_keys=True)
