#!/usr/bin/env bash
# Installs what opsd needs, builds it, and starts it on a demo setup in a
# temporary directory: a private control socket and state dir, a demo
# config, logging as JSON lines to a file. Shows `opsd-cli status` and
# leaves the daemon running with instructions to explore and stop it.
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
cat > "$demo/opsd.conf" <<CONF
# opsd demo configuration (see etc/opsd.conf.example for every key)
[opsd]
socket = $demo/opsd.sock
socket_mode = 0660
state_dir = $demo/state
log_level = info
idle_timeout = 5m
CONF

build/daemon/opsd -c "$demo/opsd.conf" --check-config
build/daemon/opsd -c "$demo/opsd.conf" --log-target=stderr 2>"$demo/opsd.log" &
pid=$!
for _ in $(seq 100); do
	[ -S "$demo/opsd.sock" ] && break
	sleep 0.05
done

cli="$root/build/client/opsd-cli -s $demo/opsd.sock"
echo
echo "\$ opsd-cli status"
$cli status
cat <<MSG

opsd is running (pid $pid) on the demo configuration in $demo.
  $cli methods           # what it can do
  $cli --json status     # the same, for scripts
  $cli log-level debug   # change the log level
  kill -HUP $pid                  # reload $demo/opsd.conf
  tail -f $demo/opsd.log          # its events, one JSON object per line
  kill $pid                       # stop it
MSG
