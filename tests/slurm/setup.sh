#!/usr/bin/env bash
# Start a one-node SLURM cluster (munge, slurmctld, slurmd) for tests/test_hpc.py.
# Needs root and apt-get (Debian). Idempotent: a cluster that already answers is left as it is.
# Stop it with tests/slurm/teardown.sh (it stops only what this script started).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state=/run/utenforsk-slurm          # pids of the daemons this script started
log() { echo "slurm setup: $*"; }

if [ "$(id -u)" != 0 ]; then log "not root: skipped"; exit 0; fi

if command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP \
   && sinfo -h -o %T 2>/dev/null | grep -Eq 'idle|mix|alloc'; then
  log "a cluster already answers; left as it is"; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { log "no apt-get: cannot install slurm"; exit 1; }
  log "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

host="$(hostname -s)"
cpus="$(nproc)"
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$state"
conf=/etc/slurm/slurm.conf
if [ -f "$conf" ] && ! grep -q utenforsk-test-cluster "$conf"; then
  log "$conf exists and is not ours; not overwritten"; exit 1
fi
sed -e "s/@HOST@/$host/g" -e "s/@CPUS@/$cpus/g" -e "s/@MEM@/$mem/g" "$here/slurm.conf.in" > "$conf"

# munge: a key, its directories, the daemon (as the munge user)
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$state/munged.pid"
fi
munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }

if ! alive /run/slurmctld.pid; then
  slurmctld -c
  sleep 1
  cp /run/slurmctld.pid "$state/slurmctld.pid"
fi
if ! alive /run/slurmd.pid; then
  slurmd -c
  sleep 1
  cp /run/slurmd.pid "$state/slurmd.pid"
fi

for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
    log "node $host ($cpus CPUs, ${mem} MB) is up: $(sinfo -h -o '%P %T %N' | tr '\n' ' ')"
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
log "the node did not come up; logs:"
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log || true
exit 1
