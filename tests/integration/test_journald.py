"""Logging to journald (a private journald in its own mount namespace) and
the JSON-lines fallback on stderr when there is no journal."""
import json
import shutil
import textwrap

import pytest

import journal_svc
from conftest import (AS_NOBODY, CLI, NOBODY_UID, OPSD, base_env,
                      check_sanitizers, message_ids, parse_json_lines,
                      short_rundir, Daemon)

# Runs inside `unshare -m --propagation private` (journal_svc.py): a
# private journald, then these steps.
SCRIPT = journal_svc.script(textwrap.dedent("""\
    OPSD=$2 CLI=$3 CONF=$4 SOCK=$5
    "$OPSD" -c "$CONF" --log-target=journal 2>"$W/opsd.stderr" &
    OPID=$!
    for i in $(seq 500); do
        "$CLI" -s "$SOCK" status >/dev/null 2>&1 && break
        sleep 0.02
    done
    "$CLI" -s "$SOCK" --json status >"$W/status.json" 2>>"$W/cli.err"
    step status $?
    {AS_NOBODY} "$CLI" -s "$SOCK" reload >>"$W/cli.out" 2>>"$W/cli.err"
    step denied $?
    "$CLI" -s "$SOCK" reload >>"$W/cli.out" 2>>"$W/cli.err"
    step reload $?
    "$CLI" -s "$SOCK" log-level debug >>"$W/cli.out" 2>>"$W/cli.err"
    step log-level $?
    kill -TERM $OPID
    wait $OPID
    step opsd-exit $?
    OPID=
    journalctl --sync
    step sync $?
    journalctl -o json --no-pager SYSLOG_IDENTIFIER=opsd >"$W/journal.json"
    step journalctl $?
    """).replace("{AS_NOBODY}", " ".join(AS_NOBODY)))


class JournalRun:
    def __init__(self, workdir, daemon, steps, entries, opsd_stderr, log):
        self.workdir = workdir
        self.daemon = daemon
        self.steps = steps
        self.entries = entries
        self.opsd_stderr = opsd_stderr
        self.log = log

    def events(self, name):
        return [e for e in self.entries if e.get("OPSD_EVENT") == name]


@pytest.fixture(scope="session")
def journal_run(tmp_path_factory):
    """One opsd run against a private journald; its journal as JSON."""
    journal_svc.require_tools()
    work = tmp_path_factory.mktemp("journald")
    rundir = short_rundir()
    d = Daemon(work, rundir, name="jd")
    d.write_config()
    script = work / "run.sh"
    script.write_text(SCRIPT)
    p = journal_svc.start(script, work, [OPSD, CLI, d.conf_path, d.socket],
                          base_env())
    try:
        rc, out = journal_svc.finish(p, 90)
    except AssertionError as e:
        pytest.fail(str(e))
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    steps = journal_svc.steps(work)
    log = journal_svc.log(work, rc, out, tail=None)
    if rc != 0:
        pytest.fail("the journald run failed:\n" + log)
    entries = journal_svc.json_lines(work / "journal.json")
    # opsd's stderr in the namespace: checked like every daemon's
    d.stderr_path = work / "opsd.stderr"
    return JournalRun(work, d, steps, entries,
                      (work / "opsd.stderr").read_text(errors="replace"), log)


@pytest.fixture
def journal(journal_run):
    check_sanitizers([journal_run.daemon])
    return journal_run


def test_journal_run_steps(journal):
    assert journal.steps.get("status") == "0", journal.log
    assert journal.steps.get("denied") == "1", \
        f"reload as nobody should be denied (exit 1):\n{journal.log}"
    assert journal.steps.get("reload") == "0", journal.log
    assert journal.steps.get("log-level") == "0", journal.log
    assert journal.steps.get("opsd-exit") == "0", journal.log
    st = json.loads((journal.workdir / "status.json").read_text())
    assert st["log_target"] == "journal", st


def test_journal_entries_have_opsd_fields(journal):
    assert journal.entries, f"no SYSLOG_IDENTIFIER=opsd entries in the " \
        f"journal:\n{journal.log}"
    for e in journal.entries:
        for field in ("SYSLOG_IDENTIFIER", "OPSD_EVENT", "PRIORITY",
                      "MESSAGE"):
            assert field in e, f"journal entry without {field}: {e}"
        assert e["SYSLOG_IDENTIFIER"] == "opsd"
        assert e["PRIORITY"] in list("01234567"), e["PRIORITY"]
        assert isinstance(e["MESSAGE"], str) and e["MESSAGE"], e


