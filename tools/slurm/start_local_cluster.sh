#!/usr/bin/env bash
# Start a single-node SLURM cluster on this Debian machine, from Debian's packages, for testing
# carmscope's SLURM profile (profiles/slurm) against a real SLURM (docs/cluster.md).
#
#   sudo tools/slurm/start_local_cluster.sh [--accounting slurmdbd|none] [--partition NAME]
#                                           [--no-install]
#
#   --accounting slurmdbd  (default) job accounting through slurmdbd and a local MariaDB, so
#                          `sacct` works: the executor plugin's default status command.
#   --accounting none      no database; `sacct` then fails, so run Snakemake with
#                          `--slurm-status-command squeue` (MinJobAge is an hour here).
#   --partition NAME       name of the single (default) partition; default "debug".
#   --no-install           do not apt-get install missing packages (exit 3 if any is missing).
#
# Environment: CARMSCOPE_SLURM_MEM_MB (memory the node offers; default: the machine's, as
# `slurmd -C` reports it), CARMSCOPE_SLURM_CPUS (default and maximum: the machine's).
#
# There is no systemd here (and apt starts no services), so every daemon is started directly:
# munged (as user munge), mariadbd and slurmdbd (with --accounting slurmdbd), slurmctld, slurmd.
# Idempotent: daemons already up are reused; if the cluster is up with this configuration and
# the node is idle, nothing is done. Each daemon this script starts is recorded by pid in
# $CARMSCOPE_SLURM_STATE (default /run/carmscope-slurm); stop_local_cluster.sh stops exactly
# those. It writes /etc/slurm/slurm.conf (and slurmdbd.conf) only if absent or written by this
# script earlier (they carry a marker line); it never touches another SLURM's configuration.
#
# Exit status: 0 the node is idle and takes jobs; 1 a daemon did not come up (its log is
# printed); 2 usage; 3 this machine cannot host the cluster (not root, not Debian, packages
# cannot be installed): callers such as the tests skip on 3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${CARMSCOPE_SLURM_STATE:-/run/carmscope-slurm}"
MARKER="Written by carmscope tools/slurm/start_local_cluster.sh"
CLUSTER=carmscope
ACCOUNTING=slurmdbd
PARTITION=debug
INSTALL=1
SLURM_CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
LOG_DIR=/var/log/slurm
T0US=${EPOCHREALTIME/./}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --accounting) ACCOUNTING="${2:-}"; shift 2 ;;
        --accounting=*) ACCOUNTING="${1#*=}"; shift ;;
        --partition) PARTITION="${2:-}"; shift 2 ;;
        --partition=*) PARTITION="${1#*=}"; shift ;;
        --no-install) INSTALL=0; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$ACCOUNTING" in slurmdbd|none) ;; *) echo "--accounting must be slurmdbd or none" >&2; exit 2 ;; esac
