"""
opsd-cli's secret commands: secret list, secret show and secret rotate
[--follow] [--force].

The first half runs them against a stand-in server that answers as the
daemon's secret.list, secret.show and secret.rotate do, so the output,
the parameters sent and the exit codes are checked on their own.
The second half runs them against a real opsd with a [secret NAME] kind =
random section: the version and fingerprint, a followed rotation, an
unknown name, the --json output, and that the secret's value is in none
of the output.
"""
import json
import re
import socket
import threading
from pathlib import Path

import pytest

pytest.register_assert_rewrite("svc")
from svc import wait_for  # noqa: E402

from conftest import base_env, cli_run  # noqa: E402

pytest_plugins = ["svc"]

FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{16}$")
# the steps of a rotation, in order; random secrets skip the database ones
STEPS = ["generate", "set_password", "test_login", "write_files",
         "on_rotate", "verify", "promote"]
DB_STEPS = {"set_password", "test_login"}

# --- a stand-in daemon ------------------------------------------------------

T1 = 1796130309                 # 2026-12-01T13:05:09Z, 14:05:09 in Berlin
T2 = 1782945000                 # 2026-07-01T22:30:00Z, 00:30 next day CEST
LIBPQ = "FATAL:  password authentication failed for user \"app_b\"\n"

DB = {"name": "app-db", "kind": "postgres-password",
      "strategy": "alternating", "version": 3,
      "fingerprint": "sha256:0123456789abcdef", "created": T2,
      "age_seconds": 3 * 86400 + 4 * 3600 + 5 * 60 + 7.5,
      "next_rotation": T1, "state": "ok", "role": "app_b",
      "path": "/run/secrets/app-db", "last_error": None}
TOKEN = {"name": "api-token", "kind": "random", "strategy": None,
         "version": None, "fingerprint": None, "created": None,
         "age_seconds": None, "next_rotation": None, "state": "failed",
         "role": None, "path": "/etc/app/token",
         "last_error": "on_rotate 'systemctl reload app' exited with "
                       "status 1:\n  Job  failed"}
SHOW = dict(DB, versions=[
    {"version": 3, "fingerprint": "sha256:0123456789abcdef", "created": T2,
     "retired": None, "label": "current"},
    {"version": 2, "fingerprint": "sha256:fedcba9876543210",
     "created": T2 - 30 * 86400, "retired": T2, "label": "previous"}],
    rotation={"op": "20261201T130509Z-3f2a9c1b", "step": "write_files",
              "started": T1, "recovered": True},
    last_result={"result": "rolled_back", "at": T1,
                 "error": "test_login: " + LIBPQ,
                 "op": "20261201T130000Z-0badc0de"},
    failures=2,
    roles_differ=["app_a has CONNECTION LIMIT 5, app_b has none",
                  "app_b is not a member of app_rw"],
    files=[{"path": "/run/secrets/app-db", "mode": "0400", "owner": "root",
            "group": "app", "kind": "value"},
           {"path": "/etc/app/db.env", "mode": "0600", "owner": "app",
            "group": "app", "kind": "env_file"}])
NEW_FP = "sha256:1111222233334444"


