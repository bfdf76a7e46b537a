#!/usr/bin/env bash
# Stop the one-node Slurm cluster that tests/slurm/start.sh started: only the daemons whose pid
# files it keeps in $MLMI_SLURM_DIR (default /tmp/mlmi-slurm); a munged it did not start is left running.
set -uo pipefail

STATE=${MLMI_SLURM_DIR:-/tmp/mlmi-slurm}
for daemon in slurmd slurmctld munged; do
    pidfile=$STATE/$daemon.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$pidfile"
done
echo "Slurm stopped"
