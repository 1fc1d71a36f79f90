#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on loopback, in a folder of
# its own (Debian's postgresql package; nothing of the system's own cluster
# is touched).
#
#   scripts/postgres.sh start DIR   initdb + pg_ctl start in DIR; prints the
#                                   server's URL (no database named)
#   scripts/postgres.sh stop DIR    stops it (DIR is left for the caller)
#
# As root, the cluster runs as the unprivileged `postgres` user (runuser).
set -euo pipefail

cmd=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "error: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
start)
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log"
  # A loopback port nothing answers on (bash alone: nothing else needed).
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  # Loopback only; the socket folder is the cluster's own. fsync stays on:
  # the failover tests count on commits surviving.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400" start >/dev/null
  echo "postgres://postgres@127.0.0.1:$port"
  ;;
stop)
  [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  ;;
*)
  echo "usage: postgres.sh start|stop DIR" >&2
  exit 2
  ;;
esac