class Standin:
    """Answers secret.* on a Unix socket as the daemon would; records
    every request. rotate: "app-db" rotates (all steps, ok), "bad" is
    rolled back at test_login, "busy" is busy unless forced, "rotating"
    is busy even when forced; any other name is not found."""

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

    def answer(self, method, p):
        if method == "secret.list":
            return {"secrets": [DB, TOKEN]}, None
        if method == "secret.show" and p.get("name") == "app-db":
            return SHOW, None
        if method == "secret.rotate":
            name = p.get("name")
            if name == "rotating" or (name == "busy" and not p.get("force")):
                return None, {"code": -32003, "message":
                              f"secret {name} was rotated less than "
                              f"min_interval ago; the next rotation may "
                              f"start at 2026-12-01T14:05:09Z"}
            if name in ("app-db", "bad", "busy"):
                return {"op": "20261201T140000Z-5eed5eed",
                        "secret": name}, None
        if method.startswith("secret."):
            return None, {"code": -32002, "message":
                          f"no secret named '{p.get('name')}'"}
        return None, {"code": -32601, "message": "method not found"}

    def notes(self, name):
        op = "20261201T140000Z-5eed5eed"
        steps = STEPS[:3] if name == "bad" else STEPS
        for s in steps:
            yield "secret.progress", {"op": op, "secret": name, "step": s}
        if name == "bad":
            yield "secret.finished", {
                "op": op, "secret": name, "result": "rolled_back",
                "error": "test_login: " + LIBPQ, "version": 4,
                "fingerprint": NEW_FP}
        else:
            yield "secret.finished", {
                "op": op, "secret": name, "result": "ok", "error": None,
                "version": 4, "fingerprint": NEW_FP}

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            with c, c.makefile("rb") as f:
                for line in f:
                    req = json.loads(line)
                    self.requests.append(req)
                    p = req.get("params") or {}
                    result, error = self.answer(req["method"], p)
                    reply = {"jsonrpc": "2.0", "id": req["id"]}
                    if error is not None:
                        reply["error"] = error
                    else:
                        reply["result"] = result
                    c.sendall(json.dumps(reply).encode() + b"\n")
                    if result is not None and p.get("follow"):
                        # something else on the connection is skipped
                        c.sendall(b'{"jsonrpc":"2.0","method":"opsd.x",'
                                  b'"params":{}}\n')
                        for m, params in self.notes(p["name"]):
                            c.sendall(json.dumps({
                                "jsonrpc": "2.0", "method": m,
                                "params": params}).encode() + b"\n")

    def close(self):
        self.stop.set()
        self.thread.join()
        self.srv.close()


@pytest.fixture
def standin(rundir):
    s = Standin(rundir / "secret.sock")
    yield s
    s.close()


def scli(standin, *args, tz="Europe/Berlin"):
    return cli_run(*args, socket_path=standin.path, env=base_env(TZ=tz))


def last_params(standin, method):
    reqs = [r for r in standin.requests if r["method"] == method]
    assert reqs, f"opsd-cli sent no {method}: {standin.requests}"
    return reqs[-1].get("params") or {}


def table(out, first_title):
    """The table whose title line starts with first_title: [titles],
    [{title: cell}] (cells split at two or more blanks)."""
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines)
                if ln.strip().startswith(first_title))
    titles = re.split(r" {2,}", lines[head].strip())
    starts = [lines[head].index(t) for t in titles]
    rows = []
    for ln in lines[head + 1:]:
        if not ln.strip():
            break
        if ln[:starts[1]].strip() == "":     # a note under the row
            continue
        cells = [ln[s:e].strip() for s, e in
                 zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(titles, cells)))
    return titles, rows


def test_list_table(standin):
    rc, out, err = scli(standin, "secret", "list")
    assert rc == 0, err
    assert last_params(standin, "secret.list") == {}
    titles, rows = table(out, "NAME")
    assert titles == ["NAME", "KIND", "VERSION", "FINGERPRINT", "AGE",
                      "NEXT", "STATE"], out
    db, tok = rows
    assert db == {"NAME": "app-db", "KIND": "postgres-password",
                  "VERSION": "3", "FINGERPRINT": "sha256:0123456789abcdef",
                  "AGE": "3d 4h 5m", "NEXT": "2026-12-01 14:05:09 +0100",
                  "STATE": "ok"}, out
    # null reads "-"
    assert tok == {"NAME": "api-token", "KIND": "random", "VERSION": "-",
                   "FINGERPRINT": "-", "AGE": "-", "NEXT": "-",
                   "STATE": "failed"}, out
    # the last error under its secret, on one line
    assert re.search(r"^ +last error: on_rotate 'systemctl reload app' "
                     r"exited with status 1: Job failed$", out, re.M), out
    for line in out.splitlines():
        assert line == line.rstrip(), repr(line)


def test_list_utc_and_json(standin):
    rc, out, err = scli(standin, "--utc", "secret", "list")
    assert rc == 0 and "2026-12-01 13:05:09 UTC" in out, out
    rc, out, err = scli(standin, "secret", "list", "--json")
    assert rc == 0 and json.loads(out) == {"secrets": [DB, TOKEN]}, out


def test_list_empty(rundir):
    class Empty(Standin):
        def answer(self, method, p):
            return {"secrets": []}, None
    s = Empty(rundir / "empty.sock")
    try:
        rc, out, err = scli(s, "secret", "list")
    finally:
        s.close()
    assert rc == 0 and out == ("no secrets configured ([secret NAME] "
                               "sections in opsd.conf)\n"), out


