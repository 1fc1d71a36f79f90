#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on loopback, in a folder of
# its own (Debian's postgresql package; nothing of the system's own cluster
# is touched).
#
#   scripts/postgres.sh start DIR   initdb + pg_ctl start in DIR; prints the
#                                   server's URL (no database named)
#
# The cluster takes plain and TLS connections. Its certificate names only
# 127.0.0.1 and is signed by a throwaway CA, DIR/ca.crt: a test connects
# with ?sslmode=verify-full&sslrootcert=DIR/ca.crt.
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
  # The CA and the server's certificate (P-256, valid for two days).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=Countersign test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  rm -f "$dir/ca.key" "$dir/server.csr"
  # One role signs in with a SCRAM password over TLS only, so that a test
  # can require channel binding (SCRAM-SHA-256-PLUS); the rest is trusted.
  hba="$dir/data/pg_hba.conf"
  { echo "hostssl all countersign_scram 127.0.0.1/32 scram-sha-256"
    echo "host all countersign_scram 127.0.0.1/32 reject"
    cat "$hba"; } >"$hba.new"
  cat "$hba.new" >"$hba" && rm "$hba.new"
  chmod 600 "$dir/server.key"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir/server.key" "$dir/server.crt"; fi
  # A loopback port nothing answers on (bash alone: nothing else needed),
  # below the range the system gives outgoing connections, one of which
  # could otherwise hold it by the time PostgreSQL binds it.
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] 2>/dev/null || low=32768
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  # Loopback only; the socket folder is the cluster's own. fsync stays on:
  # the failover tests count on commits surviving.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 \
        -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null
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
