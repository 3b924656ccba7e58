"""
Log shipping end to end. docs/logging.md lists the fields of opsd's
journal entries and of its JSON lines on stderr; this checks every record
of a real run against that list (each field there, of the documented
form, each key event with its documented MESSAGE_ID and fields), and then
ships the journal off the host with a real shipper: systemd-journal-upload
to a systemd-journal-remote on loopback (Debian's systemd-journal-remote),
and finds every opsd entry on the receiving side with its OPSD_* fields and
MESSAGE_ID intact.

The journal is a private journald in its own mount namespace (as in
test_journald.py): tmpfs over the journal directories, so nothing of the
host's journal is read or written. The run makes the key events of a
working day: a start, probes going up and down, an audited call, a
denied one, a reload, a change of log level, a stop.
"""
import os
import re
import shutil
import textwrap

import pytest

import journal_svc
from conftest import (AS_NOBODY, CLI, OPSD, base_env, check_sanitizers,
                      message_ids, parse_json_lines, short_rundir, Daemon)
from svc import REPO, closed_port, free_port

REMOTE = "/lib/systemd/systemd-journal-remote"
UPLOAD = "/lib/systemd/systemd-journal-upload"
LOGGING_MD = REPO / "docs" / "logging.md"

SCRIPT = journal_svc.script(textwrap.dedent("""\
    OPSD=$2 CLI=$3 CONF=$4 SOCK=$5 PORT=$6
    "$OPSD" -c "$CONF" --log-target=journal 2>"$W/opsd.stderr" &
    OPID=$!
    for i in $(seq 500); do
        "$CLI" -s "$SOCK" status >/dev/null 2>&1 && break
        sleep 0.02
    done
    sleep 1.5           # the probes find their states
    {AS_NOBODY} "$CLI" -s "$SOCK" reload >>"$W/cli.out" 2>>"$W/cli.err"
    step denied $?
    "$CLI" -s "$SOCK" reload >>"$W/cli.out" 2>>"$W/cli.err"
    step reload $?
    "$CLI" -s "$SOCK" log-level debug >>"$W/cli.out" 2>>"$W/cli.err"
    step log-level $?
    sleep 0.5
    kill -TERM $OPID
    wait $OPID
    step opsd-exit $?
    OPID=
    journalctl --sync
    journalctl -o json --no-pager SYSLOG_IDENTIFIER=opsd >"$W/journal.json"
    step journalctl $?

    # ship: journal-upload reads this journal, journal-remote on loopback
    # writes what it receives into a journal file of its own
    {REMOTE} --listen-http=127.0.0.1:$PORT --output="$W/remote.journal" \\
        --split-mode=none >"$W/remote.log" 2>&1 &
    RPID=$!
    KILL=$RPID
    for i in $(seq 250); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
        sleep 0.02
    done
    {UPLOAD} --url=http://127.0.0.1:$PORT --merge --follow=no \\
        --save-state="$W/upload.state" >"$W/upload.log" 2>&1
    step upload $?
    kill -TERM $RPID
    wait $RPID
    step remote-exit $?
    KILL=
    journalctl -o json --no-pager --file="$W/remote.journal" \\
        SYSLOG_IDENTIFIER=opsd >"$W/remote.json"
    step remote-journalctl $?
    """).replace("{REMOTE}", REMOTE).replace("{UPLOAD}", UPLOAD)
    .replace("{AS_NOBODY}", " ".join(AS_NOBODY)))