def kv(out):
    """The key/value lines at the top of secret show: {key: value}; a
    continuation line (blank key) is added to the previous key's list."""
    block = out.split("\n\n", 1)[0]
    d, key = {}, None
    for line in block.splitlines():
        k, v = line[:14].strip(), line[14:]
        if k:
            key = k
            d[key] = [v]
        else:
            d[key].append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in d.items()}


def test_show(standin):
    rc, out, err = scli(standin, "secret", "show", "app-db")
    assert rc == 0, err
    assert last_params(standin, "secret.show") == {"name": "app-db"}
    k = kv(out)
    assert k["secret"] == "app-db"
    assert k["kind"] == "postgres-password, alternating"
    assert k["state"] == "ok" and k["role"] == "app_b"
    assert k["path"] == "/run/secrets/app-db"
    assert k["version"] == "3"
    assert k["fingerprint"] == "sha256:0123456789abcdef"
    assert k["created"] == "2026-07-02 00:30:00 +0200 (3d 4h 5m ago)", out
    assert k["next rotation"] == "2026-12-01 14:05:09 +0100"
    assert k["rotating"] == ("op 20261201T130509Z-3f2a9c1b, step "
                             "write_files, started 2026-12-01 14:05:09 "
                             "+0100 (interrupted by a crash, being "
                             "recovered)"), out
    assert k["last result"] == (
        "rolled_back at 2026-12-01 14:05:09 +0100 (op "
        "20261201T130000Z-0badc0de): test_login: FATAL: password "
        "authentication failed for user \"app_b\""), out
    assert "last error" not in k, out      # the same as the last result's
    assert k["failures"] == "2 in a row"
    assert k["roles differ"] == SHOW["roles_differ"], out

    titles, rows = table(out, "VERSION")
    assert titles == ["VERSION", "LABEL", "FINGERPRINT", "CREATED",
                      "RETIRED"], out
    assert [(r["VERSION"], r["LABEL"], r["FINGERPRINT"], r["RETIRED"])
            for r in rows] == [
        ("3", "current", "sha256:0123456789abcdef", "-"),
        ("2", "previous", "sha256:fedcba9876543210",
         "2026-07-02 00:30:00 +0200")], out
    titles, rows = table(out, "KIND")
    assert titles == ["KIND", "MODE", "OWNER", "GROUP", "PATH"], out
    assert rows == [
        {"KIND": "value", "MODE": "0400", "OWNER": "root", "GROUP": "app",
         "PATH": "/run/secrets/app-db"},
        {"KIND": "env_file", "MODE": "0600", "OWNER": "app", "GROUP": "app",
         "PATH": "/etc/app/db.env"}], out
    assert "FATAL:  " not in out and "None" not in out, out
    for line in out.splitlines():
        assert line == line.rstrip(), repr(line)


def test_show_unknown_and_json(standin):
    rc, out, err = scli(standin, "secret", "show", "nope")
    assert rc == 1 and out == "", (rc, out, err)
    assert err == "opsd-cli: secret.show: no secret named 'nope' (not " \
        "found, -32002)\n", err
    rc, out, err = scli(standin, "--json", "secret", "show", "app-db")
    assert rc == 0 and json.loads(out) == SHOW, out
    rc, out, err = scli(standin, "--json", "secret", "show", "nope")
    assert rc == 1 and json.loads(out)["code"] == -32002, out


def test_rotate_without_follow(standin):
    rc, out, err = scli(standin, "secret", "rotate", "app-db")
    assert rc == 0, err
    assert last_params(standin, "secret.rotate") == {"name": "app-db"}
    assert out == ("rotation of app-db started: op "
                   "20261201T140000Z-5eed5eed\n"), out


def test_rotate_follow_ok(standin):
    rc, out, err = scli(standin, "secret", "rotate", "app-db", "--follow")
    assert rc == 0, (out, err)
    assert last_params(standin, "secret.rotate") == {"name": "app-db",
                                                     "follow": True}
    lines = out.splitlines()
    assert lines[0] == "rotation of app-db started: op " \
                       "20261201T140000Z-5eed5eed", out
    steps = [re.match(r"^app-db  (\S+) +\d+\.\ds$", ln) for ln in lines[1:-1]]
    assert all(steps), out
    assert [m.group(1) for m in steps] == STEPS, out
    assert lines[-1] == f"app-db: ok, version 4 ({NEW_FP})", out


