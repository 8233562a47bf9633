#!/usr/bin/env bash
# Stop the single-node SLURM cluster that tools/slurm/start_local_cluster.sh started.
#
#   sudo tools/slurm/stop_local_cluster.sh [DAEMON...]
#
# Stops only the daemons that start_local_cluster.sh started (or, if DAEMON names are given,
# only those of them: slurmd slurmctld slurmdbd mariadbd munged), as recorded by pid in
# $CARMSCOPE_SLURM_STATE (default /run/carmscope-slurm): slurmd, slurmctld, slurmdbd, mariadbd,
# munged, in that order; a daemon that was already running before (not recorded) is left alone.
# If it started slurmctld, it first cancels the jobs still queued or running on that cluster.
# Each daemon gets SIGTERM, then SIGKILL after 20 s. Idempotent: with nothing recorded, it does
# nothing. Spool, accounting database and slurmdbd.conf stay, so the next start is quick;
# /etc/slurm/slurm.conf (written by the start script) is removed once no slurmctld runs.
set -uo pipefail

STATE_DIR="${CARMSCOPE_SLURM_STATE:-/run/carmscope-slurm}"
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)
if [[ $# -gt 0 ]]; then
    for name in "$@"; do
        [[ " ${DAEMONS[*]} " == *" $name "* ]] \
            || { echo "stop_local_cluster: unknown daemon $name (one of ${DAEMONS[*]})" >&2; exit 2; }
    done
    WANTED=" $* "
else
    WANTED=" ${DAEMONS[*]} "
fi

say() { echo "[stop_local_cluster] $*"; }

# running PID NAME: PID is a live process (not a zombie) whose name starts with NAME.
running() {
    local stat state
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    state=${stat##*) }
    [[ ${state%% *} != Z && $(cat "/proc/$1/comm" 2>/dev/null) == "$2"* ]]
}

# pid_of NAME: the recorded pid of NAME if that process is still NAME, else nothing.
pid_of() {
    local file="$STATE_DIR/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    if [[ -n $pid ]] && running "$pid" "$1"; then
        echo "$pid"
    else
        say "$1 (pid ${pid:-?}) is no longer running"
        rm -f "$file"
        return 1
    fi
}

# With slurm.conf present but no slurmctld, every SLURM client call (and so every Snakemake
# start: the SLURM executor plugin runs `scontrol show config` when it is imported) waits about
# 10 s for the controller; without it they fail at once. The start script writes it again.
forget_config() {
    local pid
    pid=$(tr -dc '0-9' 2>/dev/null </run/slurm/slurmctld.pid)
    if ! { [[ -n $pid ]] && running "$pid" slurmctld; } \
        && grep -qs "Written by carmscope tools/slurm/start_local_cluster.sh" /etc/slurm/slurm.conf
    then
        rm -f /etc/slurm/slurm.conf
        say "removed /etc/slurm/slurm.conf (no controller runs; start_local_cluster.sh writes it)"
    fi
}

if [[ ! -d $STATE_DIR ]] || [[ -z $(ls -A "$STATE_DIR" 2>/dev/null) ]]; then
    say "nothing recorded in $STATE_DIR: no daemon of ours to stop"
    [[ $(id -u) -eq 0 ]] && forget_config
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "stop_local_cluster: must run as root" >&2; exit 1; }

# Jobs still on our cluster: cancel them so their processes end with the daemons.
if [[ $WANTED == *" slurmctld "* ]] && pid_of slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        say "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        timeout 15 scancel $jobs 2>/dev/null || true
        for _ in $(seq 30); do
            [[ -z $(timeout 10 squeue -h -t RUNNING,COMPLETING,PENDING -o %A 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
fi

status=0
for name in "${DAEMONS[@]}"; do
    [[ $WANTED == *" $name "* ]] || continue
    pid=$(pid_of "$name") || continue
    t0=$(( ${EPOCHREALTIME/./} / 1000 ))
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        running "$pid" "$name" || break
        sleep 0.1
    done
    if running "$pid" "$name"; then
        say "$name (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    if running "$pid" "$name"; then
        say "could not stop $name (pid $pid)"
        status=1
    else
        say "stopped $name (pid $pid) in $(( ${EPOCHREALTIME/./} / 1000 - t0 )) ms"
        rm -f "$STATE_DIR/$name.pid"
    fi
done
forget_config
rmdir "$STATE_DIR" 2>/dev/null || true
exit $status