def config_body():
    return ("[probe web]\nkind = exec\ncommand = true\ninterval = 200ms\n"
            "rise = 1\nfall = 1\n\n"
            f"[probe gone]\nkind = tcp\naddress = 127.0.0.1:{closed_port()}\n"
            "interval = 200ms\nrise = 1\nfall = 1\n\n")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    for tool in (journal_svc.JOURNALD, REMOTE, UPLOAD,
                 shutil.which("unshare"), shutil.which("journalctl")):
        assert tool and os.access(tool, os.X_OK), \
            f"{tool} is missing (scripts/deps.sh installs it)"
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace")
    work = tmp_path_factory.mktemp("shipping")
    rundir = short_rundir()
    d = Daemon(work, rundir, name="ls")
    d.write_config(d.config_text() + config_body())
    script = work / "run.sh"
    script.write_text(SCRIPT)
    # bash: the script waits for journal-remote with /dev/tcp
    p = journal_svc.start(script, work, [OPSD, CLI, d.conf_path, d.socket,
                                         free_port()], base_env(),
                          shell="bash")
    try:
        rc, out = journal_svc.finish(p, 120)
    except AssertionError as e:
        pytest.fail(str(e))
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    steps = journal_svc.steps(work)
    log = journal_svc.log(work, rc, out, names=("opsd.stderr", "cli.err",
                                                "remote.log", "upload.log"),
                          tail=2000)
    assert rc == 0, log
    d.stderr_path = work / "opsd.stderr"
    check_sanitizers([d])
    return {"steps": steps, "log": log, "daemon": d,
            "local": journal_svc.json_lines(work / "journal.json"),
            "remote": journal_svc.json_lines(work / "remote.json")}


@pytest.fixture(scope="module")
def stderr_run(tmp_path_factory):
    """The same run's shape with --log-target=stderr: its JSON lines."""
    work = tmp_path_factory.mktemp("stderr")
    rundir = short_rundir()
    d = Daemon(work, rundir, name="se")
    d.write_config(d.config_text() + config_body())
    try:
        d.start(log_target="stderr")
        import time
        time.sleep(1.5)
        d.cli("reload")
        d.cli("reload", prefix=AS_NOBODY)
        d.cli("log-level", "debug")
        time.sleep(0.3)
        d.stop()
        lines = parse_json_lines(d.stderr_path.read_text())
    finally:
        d.cleanup()
        shutil.rmtree(rundir, ignore_errors=True)
    return lines


# --- what docs/logging.md says ----------------------------------------------

