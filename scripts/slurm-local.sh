#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the tests of `cargo xtask reproduce --slurm`
# (crates/spat-reproduce/tests/slurm.rs): munge, MariaDB + slurmdbd (accounting, so that sacct works), slurmctld and
# slurmd, with their configuration, keys, databases, state, logs and pid files in one private
# directory and on private ports, so that nothing of the machine's own configuration is used or
# changed. The one shared path is munge's default socket (/run/munge/munge.socket.2; see below).
#
#   scripts/slurm-local.sh start [DIR]   # start (default DIR: target/slurm-local); prints the env file
#   scripts/slurm-local.sh stop [DIR]    # stop the daemons started from DIR (by their pid files)
#   scripts/slurm-local.sh status [DIR]
#   source DIR/env                      # SLURM_CONF for sbatch, squeue, sacct, scancel, ...
#
# Needs Debian's packages (`apt-get install -y slurm-wlm slurmdbd munge mariadb-server`) and root:
# Slurm runs jobs as the submitting user, and these daemons run as root here (SlurmUser=root).
# Ports: SPAT_SLURM_PORT (default 16817) for slurmctld, +1 for slurmd, +2 for slurmdbd, and
# SPAT_SLURM_DB_PORT (default 13306) for MariaDB, on 127.0.0.1.
set -euo pipefail

cmd="${1:-}"
dir="${2:-$(cd "$(dirname "$0")/.." && pwd)/target/slurm-local}"
port="${SPAT_SLURM_PORT:-16817}"
db_port="${SPAT_SLURM_DB_PORT:-13306}"

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*" >&2; }

# Waits up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
    local secs="$1"; shift
    local end=$(( $(date +%s) + secs ))
    while [ "$(date +%s)" -lt "$end" ]; do
        if timeout 10 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
    [ -d "$dir" ] || { say "nothing at $dir"; return 0; }
    # Reverse start order; each daemon by the pid file it wrote in this directory.
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        local pidfile="$dir/run/$name.pid"
        if pid_alive "$pidfile"; then
            local pid; pid="$(cat "$pidfile")"
            kill "$pid" 2>/dev/null || true
            if ! wait_for 30 bash -c "! kill -0 $pid"; then
                say "$name (pid $pid) did not stop on SIGTERM; killing it"
                kill -9 "$pid" 2>/dev/null || true
            fi
            say "stopped $name (pid $pid)"
        fi
        rm -f "$pidfile"
    done
}

start() {
    [ "$(id -u)" = 0 ] || die "needs root (the daemons run as root; CI runs as root)"
    for b in munged mungekey mariadb-install-db mariadbd mariadb slurmdbd slurmctld slurmd sacctmgr sinfo; do
        command -v "$b" >/dev/null || die "$b not found: apt-get install -y slurm-wlm slurmdbd munge mariadb-server"
    done
    if pid_alive "$dir/run/slurmctld.pid"; then
        say "already running from $dir"; echo "$dir/env"; return 0
    fi
    mkdir -p "$dir"/{etc,run,log,munge,state,spool}
    chmod 700 "$dir/munge"
    local host; host="$(hostname -s)"
    local t0; t0=$(date +%s)

    # munge, on its default socket: Slurm 22.05's clients do not pass slurm.conf's
    # AuthInfo=socket=... on their connections to slurmdbd (sacctmgr fails with "Failed to access
    # /run/munge/munge.socket.2"). A munged already serving there is used as it is (and left
    # running by stop); otherwise one is started with a private key, pid file and log.
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "using the munged already running on /run/munge/munge.socket.2"
    else
        [ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" --force
        chmod 400 "$dir/munge/munge.key"
        mkdir -p /run/munge
        munged --force --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
            --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
        wait_for 10 bash -c 'munge -n | unmunge' || die "munged did not start (see $dir/log/munged.log)"
    fi

    # MariaDB for slurmdbd, on 127.0.0.1:$db_port with its data here.
    if [ ! -d "$dir/mysql/mysql" ]; then
        mariadb-install-db --user=root --datadir="$dir/mysql" --skip-test-db \
            --auth-root-authentication-method=socket >"$dir/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed (see $dir/log/mariadb-install.log)"
    fi
    setsid mariadbd --no-defaults --user=root --datadir="$dir/mysql" \
        --socket="$dir/run/mysqld.sock" --pid-file="$dir/run/mariadb.pid" \
        --bind-address=127.0.0.1 --port="$db_port" --skip-name-resolve \
        --log-error="$dir/log/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadb --no-defaults --socket="$dir/run/mysqld.sock" -uroot -e 'select 1' \
        || die "MariaDB did not start (see $dir/log/mariadb.log)"
    mariadb --no-defaults --socket="$dir/run/mysqld.sock" -uroot -e "
        create database if not exists slurm_acct_db;
        create user if not exists 'slurm'@'127.0.0.1' identified by 'slurmpw';
        grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';"

    local auth="AuthType=auth/munge"
    cat >"$dir/etc/slurm.conf" <<EOF
ClusterName=spatci
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
$auth
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((port + 2))
JobAcctGatherType=jobacct_gather/linux
$(slurmd -C | head -1) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$dir/etc/slurmdbd.conf" <<EOF
$auth
DbdHost=localhost
DbdPort=$((port + 2))
SlurmUser=root
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/etc/slurmdbd.conf"
    printf 'export SLURM_CONF=%q\n' "$dir/etc/slurm.conf" >"$dir/env"
    export SLURM_CONF="$dir/etc/slurm.conf"

    slurmdbd
    wait_for 60 sacctmgr -n show cluster || die "slurmdbd did not start (see $dir/log/slurmdbd.log)"
    sacctmgr -i -n show cluster format=cluster | grep -qw spatci || sacctmgr -i add cluster spatci >/dev/null
    slurmctld
    wait_for 60 scontrol ping || die "slurmctld did not start (see $dir/log/slurmctld.log)"
    slurmd
    if ! wait_for 60 bash -c "sinfo -h -n '$host' -o %t | grep -qx idle"; then
        scontrol update nodename="$host" state=resume 2>/dev/null || true
        wait_for 30 bash -c "sinfo -h -n '$host' -o %t | grep -qx idle" \
            || die "node $host is not idle: $(sinfo -h -n "$host" -o '%t %E') (see $dir/log/slurmd.log)"
    fi
    say "one-node cluster spatci up in $(( $(date +%s) - t0 )) s: node $host, $(sinfo -h -o '%c CPUs'); source $dir/env"
    echo "$dir/env"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status)
        [ -f "$dir/env" ] || die "no cluster at $dir"
        # shellcheck disable=SC1091
        source "$dir/env"; sinfo; squeue ;;
    *) die "usage: $0 start|stop|status [DIR]" ;;
esac
