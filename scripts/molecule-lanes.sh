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
set -uo pipefail

logs="${HARDENKIT_MOLECULE_LOGS:-.cache/molecule-logs}"
mkdir -p "$logs"
summary="$logs/summary.txt"
: >"$summary"

lane() {
    local s start rc
    for s in "$@"; do
        start=$(date +%s)
        molecule test --scenario-name "$s" >"$logs/$s.log" 2>&1 &
        local pid=$!
        tail -n +1 -f --pid="$pid" "$logs/$s.log" | sed -u "s/^/[$s] /" &
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
exit "$failed"
