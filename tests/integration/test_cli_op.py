"""opsd-cli op list / op show: against a stand-in server that answers as
the op journal's contract for op.list and op.show says,
and against a real daemon that may not serve them yet."""
import json
import socket
import threading

import pytest

from conftest import cli_run

OP_RUNNING = {
    "id": "op-20261128T023000Z-1", "kind": "backup.run", "object": "app",
    "step": "dumping", "state": "running",
    "started": "2026-11-28T02:30:00Z", "finished": None, "error": None,
    "recovered": False}
OP_RECOVERED = {
    "id": "op-2", "kind": "secret.rotate", "object": "db-password",
    "step": "rollback", "state": "rolled_back",
    "started": "2026-11-27T23:00:00Z", "finished": "2026-11-27T23:01:10Z",
    "error": "connection refused while altering role app_user; the old "
             "password stays in place",
    "recovered": True}
STEPS = [{"name": "connecting", "at": "2026-11-27T23:00:00Z"},
         {"name": "altering", "at": "2026-11-27T23:00:02Z"},
         {"name": "rollback", "at": "2026-11-27T23:01:10Z"}]


class OpServer:
    """Answers op.list and op.show on a Unix socket; records requests."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def answer(self, req):
        m, p = req["method"], req.get("params") or {}
        if m == "op.list":
            return {"result": {"ops": [OP_RUNNING, OP_RECOVERED]}}
        if m == "op.show" and p.get("id") == OP_RECOVERED["id"]:
            return {"result": dict(OP_RECOVERED, steps=STEPS)}
        if m == "op.show":
            return {"error": {"code": -32002,
                              "message": f"no op '{p.get('id')}'"}}
        return {"error": {"code": -32601, "message": f"unknown method {m}"}}

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            with c, c.makefile("rb") as f:
                line = f.readline()
                if not line:
                    continue
                req = json.loads(line)
                self.requests.append(req)
                reply = {"jsonrpc": "2.0", "id": req["id"]}
                reply.update(self.answer(req))
                c.sendall(json.dumps(reply).encode() + b"\n")

    def close(self):
        self.stop.set()
        self.thread.join()
        self.srv.close()


@pytest.fixture
def opsrv(rundir):
    s = OpServer(rundir / "op.sock")
    yield s
    s.close()


def op_cli(srv, *args):
    # times as the daemon sent them, whatever the zone of the machine
    return cli_run("--utc", *args, socket_path=srv.path)


def test_op_list_table(opsrv):
    rc, out, err = op_cli(opsrv, "op", "list")
    assert rc == 0, f"op list exited {rc}: {err}"
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "OBJECT", "STEP", "STATE",
                                "STARTED", "FINISHED", "ERROR"], out
    assert len(lines) == 4, out
    running, recovered = lines[1], lines[2]
    # columns line up under their titles
    for title, value in (("KIND", "backup.run"), ("STATE", "running"),
                         ("STARTED", "2026-11-28 02:30:00")):
        assert running.index(value) == lines[0].index(title), out
    assert running.split()[:5] == ["op-20261128T023000Z-1", "backup.run",
                                   "app", "dumping", "running"], out
    assert recovered.split()[4] == "rolled_back*", out
    assert "2026-11-27 23:01:10" in recovered, out
    # the error is cut short in the table; op show has all of it
    assert OP_RECOVERED["error"] not in recovered, out
    assert recovered.endswith("..."), out
    assert "recovery" in lines[3], out
    assert opsrv.requests[-1]["method"] == "op.list"
    assert opsrv.requests[-1].get("params", {}) == {}


def test_op_list_filters_and_json(opsrv):
    rc, out, err = op_cli(opsrv, "--json", "op", "list", "--kind",
                          "backup.run", "--object=app", "--limit", "5")
    assert rc == 0, f"op list --json exited {rc}: {err}"
    assert json.loads(out) == {"ops": [OP_RUNNING, OP_RECOVERED]}
    assert len(out.splitlines()) == 1, "--json prints one line"
    assert opsrv.requests[-1]["params"] == {
        "kind": "backup.run", "object": "app", "limit": 5}


@pytest.mark.parametrize("args", [
    ["--limit", "0"], ["--limit", "ten"], ["--limit"], ["--kind"],
    ["--frobnicate"], ["extra"]])
def test_op_list_usage_errors(opsrv, args):
    rc, out, err = op_cli(opsrv, "op", "list", *args)
    assert rc == 2, f"op list {args} exited {rc}, not 2: {err}"
    assert not opsrv.requests, "a usage error must not reach the daemon"


def test_op_show(opsrv):
    rc, out, err = op_cli(opsrv, "op", "show", "op-2")
    assert rc == 0, f"op show exited {rc}: {err}"
    kv = {}
    for line in out.split("\n\n")[0].splitlines():
        key, _, value = line.partition(" ")
        kv[key] = value.strip()
    assert kv["op"] == "op-2" and kv["kind"] == "secret.rotate", out
    assert kv["object"] == "db-password" and kv["step"] == "rollback", out
    assert kv["state"].startswith("rolled_back") and "recovery" in \
        kv["state"], out
    assert kv["started"] == "2026-11-27 23:00:00 UTC", out
    assert kv["finished"] == "2026-11-27 23:01:10 UTC", out
    assert kv["error"] == OP_RECOVERED["error"], out
    steps = out.split("\n\n")[1].splitlines()
    assert steps[0].split() == ["TIME", "STEP"], out
    assert [s.split()[-1] for s in steps[1:]] == \
        [s["name"] for s in STEPS], out
    assert opsrv.requests[-1]["params"] == {"id": "op-2"}

    rc, out, err = op_cli(opsrv, "op", "show", "op-2", "--json")
    assert rc == 0 and json.loads(out) == dict(OP_RECOVERED, steps=STEPS)


def test_op_show_unknown_id(opsrv):
    rc, out, err = op_cli(opsrv, "op", "show", "op-nope")
    assert rc == 1, f"op show of an unknown id exited {rc}, not 1: {err}"
    assert "op.show" in err and "-32002" in err and "op-nope" in err, err
    assert out == "", out
    rc, out, err = op_cli(opsrv, "--json", "op", "show", "op-nope")
    assert rc == 1 and json.loads(out)["code"] == -32002, (rc, out, err)


def test_op_list_without_the_journal(opsd, cli):
    """A daemon without op.list: its "method not found", exit 1."""
    rc, out, err = cli("methods", "-q")
    assert rc == 0, err
    if "op.list" in out.split():
        pytest.skip("this daemon has the op journal")
    rc, out, err = cli("op", "list")
    assert rc == 1, f"op list exited {rc}, not 1: {err}"
    assert out == "", out
    assert err.startswith("opsd-cli: op.list: ") and "-32601" in err, err
    assert len(err.splitlines()) == 1, err
    rc, out, err = cli("--json", "op", "list")
    assert rc == 1 and json.loads(out)["code"] == -32601, (rc, out, err)


def test_multi_line_text_never_breaks_a_table_or_a_block(rundir):
    # a reason or error from outside (pg_dump's stderr, a server's reply)
    # can hold line breaks, tabs and escape sequences
    class Srv(OpServer):
        def answer(self, req):
            op = dict(OP_RECOVERED, error="pg_dump: error: query failed\n"
                      "server closed the connection\r\n\tunexpectedly"
                      "\x1b[2J", step="dump\ning")
            if req["method"] == "op.list":
                return {"result": {"ops": [op]}}
            return {"result": dict(op, steps=STEPS)}
    s = Srv(rundir / "ml.sock")
    try:
        rc, out, err = op_cli(s, "op", "list")
        assert rc == 0, err
        lines = out.splitlines()
        assert len(lines) == 3, out     # titles, the row, the note
        assert "\x1b" not in out and "\t" not in out, repr(out)
        assert "dump ing" in lines[1], out
        rc, out, err = op_cli(s, "op", "show", "op-2")
        assert rc == 0, err
        err_lines = [ln for ln in out.splitlines() if "pg_dump" in ln]
        assert len(err_lines) == 1, out
        assert "query failed server closed the connection unexpectedly" \
            in err_lines[0], out
    finally:
        s.close()