def doc_tables():
    """The tables of docs/logging.md: the journal fields, the JSON members,
    and the key events with their MESSAGE_ID and fields."""
    text = LOGGING_MD.read_text()
    key = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([a-z_]+\.[a-z_]+)` \| `([0-9a-f]{32})` \| "
                     r"([^|]+) \| ([^|]+) \|", line)
        if m:
            # the fields every record has: those before any ';' or '(',
            # the rest are conditional
            always = re.sub(r"\(.*?\)", "", m.group(4)).split(";")[0]
            key[m.group(1)] = (m.group(2), re.findall(r"`(\w+)`", always))
    journal = re.findall(r"^\| `([A-Z_<>]+)` \| ", text.split(
        "## Journal fields")[1].split("##")[0], re.M)
    members = re.findall(r"^\| `(\w+)` \| ", text.split(
        "## JSON on standard error")[1].split("##")[0], re.M)
    return journal, members, key


def test_the_docs_list_what_is_checked():
    journal, members, key = doc_tables()
    assert journal == ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER",
                       "OPSD_EVENT", "MESSAGE_ID", "OPSD_<FIELD>"], journal
    assert members == ["ts", "level", "event", "msg", "message_id"], members
    assert key["probe.state"][1] == ["probe", "kind", "state", "prev_state",
                                     "reason", "latency_ms"]
    # the table agrees with the catalog
    ids = message_ids()
    for name, (mid, _) in key.items():
        assert ids.get(name) == mid, f"{name}: logging.md {mid}, " \
            f"catalog {ids.get(name)}"


EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)?$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
SEEN = ("opsd.started", "opsd.stopped", "opsd.reloaded", "rpc.audit",
        "rpc.denied", "opsd.log_level", "probe.state")


def check_journal_entry(e, key):
    assert e["SYSLOG_IDENTIFIER"] == "opsd", e
    assert isinstance(e["MESSAGE"], str) and e["MESSAGE"], e
    assert e["PRIORITY"] in ("3", "4", "5", "6", "7"), e
    assert EVENT.match(e["OPSD_EVENT"]), e["OPSD_EVENT"]
    if "MESSAGE_ID" in e:
        assert HEX32.match(e["MESSAGE_ID"]), e
        assert key[e["OPSD_EVENT"]][0] == e["MESSAGE_ID"], e
    elif e["OPSD_EVENT"] in key:
        raise AssertionError(f"key event without MESSAGE_ID: {e}")
    for f, v in e.items():
        if f.startswith("OPSD_"):
            assert re.match(r"^OPSD_[A-Z0-9_]+$", f) and \
                isinstance(v, str), (f, v)
    if e["OPSD_EVENT"] in key:
        for f in key[e["OPSD_EVENT"]][1]:
            assert "OPSD_" + f.upper() in e, \
                f"{e['OPSD_EVENT']} without OPSD_{f.upper()}: {e}"


def test_journal_entries_carry_the_documented_fields(shipped):
    _, _, key = doc_tables()
    entries = shipped["local"]
    assert entries, shipped["log"]
    for e in entries:
        check_journal_entry(e, key)
    events = {e["OPSD_EVENT"] for e in entries}
    assert set(SEEN) <= events, \
        f"missing {set(SEEN) - events}\n{shipped['log']}"
    states = {(e["OPSD_PROBE"], e["OPSD_STATE"]) for e in entries
              if e["OPSD_EVENT"] == "probe.state"}
    assert {("web", "up"), ("gone", "down")} <= states, states
    assert shipped["steps"].get("denied") == "1", shipped["log"]


def test_json_lines_carry_the_documented_members(stderr_run):
    _, members, key = doc_tables()
    assert stderr_run
    for r in stderr_run:
        head = [k for k in r if k in members]
        # in the documented order, the first four always
        assert head[:4] == ["ts", "level", "event", "msg"], r
        assert [k for k in members if k in r] == head, r
        assert list(r)[:len(head)] == head, r
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                        r["ts"]), r
        assert r["level"] in ("error", "warning", "notice", "info",
                              "debug"), r
        assert EVENT.match(r["event"]) and isinstance(r["msg"], str), r
        if "message_id" in r:
            assert key[r["event"]][0] == r["message_id"], r
        elif r["event"] in key:
            raise AssertionError(f"key event without message_id: {r}")
        for k, v in r.items():
            assert isinstance(v, str), (k, v)
            assert k in members or re.match(r"^[a-z0-9_]+$", k), k
        if r["event"] in key:
            for f in key[r["event"]][1]:
                assert f in r, f"{r['event']} without {f}: {r}"
    assert set(SEEN) <= {r["event"] for r in stderr_run}


def with_id_local(entries):
    return [e for e in entries if "MESSAGE_ID" in e]


def test_shipped_entries_arrive_intact(shipped):
    s = shipped["steps"]
    assert s.get("upload") == "0" and s.get("remote-exit") == "0" and \
        s.get("remote-journalctl") == "0", shipped["log"]
    local, remote = shipped["local"], shipped["remote"]
    assert remote, f"nothing arrived at journal-remote:\n{shipped['log']}"

    def ident(e):
        # what must survive the trip: the message, the id, every OPSD_*
        # field and the sender's trusted fields
        return tuple(sorted((k, v) for k, v in e.items()
                            if k in ("MESSAGE", "MESSAGE_ID", "PRIORITY",
                                     "SYSLOG_IDENTIFIER", "_PID",
                                     "_HOSTNAME", "__REALTIME_TIMESTAMP")
                            or k.startswith("OPSD_")))
    sent = [ident(e) for e in local]
    got = [ident(e) for e in remote]
    missing = [dict(x) for x in sent if x not in got]
    assert not missing, f"{len(missing)} of {len(sent)} entries did not " \
        f"arrive intact, e.g. {missing[:2]}"
    assert len(got) == len(sent) >= 10, (len(got), len(sent))
    print(f"shipped {len(sent)} entries, {len(with_id_local(local))} with a MESSAGE_ID")
    with_id = [e for e in remote if "MESSAGE_ID" in e]
    assert {e["OPSD_EVENT"] for e in with_id} >= set(SEEN)
    _, _, key = doc_tables()
    for e in remote:
        check_journal_entry(e, key)
