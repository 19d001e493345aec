#!/usr/bin/env python3
"""Print this app's PM2 processes as JSON: {"god": pid, "workers": {pm_id: pid}, "restarts":
{pm_id: restart_time}, "status": {pm_id: status}}, asking the app user's PM2.

Only when PM2's daemon runs (its pid file names a live process): a `pm2` call with no daemon
starts one, outside systemd. With no daemon it prints {"god": null} and exits 3.

Usage: pm2_pids.py APP_USER PM2_HOME
"""

import json
import os
import subprocess
import sys


def main() -> int:
    user, home = sys.argv[1], sys.argv[2]
    try:
        with open(f"{home}/pm2.pid", encoding="utf-8") as fh:
            god = int(fh.read().strip())
        os.kill(god, 0)
    except (OSError, ValueError):
        print(json.dumps({"god": None}))
        return 3
    out = subprocess.run(
        ["runuser", "-u", user, "--", "env", f"PM2_HOME={home}", "/usr/local/bin/pm2", "jlist"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    procs = json.loads(out[out.index("[") :])
    print(
        json.dumps(
            {
                "god": god,
                "workers": {str(p["pm_id"]): p["pid"] for p in procs},
                "restarts": {str(p["pm_id"]): p["pm2_env"].get("restart_time", 0) for p in procs},
                "status": {str(p["pm_id"]): p["pm2_env"].get("status") for p in procs},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
