#!/usr/bin/env bash
# A real SLURM cluster on this one machine, for trying vae-lab's cluster path and for its tests:
# munged, MariaDB and slurmdbd (accounting, so that sacct says how a job ended), slurmctld, and one
# compute node whose slurmd runs in its own PID and UTS namespaces: its jobs see none of this host's
# processes and another host name, as on a separate node. Every daemon is started from its binary
# (no systemd), writes only under the state folder, and is stopped by its PID.
#
#   tools/slurm-cluster.sh install   # as root: Debian's packages (slurmctld slurmd slurmdbd munge mariadb-server)
#   tools/slurm-cluster.sh up        # start it; prints `export SLURM_CONF=...` for sbatch, squeue, sacct
#   tools/slurm-cluster.sh status    # the daemons' PIDs and `sinfo`
#   tools/slurm-cluster.sh down      # stop every daemon it started (the state folder stays)
#
# State folder: $VAE_LAB_SLURM_DIR (default /tmp/vae-lab-slurm). The node offers this machine's cores
# and all but 2 GiB of its memory as partition "debug", a job's share of memory by default in
# proportion to its cores; memory limits are enforced by polling every second (OverMemoryKill: the
# job ends FAILED, its log says why), which needs no cgroup. Ports: $VAE_LAB_SLURM_PORT and the next two
# (default 16817-16819) for the daemons, and $VAE_LAB_SLURM_PORT+1000 for MariaDB.
set -euo pipefail

DIR=${VAE_LAB_SLURM_DIR:-/tmp/vae-lab-slurm}
PORT=${VAE_LAB_SLURM_PORT:-16817}
NODE=vaelab-node
CLUSTER=vaelab
DB_PORT=$((PORT + 1000))
HOST=$(hostname -s)

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

pid_of() { [[ -s $DIR/$1.pid ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null && cat "$DIR/$1.pid"; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local seconds=$1 what=$2; shift 2
  for ((i = 0; i < seconds * 2; i++)); do timeout 5 "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what did not come up in ${seconds}s; its log is in $DIR"
}

install() {
  [[ $(id -u) == 0 ]] || die "install needs root (Debian's packages)"
  local packages=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server mariadb-client)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${packages[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${packages[@]}" >/dev/null; }
}

write_configs() {
  local cpus memory
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048 ))
  mkdir -p "$DIR"/{ctld,spool,log,mysql,jobs}
  cat >"$DIR/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=30
CredType=cred/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
JobCompType=jobcomp/none
ReturnToService=2
KillWait=10
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=60
DefMemPerCPU=$((memory / cpus))
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=vae-lab
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

start_munge() {
  # Slurm's clients reach munged only at its default socket (the persistent connection to slurmdbd
  # ignores AuthInfo), so a munged already answering there is used; otherwise one is started there.
  munge -n -s 0 2>/dev/null | unmunge >/dev/null 2>&1 && return
  if [[ ! -s $DIR/munge.key ]]; then
    head -c 1024 /dev/urandom >"$DIR/munge.key"
    chmod 400 "$DIR/munge.key"
  fi
  mkdir -p /run/munge
  munged --force --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge.seed"
  wait_for 10 munged sh -c "munge -n | unmunge"
}

start_mariadb() {
  pid_of mariadb >/dev/null && return
  if [[ ! -d $DIR/mysql/mysql ]]; then
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --skip-test-db \
      --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1
  fi
  nohup mariadbd --no-defaults --datadir="$DIR/mysql" --user=root --bind-address=127.0.0.1 --port="$DB_PORT" \
    --socket="$DIR/mysql.sock" --pid-file="$DIR/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
    --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb --no-defaults --socket="$DIR/mysql.sock" -e "select 1"
  mariadb --no-defaults --socket="$DIR/mysql.sock" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'vae-lab';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start_slurm() {
  export SLURM_CONF=$DIR/slurm.conf
  if ! pid_of slurmdbd >/dev/null; then
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
  fi
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  if ! pid_of slurmctld >/dev/null; then
    slurmctld
    wait_for 60 slurmctld scontrol ping
  fi
  if ! pid_of node >/dev/null; then  # slurmd's own PID file holds a PID of the node's namespace
    # A node of its own: new PID, mount (for its /proc) and UTS (its host name) namespaces. Its first
    # process is bash, which reaps the step daemons that end up its children there (slurmd would
    # leave them zombies), and dies with unshare (--kill-child), taking the node with it.
    nohup unshare --pid --fork --kill-child --mount-proc --uts \
      bash -c "hostname $NODE || exit 1; slurmd -D -N $NODE -f $SLURM_CONF & wait" >"$DIR/log/slurmd.stdout" 2>&1 &
    echo $! >"$DIR/node.pid"
    wait_for 60 "slurmd on $NODE" sh -c "sinfo -h -n $NODE -o %T | grep -Eq '^(idle|mixed|allocated)'"
  fi
}

up() {
  for binary in munged mariadbd slurmdbd slurmctld slurmd unshare; do
    command -v "$binary" >/dev/null || die "$binary is not installed: run '$0 install' as root first"
  done
  [[ $(id -u) == 0 ]] || die "up needs root (slurmd starts jobs as their users)"
  write_configs
  start_munge
  start_mariadb
  start_slurm
  say "up: partition debug on node $NODE ($(nproc) cores); state and logs in $DIR"
  echo "export SLURM_CONF=$DIR/slurm.conf"
}

stop() {  # stop NAME: TERM, then KILL after 20 s
  local pid
  pid=$(pid_of "$1") || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 80; i++)); do kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/$1.pid"; return 0; }; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DIR/$1.pid"
}

down() {
  export SLURM_CONF=$DIR/slurm.conf
  [[ -f $SLURM_CONF ]] && pid_of slurmctld >/dev/null && scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
  stop node  # unshare: as it ends, its child, the node's first process, is killed, and with it everything on the node
  for daemon in slurmctld slurmdbd mariadb munged; do stop "$daemon"; done
  say "down"
}

status() {
  export SLURM_CONF=$DIR/slurm.conf
  for daemon in munged mariadb slurmdbd slurmctld node; do
    printf '%-10s %s\n' "$daemon" "$(pid_of "$daemon" || echo stopped)"
  done
  sinfo 2>/dev/null || true
}

case ${1:-} in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 install|up|status|down" >&2; exit 2 ;;
esac
