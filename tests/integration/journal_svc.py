"""
A private journald for the tests that read what opsd logs to the journal:
a shell script run under `unshare -m --propagation private` mounts tmpfs
over the journal directories (the host's journal, if any, stays out, both
ways), starts /lib/systemd/systemd-journald standalone, waits until it
takes entries, then runs the test's own steps; the test reads the
entries back with `journalctl -o json` inside the namespace.

script(body) gives the whole script: the prologue, then body, which sees
$W (the work dir) and $1... and can call `step NAME $?` to record what
each step returned in $W/steps, set OPID to a pid the exit trap kills
with SIGKILL (opsd) and KILL to pids it stops with SIGTERM (other
servers). start() and finish() run it; steps(), log() and json_lines()
read the results.
"""
import json
import os
import shutil
import signal
import subprocess

import pytest

JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_DIRS = "/run/systemd/journal /run/log/journal /var/log/journal"

PROLOGUE = """\
set -u
W=$1
step() { echo "$1 $2" >> "$W/steps"; }
for d in $JOURNAL_DIRS; do
    mkdir -p "$d" && mount -t tmpfs -o mode=0755 tmpfs "$d" ||
        { echo "cannot mount tmpfs on $d" >&2; exit 10; }
done
OPID= KILL=
$JOURNALD >"$W/journald.log" 2>&1 &
JPID=$!
cleanup() {
    [ -n "$OPID" ] && kill -KILL "$OPID" 2>/dev/null
    for p in $KILL; do kill -TERM "$p" 2>/dev/null; done
    kill -TERM "$JPID" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
ok=0
for i in $(seq 250); do
    if echo ping | systemd-cat -t opsd-it-ping 2>/dev/null; then
        ok=1; break
    fi
    sleep 0.02
done
[ $ok = 1 ] || { echo "journald did not come up" >&2; exit 11; }
""".replace("$JOURNAL_DIRS", JOURNAL_DIRS).replace("$JOURNALD", JOURNALD)


def require_tools(*more):
    """Skips the test where a private journald (and more, paths of other
    tools it needs) cannot run."""
    for tool in (JOURNALD, shutil.which("unshare"),
                 shutil.which("journalctl"), shutil.which("systemd-cat"),
                 *more):
        if not tool or not os.access(tool, os.X_OK):
            pytest.skip(f"journald tooling missing ({tool})")
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace")


def script(body):
    """The prologue, then body (a shell fragment)."""
    return PROLOGUE + body


def start(path, work, args, env, shell="sh"):
    """Starts the script at path in a mount namespace of its own:
    SHELL PATH WORK ARGS... The Popen; finish() waits for it."""
    return subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", shell, str(path),
         str(work)] + [str(a) for a in args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        start_new_session=True, text=True)


def finish(p, timeout):
    """(returncode, output) of a start()ed script; killed (its whole
    session) and raised if it runs past timeout."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(p)
        raise AssertionError(f"the journald script hung:\n{out_of(p)}")
    return p.returncode, out


def kill(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def out_of(p):
    try:
        out, _ = p.communicate(timeout=10)
        return out
    except (subprocess.TimeoutExpired, ValueError):
        return ""


def steps(work):
    """{step: exit status} that the script's `step` calls recorded."""
    f = work / "steps"
    return dict(x.split() for x in f.read_text().splitlines()) \
        if f.exists() else {}


def log(work, rc, out, names=("journald.log", "opsd.stderr", "cli.err"),
        tail=3000):
    """What to print when the run failed: its exit, output, steps and the
    tails of the named files in work."""
    text = f"script exit {rc}, output:\n{out}\nsteps: {steps(work)}\n"
    for name in names:
        f = work / name
        if f.exists():
            body = f.read_text(errors="replace")
            text += f"--- {name}:\n{body[-tail:] if tail else body}\n"
    return text


def json_lines(path):
    """The entries of a `journalctl -o json` file (none if it is not
    there)."""
    return [json.loads(x) for x in path.read_text().splitlines()] \
        if path.exists() else []
