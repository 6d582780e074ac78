#!/usr/bin/env bash
# Stop the daemons that tests/slurm/setup.sh started (by their recorded pids), nothing else.
set -uo pipefail
state=/run/utenforsk-slurm
[ -d "$state" ] || exit 0
if [ -f "$state/slurmctld.pid" ] && command -v scancel >/dev/null; then
  scancel --quiet --full --user=root 2>/dev/null || true   # jobs the tests left behind
fi
for name in slurmd slurmctld munged; do
  pidfile="$state/$name.pid"
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  echo "slurm teardown: stopped $name ($pid)"
done
rmdir "$state" 2>/dev/null || true
exit 0