def test_rotate_follow_rolled_back(standin):
    rc, out, err = scli(standin, "secret", "rotate", "-f", "bad")
    assert rc == 1, (out, err)
    lines = out.splitlines()
    assert [ln.split()[1] for ln in lines[1:-1]] == STEPS[:3], out
    # no version: the one tried is not the one in place
    assert lines[-1] == ("bad: rolled_back: test_login: FATAL: password "
                         "authentication failed for user \"app_b\""), out


def test_rotate_follow_json(standin):
    rc, out, err = scli(standin, "secret", "rotate", "app-db", "--follow",
                        "--json")
    assert rc == 0, err
    msgs = [json.loads(ln) for ln in out.splitlines()]
    assert msgs[0] == {"op": "20261201T140000Z-5eed5eed",
                       "secret": "app-db"}, out
    assert [m["params"]["step"] for m in msgs[1:-1]] == STEPS, out
    assert all(m["method"] == "secret.progress" for m in msgs[1:-1]), out
    assert msgs[-1]["method"] == "secret.finished", out
    assert msgs[-1]["params"]["result"] == "ok", out
    rc, out, err = scli(standin, "--json", "secret", "rotate", "bad", "-f")
    assert rc == 1, out
    assert json.loads(out.splitlines()[-1])["params"]["result"] == \
        "rolled_back", out


def test_rotate_unknown(standin):
    rc, out, err = scli(standin, "secret", "rotate", "nope", "--follow")
    assert rc == 1 and out == "", (rc, out, err)
    assert err == "opsd-cli: secret.rotate: no secret named 'nope' (not " \
        "found, -32002)\n", err


def test_rotate_busy_and_force(standin):
    rc, out, err = scli(standin, "secret", "rotate", "busy")
    assert rc == 1 and out == "", (rc, out, err)
    assert "may start at 2026-12-01T14:05:09Z (busy, -32003)" in err, err
    rc, out, err = scli(standin, "secret", "rotate", "--force", "busy")
    assert rc == 0, err
    assert last_params(standin, "secret.rotate") == {"name": "busy",
                                                     "force": True}
    rc, out, err = scli(standin, "secret", "rotate", "rotating", "--force",
                        "--follow")
    assert rc == 1 and "(busy, -32003)" in err, err
    assert last_params(standin, "secret.rotate") == {
        "name": "rotating", "force": True, "follow": True}


@pytest.mark.parametrize("args", [
    ("secret", "rotate"), ("secret", "rotate", "--bogus", "x"),
    ("secret", "rotate", "a", "b"), ("secret", "show"),
    ("secret", "show", "a", "b"), ("secret", "list", "x"),
    ("secret", "frobnicate")])
def test_usage_errors(standin, args):
    rc, out, err = scli(standin, *args)
    assert rc == 2, (args, rc, out, err)
    assert not standin.requests, standin.requests


def test_cannot_connect(rundir):
    for args in (("secret", "list"), ("secret", "show", "x"),
                 ("secret", "rotate", "x", "--follow")):
        rc, out, err = cli_run(*args, socket_path=rundir / "none.sock")
        assert rc == 3 and "is opsd running?" in err, (args, rc, err)


def test_help():
    for cmd, method, words in (
            ("list", "secret.list", []),
            ("show", "secret.show", ["NAME"]),
            ("rotate", "secret.rotate", ["NAME", "--follow", "--force"])):
        rc, out, err = cli_run("secret", cmd, "--help")
        assert rc == 0, err
        assert out.startswith(f"usage: opsd-cli [OPTIONS] secret {cmd}"), out
        assert f"Calls the JSON-RPC method {method}." in out, out
        for w in words:
            assert w in out.splitlines()[0], out


# --- against the daemon -----------------------------------------------------

NAME = "app-token"


@pytest.fixture
def secret_opsd(opsd_launcher, tmp_path):
    """opsd with one random secret; (daemon, path of its value)."""
    d = tmp_path / "published"
    d.mkdir()
    path = d / NAME
    seen = tmp_path / "on_rotate.seen"
    daemon = opsd_launcher(
        f"[secret {NAME}]\n"
        "kind = random\n"
        f"path = {path}\n"
        # what a consumer is told, to hold against what opsd-cli says
        f"on_rotate = echo \"$OPSD_SECRET_VERSION "
        f"$OPSD_SECRET_FINGERPRINT\" >> {seen}\n")
    daemon.seen = seen
    first_version(daemon)
    return daemon, path


