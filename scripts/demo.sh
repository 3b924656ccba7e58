#!/usr/bin/env bash
# Installs what opsd needs, builds it, and starts it on a demo setup in a
# temporary directory: a throwaway PostgreSQL 15 with a small database,
# and opsd with probes (the database, its TCP port, a command), a
# verified backup of the database every hour and metrics on a local port.
# Shows `opsd-cli status`, the probes and the first backup, and leaves
# everything running with instructions to explore and to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null
fi
ninja -C build >/dev/null

demo=$(mktemp -d /tmp/opsd-demo.XXXXXX)
chmod 755 "$demo"
pgbin=/usr/lib/postgresql/15/bin

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pgport=$(free_port)
metrics_port=$(free_port)

# --- a throwaway PostgreSQL -------------------------------------------
mkdir -p "$demo/pg"
chown postgres "$demo/pg"
chmod 700 "$demo/pg"
head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$demo/pg/superuser.pw"
chown postgres "$demo/pg/superuser.pw"
su postgres -s /bin/sh -c "$pgbin/initdb -D $demo/pg/data -U postgres \
    --pwfile=$demo/pg/superuser.pw --auth-local=peer \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N" >/dev/null
cat >>"$demo/pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$demo/pg'
password_encryption = 'scram-sha-256'
CONF
su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $demo/pg/data \
    -l $demo/pg/server.log -w start" >/dev/null

# opsd reads passwords from files, never from its config
mkdir -p "$demo/secrets"
chmod 700 "$demo/secrets"
head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$demo/secrets/backup.pw"
psql() {
	su postgres -s /bin/sh -c "psql -h $demo/pg -p $pgport -q -v ON_ERROR_STOP=1 $*"
}
psql "-c \"CREATE ROLE opsd_backup LOGIN SUPERUSER PASSWORD '$(cat "$demo/secrets/backup.pw")'\"" >/dev/null
psql "-c 'CREATE DATABASE shop'" >/dev/null
# the app's role: opsd gives it a password at start and rotates it
psql "-c 'CREATE ROLE shop_app LOGIN'" >/dev/null
psql "-d shop -c \"CREATE TABLE customers (id serial PRIMARY KEY, name text);
    INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 2000) i;\"" >/dev/null

# --- opsd -------------------------------------------------------------
cat >"$demo/opsd.conf" <<CONF
# opsd demo configuration (etc/opsd.conf.example documents every key)
[opsd]
socket = $demo/opsd.sock
state_dir = $demo/state
metrics_listen = 127.0.0.1:$metrics_port
log_level = info

[probe database]
kind = postgres
conninfo = host=127.0.0.1 port=$pgport dbname=shop user=opsd_backup
password_file = $demo/secrets/backup.pw
query = SELECT count(*) FROM customers
interval = 10s

[probe database-port]
kind = tcp
address = 127.0.0.1:$pgport
interval = 10s

[probe disk]
kind = exec
command = df --output=pcent $demo | tail -1
interval = 30s

[database shop]
conninfo = host=127.0.0.1 port=$pgport dbname=shop user=opsd_backup
password_file = $demo/secrets/backup.pw
admin_conninfo = host=127.0.0.1 port=$pgport dbname=postgres user=opsd_backup
admin_password_file = $demo/secrets/backup.pw

# the app reads its password from this file (DB_PASSWORD_FILE=...)
[secret shop-app]
kind = postgres-password
database = shop
role = shop_app
path = $demo/secrets/shop_app.pw
rotate_every = 30d

[secret session-key]
kind = random
encoding = base64url
path = $demo/secrets/session.key
keep_previous = 1
rotate_every = 7d

[backup shop]
database = shop
schedule = every 1h
dir = $demo/backups
pg_bin_dir = $pgbin
check = SELECT count(*) FROM customers
expect = = 2000
CONF

build/daemon/opsd -c "$demo/opsd.conf" --check-config
build/daemon/opsd -c "$demo/opsd.conf" --log-target=stderr \
    </dev/null >/dev/null 2>"$demo/opsd.log" &
pid=$!
cli="$root/build/client/opsd-cli -s $demo/opsd.sock"
for _ in $(seq 100); do
	$cli status >/dev/null 2>&1 && break
	sleep 0.05
done

echo
echo "\$ opsd-cli backup run shop --follow"
$cli backup run shop --follow
echo
echo "\$ opsd-cli status"
$cli status
echo
echo "\$ opsd-cli probe run database   (and the others)"
for p in database database-port disk; do
	$cli probe run "$p" || true
done
echo
echo "\$ opsd-cli secret rotate shop-app --follow"
$cli secret rotate shop-app --follow
echo
echo "\$ opsd-cli secret list"
$cli secret list
echo
echo "\$ opsd-cli probe list"
$cli probe list
echo
echo "\$ opsd-cli backup list"
$cli backup list

cat <<MSG

opsd is running (pid $pid) on the demo in $demo,
with its own PostgreSQL on 127.0.0.1:$pgport. Try:
  $cli methods
  $cli probe run database
  $cli backup restore <ID from backup list> --into shop_copy --create
  $cli jobs
  $cli secret show shop-app       # versions and files; never a value
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^opsd_
  tail -f $demo/opsd.log          # its events, one JSON object per line
Stop it all with:
  kill $pid; su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $demo/pg/data -m fast stop"
MSG
