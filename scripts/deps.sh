#!/usr/bin/env bash
# Installs, with apt-get on Debian 12, everything opsd's build and its test
# suite need: the compilers and libraries, the man page tool, clang and
# libFuzzer, pytest, and the real services the integration tests run
# (PostgreSQL, nginx, journald, an SMTP sink, promtool).
#
# Idempotent and quiet: packages already installed are not looked up
# again, so a second run takes well under a second. Needs root when
# something is missing.
set -u

packages=(
	# build
	meson ninja-build pkg-config gcc libc6-dev
	libsystemd-dev libevent-dev libpq-dev libssl-dev libjansson-dev
	libcurl4-openssl-dev libinih-dev
	scdoc
	# fuzzing (-Dfuzz=true) and sanitizers
	clang-14 libclang-rt-14-dev
	# tests
	python3 python3-pytest
	python3-pytest-xdist	# pytest -n N: the suite in parallel
	systemd		# systemd-analyze, systemd-journald, systemd-socket-activate
	util-linux	# setpriv, unshare
	procps
	postgresql-15
	nginx-light
	python3-aiosmtpd
	prometheus	# promtool
	openssl		# test certificates
	curl
	strace		# which syscalls the loop makes (test_backup_loop)
	ca-certificates
	chromium		# the status page in a real browser (test_status_browser)
	python3-websocket	# its DevTools protocol from the test
	systemd-journal-remote	# journal-upload -> journal-remote (test_log_shipping)
)

# One dpkg-query for all: "name status" for each package dpkg knows.
installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' \
    "${packages[@]}" 2>/dev/null | awk '$2 == "installed" { print $1 }' |
    tr '\n' ' ')"
missing=()
for p in "${packages[@]}"; do
	case "$installed" in
	*" $p "*) ;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	echo "deps.sh: run as root to install them with apt-get" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"
log=$(mktemp /tmp/opsd-deps.XXXXXX)
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update >"$log" 2>&1; then
	echo "deps.sh: apt-get update failed:" >&2
	tail -n 30 "$log" >&2
	rm -f "$log"
	exit 1
fi
if ! apt-get install -y --no-install-recommends "${missing[@]}" \
    >>"$log" 2>&1; then
	echo "deps.sh: apt-get install failed:" >&2
	tail -n 30 "$log" >&2
	rm -f "$log"
	exit 1
fi
rm -f "$log"
echo "deps.sh: done"