def first_version(d):
    """Waits for the value made at start to be promoted: its file is
    written a step before, and a rotation asked for in between is
    refused as busy."""
    wait_for(lambda: d.rpc("secret.list")["secrets"][0]["version"] == 1,
             10, "the first value to be promoted")


def value(path):
    """The secret's value, read as root (the file is 0400)."""
    v = Path(path).read_text()
    assert v and not v.endswith("\n"), \
        f"{path} is empty or ends in a newline"
    return v


def check_no_value(values, *outputs):
    """Fails, without showing the value, if one is in an output."""
    for i, o in enumerate(outputs):
        if any(v in o for v in values):
            pytest.fail(f"a secret's value is in output {i} of "
                        f"{len(outputs)}", pytrace=False)


def test_daemon_list_shows_version_1(secret_opsd):
    d, path = secret_opsd
    rc, out, err = d.cli("secret", "list")
    assert rc == 0, err
    titles, rows = table(out, "NAME")
    assert titles == ["NAME", "KIND", "VERSION", "FINGERPRINT", "AGE",
                      "NEXT", "STATE"], out
    row = next(r for r in rows if r["NAME"] == NAME)
    assert row["KIND"] == "random" and row["VERSION"] == "1", out
    assert FINGERPRINT.match(row["FINGERPRINT"]), out
    assert row["STATE"] == "ok" and row["NEXT"] == "-", out
    assert re.match(r"^\d+s$", row["AGE"]), out

    rc, jout, err = d.cli("--json", "secret", "list")
    assert rc == 0, err
    s = next(s for s in json.loads(jout)["secrets"] if s["name"] == NAME)
    assert s["version"] == 1 and s["fingerprint"] == row["FINGERPRINT"], s
    assert s["kind"] == "random" and s["path"] == str(path), s
    check_no_value([value(path)], out, err, jout)


def test_daemon_show(secret_opsd):
    d, path = secret_opsd
    rc, out, err = d.cli("secret", "show", NAME)
    assert rc == 0, err
    k = kv(out)
    assert k["secret"] == NAME and k["kind"] == "random", out
    assert k["version"] == "1" and k["path"] == str(path), out
    assert FINGERPRINT.match(k["fingerprint"]), out
    titles, rows = table(out, "VERSION")
    assert [(r["VERSION"], r["LABEL"], r["FINGERPRINT"]) for r in rows] == \
        [("1", "current", k["fingerprint"])], out
    _, files = table(out, "KIND")
    f = next(f for f in files if f["PATH"] == str(path))
    assert (f["KIND"], f["MODE"], f["OWNER"]) == ("value", "0400", "root"), \
        out

    rc, jout, err = d.cli("secret", "show", NAME, "--json")
    assert rc == 0, err
    s = json.loads(jout)
    assert s["versions"][0]["label"] == "current", s
    assert s["rotation"] is None and s["failures"] == 0, s
    check_no_value([value(path)], out, err, jout)


def test_daemon_rotate_follow(secret_opsd):
    d, path = secret_opsd
    old = value(path)
    fp1 = d.cli_json("secret", "list")["secrets"][0]["fingerprint"]
    rc, out, err = d.cli("secret", "rotate", NAME, "--follow", timeout=120)
    assert rc == 0, (out, err)
    lines = out.splitlines()
    m = re.match(rf"^rotation of {NAME} started: op (\S+)$", lines[0])
    assert m, out
    op = m.group(1)
    steps = [ln.split()[1] for ln in lines[1:-1]]
    assert all(ln.startswith(f"{NAME}  ") for ln in lines[1:-1]), out
    # in the order of a rotation, every step a random secret takes
    assert steps == [s for s in STEPS if s in steps], out
    assert not DB_STEPS & set(steps), out
    assert {"generate", "write_files", "promote"} <= set(steps), out
    m = re.match(rf"^{NAME}: ok, version 2 \((sha256:[0-9a-f]{{16}})\)$",
                 lines[-1])
    assert m, out
    fp2 = m.group(1)
    assert fp2 != fp1, out
    new = value(path)
    assert new != old
    # on_rotate was told the same version and fingerprint
    assert d.seen.read_text().splitlines()[-1] == f"2 {fp2}"

    s = d.cli_json("secret", "list")["secrets"][0]
    assert (s["version"], s["fingerprint"]) == (2, fp2), s
    rc, show, serr = d.cli("secret", "show", NAME)
    assert rc == 0 and kv(show)["version"] == "2", show
    assert kv(show)["last result"].startswith("ok at "), show
    assert f"(op {op})" in kv(show)["last result"], show
    rc, opout, operr = d.cli("op", "show", op)
    assert rc == 0, operr
    assert kv(opout)["kind"] == "secret.rotate", opout
    assert kv(opout)["object"] == NAME, opout
    check_no_value([old, new], out, err, show, serr, opout, operr)