[[ "$PARTITION" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "bad partition name: $PARTITION" >&2; exit 2; }

say() {
    local us=$(( ${EPOCHREALTIME/./} - T0US ))
    printf '[start_local_cluster %3d.%01ds] %s\n' $(( us / 1000000 )) $(( us / 100000 % 10 )) "$*"
}
unsupported() { echo "start_local_cluster: unsupported machine: $*" >&2; exit 3; }
fail() {
    echo "start_local_cluster: $1" >&2
    shift
    for log in "$@"; do
        [[ -f "$log" ]] && { echo "----- last lines of $log -----" >&2; tail -n 40 "$log" >&2; }
    done
    exit 1
}

[[ $(id -u) -eq 0 ]] || unsupported "must run as root (it installs packages and starts daemons)"
if [[ ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
    unsupported "needs Debian (apt-get and Debian's slurm-wlm packages)"
fi

# ---------------------------------------------------------------------------------- packages
PACKAGES=(munge slurmctld slurmd slurm-client)
BINARIES=(/usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/sacct)
if [[ $ACCOUNTING == slurmdbd ]]; then
    PACKAGES+=(slurmdbd mariadb-server)
    BINARIES+=(/usr/sbin/slurmdbd /usr/sbin/mariadbd /usr/bin/mariadb-admin)
fi
missing=0
for binary in "${BINARIES[@]}"; do [[ -x $binary ]] || missing=1; done
if [[ $missing -eq 1 ]]; then
    [[ $INSTALL -eq 1 ]] || unsupported "SLURM packages are missing and --no-install was given"
    say "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    install_packages() {
        timeout 600 apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
            >"/tmp/carmscope-slurm-apt.log" 2>&1
    }
    if ! install_packages; then
        say "apt-get install failed; running apt-get update and retrying"
        timeout 300 apt-get update -q >>"/tmp/carmscope-slurm-apt.log" 2>&1 || true
        install_packages || {
            tail -n 20 /tmp/carmscope-slurm-apt.log >&2
            unsupported "apt-get install ${PACKAGES[*]} failed (log: /tmp/carmscope-slurm-apt.log)"
        }
    fi
    say "packages installed"
fi

# ------------------------------------------------------------------------------- helpers
# running PID NAME: PID is a live process (not a zombie) whose name starts with NAME.
running() {
    local stat state
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    state=${stat##*) }
    [[ ${state%% *} != Z && $(cat "/proc/$1/comm" 2>/dev/null) == "$2"* ]]
}
# pid_alive PIDFILE NAME: the pid in PIDFILE is a running NAME.
pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && running "$pid" "$2"
}
# record NAME PIDFILE: this script started NAME; remember its pid for stop_local_cluster.sh.
record() { install -d -m 0755 "$STATE_DIR"; cp "$2" "$STATE_DIR/$1.pid"; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local deadline=$(( $(date +%s) + $1 )) description=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        (( $(date +%s) < deadline )) || return 1
        sleep 0.5
    done
    say "$description"
}
node_state() { timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n1; }
node_ready() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }
controller_up() { timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; }

# ------------------------------------------------------------------------------ configuration
HOST=$(hostname -s)
read -r CPUS MEM_MB < <(slurmd -C 2>/dev/null \
    | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p' | head -n1)
CPUS=${CARMSCOPE_SLURM_CPUS:-${CPUS:-$(nproc)}}
MEM_MB=${CARMSCOPE_SLURM_MEM_MB:-${MEM_MB:-$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)}}

if [[ -f $DBD_CONF ]] && grep -q "$MARKER" "$DBD_CONF"; then
    DB_PASS=$(sed -n 's/^StoragePass=//p' "$DBD_CONF")
else
    DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
if [[ $ACCOUNTING == slurmdbd ]]; then
    ACCOUNTING_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
    ACCOUNTING_LINES="# No job accounting: sacct fails; use --slurm-status-command squeue.
AccountingStorageType=accounting_storage/none"
fi

render() {  # render TEMPLATE: the template with its @NAME@ fields filled in
    local text
    text=$(<"$1")
    text=${text//@MARKER@/$MARKER}
    text=${text//@CLUSTER@/$CLUSTER}
    text=${text//@HOST@/$HOST}
    text=${text//@CPUS@/$CPUS}
    text=${text//@MEM_MB@/$MEM_MB}
    text=${text//@PARTITION@/$PARTITION}
    text=${text//@DB_PASS@/$DB_PASS}
    text=${text//@ACCOUNTING@/$ACCOUNTING_LINES}
    printf '%s\n' "$text"
}
NEW_SLURM_CONF=$(render "$HERE/slurm.conf.in")

if [[ -f $SLURM_CONF ]] && ! grep -q "$MARKER" "$SLURM_CONF"; then
    fail "$SLURM_CONF exists and was not written by this script: not touching another SLURM"
fi

# Already up with this configuration and the node takes jobs: nothing to do.
if [[ -f $SLURM_CONF && "$(<"$SLURM_CONF")" == "$NEW_SLURM_CONF" ]] && controller_up \
    && node_ready; then
    say "cluster '$CLUSTER' is already up: node $HOST is $(node_state); nothing to do"
    exit 0
fi

# Configuration changed (e.g. other --accounting) while our daemons run: restart them.
if [[ -f $SLURM_CONF && "$(<"$SLURM_CONF")" != "$NEW_SLURM_CONF" ]]; then
    for name in slurmd slurmctld slurmdbd; do
        if pid_alive "$STATE_DIR/$name.pid" "$name"; then
            say "configuration changed: restarting the daemons this script started"
            "$HERE/stop_local_cluster.sh"
            break
        elif pid_alive "/run/slurm/$name.pid" "$name"; then
            fail "$name runs (not started by this script) with another configuration; stop it first"
        fi
    done
fi

install -d -m 0755 /etc/slurm "$STATE_DIR"
install -d -m 0755 -o slurm -g slurm /run/slurm "$LOG_DIR" /var/lib/slurm \
    /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
printf '%s\n' "$NEW_SLURM_CONF" >"$SLURM_CONF.tmp" && mv "$SLURM_CONF.tmp" "$SLURM_CONF"
chmod 0644 "$SLURM_CONF"
say "wrote $SLURM_CONF (node $HOST: $CPUS CPUs, $MEM_MB MB; partition $PARTITION; accounting $ACCOUNTING)"

# --------------------------------------------------------------------------------- munged
if timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
    say "munged already running"
else
    install -d -m 0755 -o munge -g munge /run/munge
    install -d -m 0700 -o munge -g munge /var/log/munge
    install -d -m 0711 -o munge -g munge /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        install -d -m 0700 -o munge -g munge /etc/munge
        runuser -u munge -- mungekey --create --keyfile /etc/munge/munge.key
    fi
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid \
        || fail "munged did not start" /var/log/munge/munged.log
    wait_for 15 "munged started" bash -c 'munge -n | unmunge' \
        || fail "munged does not answer" /var/log/munge/munged.log
    record munged /run/munge/munged.pid
fi

# ---------------------------------------------------------------- MariaDB and slurmdbd
if [[ $ACCOUNTING == slurmdbd ]]; then
    if timeout 10 mariadb-admin --connect-timeout=2 ping >/dev/null 2>&1; then
        say "MariaDB already running"
    else
        install -d -m 0755 -o mysql -g mysql /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            timeout 120 mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
                >"$LOG_DIR/mariadb-install.log" 2>&1 \
                || fail "mariadb-install-db failed" "$LOG_DIR/mariadb-install.log"
        fi
        rm -f /run/mysqld/mysqld.pid
        setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
            --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 \
            --innodb-lock-wait-timeout=900 --innodb-buffer-pool-size=256M \
            --log-error="$LOG_DIR/mariadb.log" </dev/null >/dev/null 2>&1 &
        wait_for 60 "MariaDB started" mariadb-admin --connect-timeout=2 ping \
            || fail "MariaDB did not start" "$LOG_DIR/mariadb.log"
        wait_for 10 "MariaDB pid file written" test -s /run/mysqld/mysqld.pid \
            || fail "MariaDB wrote no pid file" "$LOG_DIR/mariadb.log"
        record mariadbd /run/mysqld/mysqld.pid
    fi
    timeout 30 mariadb <<SQL || fail "could not create the accounting database" "$LOG_DIR/mariadb.log"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
    NEW_DBD_CONF=$(render "$HERE/slurmdbd.conf.in")
    if [[ ! -f $DBD_CONF || "$(<"$DBD_CONF")" != "$NEW_DBD_CONF" ]]; then
        if [[ -f $DBD_CONF ]] && ! grep -q "$MARKER" "$DBD_CONF"; then
            fail "$DBD_CONF exists and was not written by this script: not touching it"
        fi
        (umask 077; printf '%s\n' "$NEW_DBD_CONF" >"$DBD_CONF")
    fi
    chown slurm:slurm "$DBD_CONF"
    chmod 0600 "$DBD_CONF"
    dbd_up() { timeout 10 sacctmgr -n list cluster format=cluster%40; }
    if pid_alive /run/slurm/slurmdbd.pid slurmdbd && dbd_up >/dev/null 2>&1; then
        say "slurmdbd already running"
    else
        rm -f /run/slurm/slurmdbd.pid
        /usr/sbin/slurmdbd || fail "slurmdbd did not start" "$LOG_DIR/slurmdbd.log"
        wait_for 60 "slurmdbd started" dbd_up || fail "slurmdbd does not answer" "$LOG_DIR/slurmdbd.log"
        wait_for 10 "slurmdbd pid file written" test -s /run/slurm/slurmdbd.pid \
            || fail "slurmdbd wrote no pid file" "$LOG_DIR/slurmdbd.log"
        record slurmdbd /run/slurm/slurmdbd.pid
    fi
    # The cluster and an account for the submitting users: sacct then shows their jobs, and
    # the executor plugin's account check (sacctmgr) finds a valid account.
    if ! dbd_up 2>/dev/null | grep -qw "$CLUSTER"; then
        timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! timeout 10 sacctmgr -n list account "$CLUSTER" format=account%40 | grep -qw "$CLUSTER"; then
        timeout 20 sacctmgr -i add account "$CLUSTER" cluster="$CLUSTER" \
            description="carmscope test jobs" organization=carmscope >/dev/null
    fi
    # root is in account "root" from the start; other submitting users go into "carmscope".
    for user in ${SUDO_USER:-}; do
        if ! timeout 10 sacctmgr -n list user "$user" format=user%40 | grep -qw "$user"; then
            timeout 20 sacctmgr -i add user "$user" account="$CLUSTER" \
                defaultaccount="$CLUSTER" cluster="$CLUSTER" >/dev/null
        fi
    done
    say "accounting: slurmdbd with MariaDB, cluster '$CLUSTER' registered"
fi

# -------------------------------------------------------------------------------- slurmctld
if pid_alive /run/slurm/slurmctld.pid slurmctld && controller_up; then
    say "slurmctld already running; reconfiguring"
    timeout 20 scontrol reconfigure >/dev/null || true
else
    rm -f /run/slurm/slurmctld.pid
    /usr/sbin/slurmctld || fail "slurmctld did not start" "$LOG_DIR/slurmctld.log"
    wait_for 30 "slurmctld started" controller_up \
        || fail "slurmctld does not answer" "$LOG_DIR/slurmctld.log"
    wait_for 10 "slurmctld pid file written" test -s /run/slurm/slurmctld.pid \
        || fail "slurmctld wrote no pid file" "$LOG_DIR/slurmctld.log"
    record slurmctld /run/slurm/slurmctld.pid
fi

# ---------------------------------------------------------------------------------- slurmd
if pid_alive /run/slurm/slurmd.pid slurmd; then
    say "slurmd already running"
else
    rm -f /run/slurm/slurmd.pid
    /usr/sbin/slurmd || fail "slurmd did not start" "$LOG_DIR/slurmd.log"
    wait_for 10 "slurmd pid file written" test -s /run/slurm/slurmd.pid \
        || fail "slurmd wrote no pid file" "$LOG_DIR/slurmd.log"
    record slurmd /run/slurm/slurmd.pid
fi
# A node left down or drained by an earlier unclean stop takes jobs again.
if [[ $(node_state) =~ ^(down|drained|draining|drain) ]]; then
    timeout 10 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
fi
wait_for 60 "node $HOST takes jobs" node_ready \
    || fail "node $HOST is not idle (state: $(node_state))" "$LOG_DIR/slurmd.log" \
        "$LOG_DIR/slurmctld.log"
say "cluster '$CLUSTER' up: partition $PARTITION, node $HOST idle ($(timeout 10 sinfo -h -o '%c CPUs, %m MB'))"