def test_journal_started_and_stopped(journal):
    ids = message_ids()
    for name in ("opsd.started", "opsd.stopped"):
        ev = journal.events(name)
        assert len(ev) == 1, f"expected one {name} entry, got {len(ev)}:\n" \
            f"{[e.get('OPSD_EVENT') for e in journal.entries]}"
        assert ev[0].get("MESSAGE_ID") == ids[name], ev[0]
    started = journal.events("opsd.started")[0]
    assert started.get("OPSD_VERSION"), started
    assert started.get("OPSD_CONFIG") == str(journal.daemon.conf_path)
    assert started.get("PRIORITY") == "6", started


def test_journal_denied_call(journal):
    ids = message_ids()
    ev = journal.events("rpc.denied")
    assert ev, f"no OPSD_EVENT=rpc.denied entry:\n" \
        f"{[e.get('OPSD_EVENT') for e in journal.entries]}"
    e = ev[0]
    assert e.get("MESSAGE_ID") == ids["rpc.denied"], e
    assert e.get("OPSD_UID") == str(NOBODY_UID), e
    assert e.get("OPSD_METHOD") == "opsd.reload", e
    assert e.get("OPSD_PID") and e.get("OPSD_COMM") == "opsd-cli", e
    assert e.get("PRIORITY") == "4", e


def test_journal_audited_reload(journal):
    ids = message_ids()
    audits = [e for e in journal.events("rpc.audit")
              if e.get("OPSD_METHOD") == "opsd.reload"]
    assert audits, f"no rpc.audit entry for opsd.reload:\n" \
        f"{[e.get('OPSD_EVENT') for e in journal.entries]}"
    e = audits[0]
    assert e.get("MESSAGE_ID") == ids["rpc.audit"], e
    assert e.get("OPSD_UID") == "0", e
    assert journal.events("opsd.reloaded"), "no opsd.reloaded entry"
    lv = journal.events("opsd.log_level")
    assert lv and lv[0].get("MESSAGE_ID") == ids["opsd.log_level"], lv


def test_journal_target_writes_nothing_to_stderr(journal):
    assert not parse_json_lines(journal.opsd_stderr), \
        f"opsd logged to stderr although journald was running:\n" \
        f"{journal.opsd_stderr}"


# --- no journald -----------------------------------------------------------

def no_journal_prefix(stale):
    """Runs opsd in a mount namespace whose /run/systemd/journal is empty,
    or holds a socket nobody listens on (journald died)."""
    make_stale = (" && /usr/bin/python3 -c 'import socket; socket.socket("
                  "socket.AF_UNIX, socket.SOCK_DGRAM).bind("
                  "\"/run/systemd/journal/socket\")'") if stale else ""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            "mkdir -p /run/systemd/journal && "
            "mount -t tmpfs tmpfs /run/systemd/journal" + make_stale +
            " && exec \"$@\"", "sh"]


@pytest.mark.parametrize("target, journal_socket", [
    ("auto", "absent"), ("journal", "absent"),
    ("auto", "stale"), ("journal", "stale")])
def test_without_journald_logs_json_on_stderr(opsd_factory, target,
                                              journal_socket):
    """No journald and JOURNAL_STREAM unset: auto picks stderr, and a
    journal target falls back to stderr rather than losing the records."""
    journal_svc.require_tools()
    d = opsd_factory(start=False)
    d.start(prefix=no_journal_prefix(journal_socket == "stale"),
            log_target=target, env=base_env(JOURNAL_STREAM=None))
    rc, out, err = d.cli("--json", "status")
    assert rc == 0, err
    st = json.loads(out)
    if target == "auto" and journal_socket == "absent":
        assert st["log_target"] == "stderr", st
    assert d.cli("log-level", "debug")[0] == 0
    assert d.stop() == 0, d.log()
    events = d.events()
    assert events, f"no JSON lines on stderr without journald:\n{d.log()}"
    for e in events:
        for key in ("ts", "level", "event", "msg"):
            assert key in e, f"stderr record without '{key}': {e}"
    names = [e["event"] for e in events]
    for name in ("opsd.started", "rpc.audit", "opsd.log_level",
                 "opsd.stopped"):
        assert name in names, f"{name} missing from stderr: {names}"
    ids = message_ids()
    started = d.events("opsd.started")[0]
    assert started.get("message_id") == ids["opsd.started"], started
