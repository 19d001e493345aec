#!/usr/bin/env bash
# Run Molecule scenarios in stages; the lanes of a stage run at the same time, the scenarios
# of a lane one after the other. Scenarios share nothing (own containers, own ephemeral
# directory), and much of a scenario's time is waiting on round trips, reloads and sleeps,
# so two lanes finish well before the same scenarios in a row would.
#
#   scripts/molecule-lanes.sh "faults" "default broken_server|rollback cluster"
#
# Each argument is a stage; "|" separates its lanes. Output lines carry the scenario's name;
# each scenario's full log is also in $HARDENKIT_MOLECULE_LOGS (default .cache/molecule-logs).
# Exits non-zero if any scenario failed (the stages after it still run, so one failure does
# not hide another), and prints each scenario's time and result.
#
# A scenario may run in two halves, in different stages or in different calls: NAME:up runs
# its test sequence up to and including converge (the hosts are up, nothing verified yet),
# NAME:rest the steps after converge; a failed NAME:rest still destroys, as `molecule test`
# does. Without a suffix, the whole `molecule test`. HARDENKIT_MOLECULE_APPEND=1 adds to the
# summary of an earlier call instead of starting a new one.
#
# A failed scenario's reasons (its failing tasks' lines) are printed last, after the
# summary: where only the end of the output is kept (a CI page), that end says why.
set -uo pipefail

logs="${HARDENKIT_MOLECULE_LOGS:-.cache/molecule-logs}"
mkdir -p "$logs"
summary="$logs/summary.txt"
[[ "${HARDENKIT_MOLECULE_APPEND:-}" == 1 ]] || : >"$summary"

# The steps of a scenario's test sequence (its molecule.yml's, else the shared config's)
# before and including converge (up), or after it (rest).
steps() {
    python3 - "$1" "$2" <<'PY'
import sys
import yaml

name, half = sys.argv[1], sys.argv[2]
seq = None
for path in (f"molecule/{name}/molecule.yml", ".config/molecule/config.yml"):
    seq = (yaml.safe_load(open(path)).get("scenario") or {}).get("test_sequence")
    if seq:
        break
cut = seq.index("converge") + 1
print(" ".join(seq[:cut] if half == "up" else seq[cut:]))
PY
}

run() {
    local name=${1%%:*} half=${1#*:} step rc=0
    if [[ "$half" == "$1" ]]; then
        molecule test --scenario-name "$name"
        return
    fi
    for step in $(steps "$name" "$half"); do
        if [[ $rc -ne 0 && "$step" != destroy ]]; then
            continue
        fi
        molecule "$step" --scenario-name "$name"
        local step_rc=$?
        [[ $rc -ne 0 ]] || rc=$step_rc
    done
    return "$rc"
}

lane() {
    local s start rc log
    for s in "$@"; do
        start=$(date +%s)
        log="$logs/${s%%:*}.log"
        [[ "$s" == *:rest ]] || : >"$log"
        local from=$(( $(wc -l <"$log") + 1 ))
        run "$s" >>"$log" 2>&1 &
        local pid=$!
        tail -n "+$from" -f --pid="$pid" "$log" | sed -u "s/^/[$s] /" &
        local tailer=$!
        wait "$pid"
        rc=$?
        wait "$tailer" 2>/dev/null
        echo "molecule scenario $s: $([[ $rc -eq 0 ]] && echo passed || echo "FAILED (rc $rc)") in $(( $(date +%s) - start )) s" | tee -a "$summary"
        [[ $rc -eq 0 ]] || return 1
    done
}

failed=0
for stage in "$@"; do
    IFS='|' read -r -a lanes <<<"$stage"
    pids=()
    for l in "${lanes[@]}"; do
        read -r -a names <<<"$l"
        lane "${names[@]}" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || failed=1
    done
done

echo "--- molecule:"
cat "$summary"
# Why each failed scenario failed: the lines of its failing tasks, at most 12 per scenario.
sed -n 's/^molecule scenario \([^: ]*\)[^ ]*: FAILED.*/\1/p' "$summary" | sort -u | while read -r name; do
    echo "--- why $name failed (whole log: $logs/$name.log):"
    grep -E -A3 '^\[ERROR\]: |FAILED! => |CRITICAL ' "$logs/$name.log" \
        | grep -v '^--$' | cut -c1-300 | tail -n 12
done
exit "$failed"