def test_daemon_rotate_without_follow(secret_opsd):
    d, path = secret_opsd
    rc, out, err = d.cli("secret", "rotate", NAME)
    assert rc == 0, err
    assert re.match(rf"^rotation of {NAME} started: op \S+\n$", out), out
    wait_for(lambda: d.cli_json("secret", "list")["secrets"][0]["version"]
             == 2, 30, "the rotation to be promoted")


def test_daemon_rotate_rolled_back(opsd_launcher, tmp_path):
    """A consumer that refuses the new value: the rotation is rolled back,
    --follow exits 1 and the version stays 1."""
    path = tmp_path / NAME
    d = opsd_launcher(
        f"[secret {NAME}]\nkind = random\npath = {path}\n"
        "on_rotate = test \"$OPSD_SECRET_VERSION\" -lt 2\n")
    first_version(d)
    old = value(path)
    rc, out, err = d.cli("secret", "rotate", NAME, "--follow", timeout=120)
    assert rc == 1, (out, err)
    assert re.match(rf"^{NAME}: rolled_back: \S", out.splitlines()[-1]), out
    assert value(path) == old
    s = d.cli_json("secret", "list")["secrets"][0]
    assert s["version"] == 1, s
    check_no_value([old], out, err)


def test_daemon_rotate_unknown(secret_opsd):
    d, path = secret_opsd
    for args in (("secret", "rotate", "nope"),
                 ("secret", "rotate", "nope", "--follow"),
                 ("secret", "show", "nope")):
        rc, out, err = d.cli(*args)
        assert rc == 1 and out == "", (args, rc, out, err)
        # the method, a message naming the secret, the error's name
        assert re.search(r"^opsd-cli: secret\.(rotate|show): .*nope.* "
                         r"\(not found, -32002\)$", err, re.M), err
        rc, out, err = d.cli("--json", *args)
        assert rc == 1 and json.loads(out)["code"] == -32002, out


def test_daemon_json_parses(secret_opsd):
    d, path = secret_opsd
    old = value(path)
    outs = []
    for args in (("secret", "list"), ("secret", "show", NAME)):
        rc, out, err = d.cli("--json", *args)
        assert rc == 0, err
        json.loads(out)
        outs += [out, err]
    rc, out, err = d.cli("--json", "secret", "rotate", NAME, "--follow",
                         timeout=120)
    assert rc == 0, (out, err)
    msgs = [json.loads(ln) for ln in out.splitlines()]
    assert msgs[0]["secret"] == NAME and msgs[0]["op"], msgs
    assert all(m["method"] == "secret.progress" and
               m["params"]["secret"] == NAME and
               m["params"]["op"] == msgs[0]["op"] for m in msgs[1:-1]), msgs
    fin = msgs[-1]
    assert fin["method"] == "secret.finished", fin
    assert fin["params"]["result"] == "ok" and fin["params"]["error"] is None
    assert fin["params"]["version"] == 2, fin
    assert FINGERPRINT.match(fin["params"]["fingerprint"]), fin
    check_no_value([old, value(path)], out, err, *outs)


def test_daemon_value_in_no_output(secret_opsd):
    """Every secret command, as text and as JSON, before and after a
    rotation: the value is in none of what they print."""
    d, path = secret_opsd
    values = [value(path)]
    outputs = []

    def every():
        for args in (("secret", "list"), ("secret", "show", NAME),
                     ("op", "list")):
            for j in ((), ("--json",)):
                rc, out, err = d.cli(*j, *args)
                assert rc == 0, (args, err)
                outputs.extend([out, err])

    every()
    for j in ((), ("--json",)):
        rc, out, err = d.cli(*j, "secret", "rotate", NAME, "--follow",
                             timeout=120)
        assert rc == 0, (out, err)
        outputs.extend([out, err])
        values.append(value(path))
        every()
    assert len(set(values)) == 3, "each rotation makes a new value"
    check_no_value(values, *outputs)
