"""
Secrets that are not PostgreSQL passwords, end to end against the real
daemon: kind = random in each encoding, the files (content, mode, owner,
group, set before the first byte is visible, previous values), the
fingerprint, a value that never leaks (log, RPC, CLI, /metrics, ps, the
on_rotate environment), the first start (generated, adopted, files put
back), rotate_every, [env_file], the config checks, the failures that
must leave the previous value in place, retries, alerts, "rotation
overdue", the metrics and opsd.health.

Every daemon has its own socket, state dir, metrics port and files under
tmp_path, so the module runs in parallel (pytest -n).
"""
import base64
import grp
import hashlib
import json
import math
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("svc")
from svc import (PROMTOOL, SANITIZED, check_config,  # noqa: E402
                 metric_value, parse_metrics, run, wait_for)

pytest_plugins = ["svc"]

HERE = Path(__file__).resolve().parent
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid


# --- config sections, RPC calls, files -----------------------------------

def section(head, **keys):
    """A config section; a list value repeats its key."""
    lines = [f"[{head}]"]
    for k, v in keys.items():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            lines.append(f"{k} = {x}")
    return "\n".join(lines) + "\n\n"


def secret_conf(name, path, **keys):
    keys.setdefault("kind", "random")
    return section(f"secret {name}", path=path, **keys)


def fingerprint(value):
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def alnum_len(nbytes):
    return math.ceil(nbytes * 8 / math.log2(62))


def show(d, name):
    return d.rpc("secret.show", {"name": name})


def listed(d, name):
    found = [s for s in d.rpc("secret.list")["secrets"] if s["name"] == name]
    assert len(found) == 1, f"secret.list has {len(found)} entries for {name}"
    return found[0]


def wait_version(d, name, version, timeout=10):
    return wait_for(lambda: (lambda s: s if s["version"] == version and
                             s["rotation"] is None else None)(show(d, name)),
                    timeout, f"secret {name} at version {version}",
                    detail=lambda: json.dumps(show(d, name)) +
                    d.log()[-3000:])


def wait_op(d, op, timeout=20):
    def done():
        o = d.rpc("op.show", {"id": op})
        return o if o.get("state") not in (None, "running") else None
    return wait_for(done, timeout, f"op {op} to end",
                    detail=lambda: d.log()[-3000:])


def rotate(d, name, state="ok", timeout=20, force=False):
    """secret.rotate, then waits for its op to end and for the secret to
    be idle again; the op, whose state must be state."""
    params = {"name": name}
    if force:
        params["force"] = True
    res = d.rpc("secret.rotate", params)
    assert res["secret"] == name and res["op"], res
    o = wait_op(d, res["op"], timeout)
    assert o["state"] == state, json.dumps(o, indent=1) + d.log()[-3000:]
    wait_for(lambda: show(d, name)["rotation"] is None, 5,
             f"secret {name} idle after op {res['op']}")
    return o


def script(path, body):
    """An executable /bin/sh script."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def file_state(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def recorder(tmp_path, watched, fail_flag=None, name="on-rotate"):
    """An on_rotate script that appends "VERSION FINGERPRINT FILE-FP" to a
    log (FILE-FP: what the published file held when it ran) and exits 1
    while fail_flag exists. Returns (script, log)."""
    log = tmp_path / f"{name}.log"
    fail = (f'[ -e {fail_flag} ] && {{ echo "told to fail" >&2; exit 1; }}\n'
            if fail_flag else "")
    s = script(tmp_path / f"{name}.sh",
               f'fp=$(printf "sha256:%s" "$(sha256sum < {watched} | '
               f'cut -c1-16)")\n'
               f'echo "$OPSD_SECRET_VERSION $OPSD_SECRET_FINGERPRINT $fp"'
               f' >> {log}\n' + fail + "exit 0\n")
    return s, log


def calls(log):
    if not log.exists():
        return []
    return [tuple(line.split()) for line in log.read_text().splitlines()]


def samples(d):
    return parse_metrics(d.metrics())


# --- kind = random: the value and its file -----------------------------------

def decode(encoding, value):
    """The raw bytes of value, checking the alphabet and padding rules."""
    if encoding == "base64":
        assert re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", value), value
        assert len(value) % 4 == 0, f"base64 is padded: {len(value)} chars"
        return base64.b64decode(value, validate=True)
    if encoding == "base64url":
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value), \
            f"base64url: no padding, '-' and '_': {value}"
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if encoding == "hex":
        assert re.fullmatch(r"[0-9a-fA-F]+", value), value
        return bytes.fromhex(value)
    raise AssertionError(encoding)


@pytest.mark.parametrize("encoding,nbytes", [
    ("base64", 17), ("base64", 16), ("base64", 4096), ("base64url", 17),
    ("base64url", 16), ("hex", 33), ("hex", 4096), ("alnum", 17),
    ("alnum", 4096)])
def test_random_value_encoding_and_file(opsd_launcher, tmp_path, encoding,
                                        nbytes):
    path = tmp_path / "pub" / "key"
    path.parent.mkdir()
    d = opsd_launcher(secret_conf("key", path, encoding=encoding,
                                  bytes=nbytes, mode="0440", owner="nobody",
                                  group="nogroup"))
    wait_version(d, "key", 1)
    values = []
    for version in (1, 2):
        if version == 2:
            rotate(d, "key")
        raw = path.read_bytes()
        assert not raw.endswith(b"\n") and b"\n" not in raw, raw[-20:]
        value = raw.decode("ascii")
        if encoding == "alnum":
            assert re.fullmatch(r"[A-Za-z0-9]+", value), value
            assert len(value) == alnum_len(nbytes), \
                f"{len(value)} characters for {nbytes} bytes"
        else:
            assert len(decode(encoding, value)) == nbytes
        if encoding == "base64":
            assert value.count("=") == (3 - nbytes % 3) % 3, value[-4:]
        assert file_state(path) == (0o440, NOBODY, NOGROUP), \
            oct(file_state(path)[0])
        s = show(d, "key")
        assert s["version"] == version and s["state"] == "ok", s
        assert s["fingerprint"] == fingerprint(value), s
        f = [x for x in s["files"] if x["kind"] == "value"][0]
        assert (f["path"], f["mode"], f["owner"], f["group"]) == \
            (str(path), "0440", "nobody", "nogroup"), f
        values.append(value)
    assert values[0] != values[1]
    # nothing but the file and its temp files was ever in the directory
    assert sorted(os.listdir(path.parent)) == ["key"]


def test_default_owner_mode_and_group(opsd_launcher, tmp_path):
    path = tmp_path / "key"
    d = opsd_launcher(secret_conf("key", path))
    wait_version(d, "key", 1)
    assert file_state(path) == (0o400, os.getuid(), os.getgid())
    value = path.read_text()
    assert len(decode("base64", value)) == 32     # the defaults


# --- owner and mode before the first byte ------------------------------------

class Watch:
    """inode_watch.py on a directory, in its own process."""

    def __init__(self, top, mode, uid, gid, *prefixes):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "inode_watch.py"), str(top),
             oct(mode)[2:], str(uid), str(gid), *prefixes],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line + self.proc.stderr.read()

    def report(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Strace:
    """strace attached to a running opsd, holding every chown and chmod
    for delay_us at its entry: a file whose bytes came before its owner
    and mode stays visible long enough for the watch to see it."""

    SYSCALLS = "fchown,fchmod,fchownat,fchmodat,chown,chmod,lchown"

    def __init__(self, pid, out, delay_us=40000):
        self.out = out
        self.proc = subprocess.Popen(
            ["strace", "-f", "-o", str(out), "-e", f"trace={self.SYSCALLS}",
             "-e", f"inject={self.SYSCALLS}:delay_enter={delay_us}",
             "-p", str(pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        # strace says so on stderr once each thread is attached
        line = self.proc.stderr.readline()
        assert "attached" in line, line + self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)     # detaches
            self.proc.wait(timeout=10)

    def delayed(self):
        return [x for x in self.out.read_text().splitlines()
                if "DELAYED" in x]


def test_mode_and_owner_set_before_first_byte(opsd_launcher, tmp_path):
    pub = tmp_path / "pub"
    pub.mkdir()
    path = pub / "app"
    n = 12 if SANITIZED else 20
    watch = Watch(pub, 0o440, NOBODY, NOGROUP, "app")
    tracer = None
    try:
        d = opsd_launcher(secret_conf("app", path, mode="0440",
                                      owner="nobody", group="nogroup",
                                      keep_previous=1))
        wait_version(d, "app", 1)
        tracer = Strace(d.pid, tmp_path / "strace.out")
        for i in range(n):
            rotate(d, "app")
        tracer.stop()
        delayed = tracer.delayed()
        report = watch.report()
    finally:
        watch.kill()
        if tracer is not None:
            tracer.stop()
    assert not report["overflow"], "inotify queue overflow: events lost"
    assert report["violations"] == [], \
        f"a file held bytes under the wrong mode or owner: " \
        f"{report['violations'][:5]}"
    files = report["files"]
    at_path = [f for f in files if "app" in f["names"]]
    # every version that was published at path: the first and n more
    assert len(at_path) == n + 1, [f["names"] for f in files]
    # each was a temp file first (the watch may miss the first value's,
    # written at start before strace held anything)
    late = [f["names"] for f in at_path
            if not f["names"][0].startswith(".app.")]
    assert len(late) <= 1, f"{late}: not seen as temp files first"
    for f in at_path:
        assert f["nonempty_seen"] > 0, f
    prev = [f for f in files if "app.previous" in f["names"]]
    assert len(prev) == n, [f["names"] for f in files]
    # the watch was there before the first byte of each rotation's files:
    # it saw them empty, then full with the right owner and mode
    # (nearly all: a busy machine may keep the watch off a CPU for longer
    # than strace holds the chown)
    first_empty = [f for f in files if f["first_size"] == 0]
    assert len(first_empty) >= 2 * n * 0.9, \
        f"only {len(first_empty)} of {len(files)} files seen while empty:" \
        f" {[f['names'] for f in files if f['first_size']]}"
    assert len(delayed) >= 4 * n, \
        f"strace held {len(delayed)} chown/chmod calls for {n} rotations"
    assert file_state(path) == (0o440, NOBODY, NOGROUP)
    assert file_state(str(path) + ".previous") == (0o440, NOBODY, NOGROUP)


# --- previous values and the fingerprint -------------------------------------

def test_keep_previous_two_and_fingerprints(opsd_launcher, tmp_path):
    path = tmp_path / "jwt.key"
    prev1, prev2 = Path(f"{path}.previous"), Path(f"{path}.previous.2")
    d = opsd_launcher(secret_conf("jwt", path, keep_previous=2,
                                  encoding="base64url", mode="0440",
                                  group="nogroup"))
    wait_version(d, "jwt", 1)
    values = [path.read_text()]
    assert not prev1.exists() and not prev2.exists()
    seen = {listed(d, "jwt")["fingerprint"]}
    for version in (2, 3, 4):
        rotate(d, "jwt")
        values.append(path.read_text())
        assert len(set(values)) == len(values), "a value came back"
        assert prev1.read_text() == values[-2]
        if version >= 3:
            assert prev2.read_text() == values[-3]
        else:
            assert not prev2.exists()
        assert not Path(f"{path}.previous.3").exists()
        for p in (path, prev1):
            assert file_state(p) == (0o440, os.getuid(), NOGROUP)
        s = listed(d, "jwt")
        assert s["version"] == version
        assert s["fingerprint"] == fingerprint(values[-1]), s
        assert s["fingerprint"] not in seen, "the fingerprint did not change"
        seen.add(s["fingerprint"])
        v = show(d, "jwt")["versions"]
        assert [x["version"] for x in v][:3] == \
            [version, version - 1, version - 2][:len(v[:3])], v
        # two previous versions kept, the older ones only remembered
        assert [x["label"] for x in v] == \
            (["current", "previous", "previous"] +
             ["retired"] * (version - 3))[:version], v
        assert v[0]["retired"] is None and v[1]["retired"] >= \
            v[1]["created"], v
        assert [x["fingerprint"] for x in v[:3]] == \
            [fingerprint(x) for x in values[::-1][:3]], v
    assert prev2.read_text() == values[1]


# --- the value never leaks ---------------------------------------------------

def test_value_never_leaks(opsd_launcher, tmp_path):
    path = tmp_path / "api.key"
    gate, started = tmp_path / "go", tmp_path / "started"
    envdump = tmp_path / "env.txt"
    gate.touch()
    hook = script(tmp_path / "hook.sh",
                  f"env > {envdump}.$OPSD_SECRET_VERSION\n"
                  f"touch {started}\n"
                  f"while [ ! -e {gate} ]; do sleep 0.05; done\n")
    d = opsd_launcher(secret_conf("api", path, on_rotate=hook,
                                  on_rotate_timeout="60s", keep_previous=1,
                                  rotate_every="1h", encoding="hex"))
    wait_version(d, "api", 1)
    values = [path.read_text()]
    gate.unlink()
    started.unlink()
    res = d.rpc("secret.rotate", {"name": "api"})
    wait_for(started.exists, 10, "on_rotate to run")
    # on_rotate is waiting: the new value is in place, the op is open
    values.append(path.read_text())
    assert values[1] != values[0]
    ps = [run(["ps", "-eww", "-o", "pid,args"])[1],
          run(["ps", "eww", "-e"])[1]]     # e: with each environment
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            for f in ("cmdline", "environ"):
                try:
                    ps.append((p / f).read_bytes().decode("utf-8",
                                                          "replace"))
                except OSError:
                    pass
    during = [json.dumps(d.rpc("secret.show", {"name": "api"})),
              json.dumps(d.rpc("op.show", {"id": res["op"]}))]
    assert json.loads(during[0])["rotation"]["step"] == "on_rotate"
    gate.touch()
    wait_op(d, res["op"])
    wait_version(d, "api", 2)
    rotate(d, "api")
    values.append(path.read_text())

    texts = {"ps and /proc": "\n".join(ps), "RPC during the rotation":
             "\n".join(during)}
    for m, p in (("secret.list", None), ("secret.show", {"name": "api"}),
                 ("op.list", None), ("op.show", {"id": res["op"]}),
                 ("opsd.status", None), ("opsd.health", None),
                 ("opsd.jobs", None)):
        texts[m] = json.dumps(d.rpc(m, p))
    for args in (("call", "secret.list"),
                 ("call", "secret.show", '{"name": "api"}'),
                 ("status",), ("op", "list"), ("op", "show", res["op"]),
                 ("--json", "op", "show", res["op"]), ("summary",),
                 ("jobs",)):
        rc, out, err = d.cli(*args)
        assert rc in (0, 1), (args, rc, err)
        texts["opsd-cli " + " ".join(args)] = out + err
    texts["/metrics"] = d.metrics()
    # the daemon's own log, at debug level too
    assert d.cli("log-level", "debug")[0] == 0
    rotate(d, "api")
    values.append(path.read_text())
    texts["stderr"] = d.log()
    texts["state dir but the value files"] = "\n".join(
        p.read_text(errors="replace") for p in d.state_dir.rglob("*")
        if p.is_file() and not re.search(r"\.v\d+$", p.name))
    for version in (1, 2, 3, 4):
        dump = Path(f"{envdump}.{version}").read_text()
        env = dict(line.split("=", 1) for line in dump.splitlines()
                   if "=" in line)
        assert env.get("OPSD_SECRET") == "api", dump
        assert env.get("OPSD_SECRET_VERSION") == str(version), dump
        assert env.get("OPSD_SECRET_FINGERPRINT") == \
            fingerprint(values[version - 1]), dump
        texts[f"on_rotate environment of v{version}"] = dump
    assert "api" in texts["opsd-cli call secret.list"]
    assert fingerprint(values[1]) in texts["opsd-cli call secret.show "
                                           '{"name": "api"}']
    for what, text in texts.items():
        for i, v in enumerate(values):
            # the whole value, and a part of it long enough to mean it
            for needle in (v, v[:16], v[-16:]):
                assert needle not in text, \
                    f"version {i + 1}'s value is in {what}"


# --- the first start ---------------------------------------------------------

def test_first_start_generates(opsd_launcher, tmp_path):
    path = tmp_path / "new.key"
    d = opsd_launcher(secret_conf("new", path))
    ev = d.wait_event("secret.created")[0]
    s = wait_version(d, "new", 1)
    assert ev["secret"] == "new" and ev["version"] == "1", ev
    assert ev["fingerprint"] == fingerprint(path.read_text()), ev
    assert s["origin"] == "generated" and s["state"] == "ok", s
    assert [x["label"] for x in s["versions"]] == ["current"], s
    assert d.events("secret.file_restored") == []
    # a restart keeps it, makes nothing new
    value = path.read_text()
    d.stop()
    d.start()
    s = show(d, "new")
    assert s["version"] == 1 and path.read_text() == value, s
    assert len(d.events("secret.created")) == 1
    assert d.events("secret.file_restored") == []


def test_first_start_adopts_existing_file(opsd_launcher, tmp_path):
    path = tmp_path / "legacy.key"
    value = "legacy-" + base64.b64encode(os.urandom(24)).decode()
    path.write_text(value)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    d = opsd_launcher(secret_conf("legacy", path, keep_previous=1))
    s = wait_version(d, "legacy", 1)
    assert path.read_text() == value, "the adopted value was changed"
    assert s["origin"] == "imported" and s["state"] == "ok", s
    assert s["fingerprint"] == fingerprint(value), s
    assert s["age_seconds"] >= 7000, "created is the file's mtime"
    assert d.events("secret.created") == []
    # the adopted value is the previous one after a rotation
    rotate(d, "legacy")
    assert Path(f"{path}.previous").read_text() == value
    assert path.read_text() != value
    assert show(d, "legacy")["versions"][1]["fingerprint"] == \
        fingerprint(value)


@pytest.mark.parametrize("how", ["deleted", "edited", "newline", "chmod",
                                 "chown"])
def test_published_file_restored_at_start(opsd_launcher, tmp_path, how):
    """What a consumer reads is the value exactly, as configured: a file
    deleted, edited (an editor's final newline too) or opened up while
    opsd was stopped is written again at the next start."""
    path = tmp_path / "svc.key"
    d = opsd_launcher(secret_conf("svc", path, mode="0440",
                                  owner="nobody", keep_previous=1))
    wait_version(d, "svc", 1)
    rotate(d, "svc")
    value, previous = path.read_text(), Path(f"{path}.previous").read_text()
    d.stop()
    if how == "deleted":
        path.unlink()
        Path(f"{path}.previous").unlink()
    elif how == "edited":
        path.chmod(0o600)
        path.write_text("edited by hand")
    elif how == "newline":
        path.chmod(0o600)
        path.write_text(value + "\n")
        path.chmod(0o440)
    elif how == "chmod":
        path.chmod(0o644)
    else:
        os.chown(path, 0, 0)
    d.start()
    ev = d.wait_event("secret.file_restored")[0]
    assert ev["secret"] == "svc" and ev["version"] == "2", ev
    assert path.read_bytes() == value.encode()
    assert Path(f"{path}.previous").read_text() == previous
    assert file_state(path) == (0o440, NOBODY, os.getgid())
    s = show(d, "svc")
    assert s["version"] == 2 and s["fingerprint"] == fingerprint(value)
    assert value not in d.log()
    # as it should be: a restart leaves it alone
    d.stop()
    d.start()
    assert len(d.events("secret.file_restored")) == 1


def test_reload_applies_mode_and_owner(opsd_launcher, tmp_path):
    path = tmp_path / "k"
    d = opsd_launcher(secret_conf("k", path, mode="0400"))
    wait_version(d, "k", 1)
    value = path.read_text()
    d.conf_path.write_text(d.config(secret_conf("k", path, mode="0440",
                                                owner="nobody",
                                                group="nogroup")))
    assert d.cli("reload")[0] == 0
    wait_for(lambda: file_state(path) == (0o440, NOBODY, NOGROUP), 5,
             "the new mode and owner", detail=lambda: file_state(path))
    assert path.read_text() == value and show(d, "k")["version"] == 1


# --- rotate_every ------------------------------------------------------------

def test_rotate_every_rotates_on_its_own(opsd_launcher, tmp_path):
    path = tmp_path / "short.key"
    d = opsd_launcher(secret_conf("short", path, rotate_every="2s"))
    s1 = wait_version(d, "short", 1)
    assert s1["next_rotation"] == s1["created"] + 2, s1
    nxt = metric_value(samples(d),
                       "opsd_secret_next_rotation_timestamp_seconds",
                       secret="short")
    assert nxt == s1["next_rotation"]
    v1 = path.read_text()
    s2 = wait_version(d, "short", 2, timeout=6)
    assert path.read_text() != v1
    assert s2["next_rotation"] == s2["created"] + 2, s2
    assert s2["next_rotation"] > s1["next_rotation"]
    s3 = wait_version(d, "short", 3, timeout=6)
    assert s3["next_rotation"] > s2["next_rotation"]
    assert 1 <= s3["created"] - s2["created"] <= 4, (s2, s3)
    assert all(e["secret"] == "short" for e in d.events("secret.rotated"))
    assert len(d.events("secret.rotated")) >= 2


# --- [env_file] --------------------------------------------------------------

def test_env_file_renders_both_secrets(opsd_launcher, tmp_path):
    tpl = tmp_path / "app.env.tpl"
    tpl.write_text("# app settings\nDB_PASSWORD={{secret:a}}\n"
                   "JWT_KEY={{secret:b}}\nBOTH={{secret:a}}:{{secret:b}}\n"
                   "LEFT={{not_a_placeholder}}\n")
    out = tmp_path / "app.env"
    pa, pb = tmp_path / "a", tmp_path / "b"
    d = opsd_launcher(secret_conf("a", pa) +
                      secret_conf("b", pb, encoding="hex") +
                      section("env_file app", template=tpl, path=out))

    def expected():
        a, b = pa.read_text(), pb.read_text()
        return (f"# app settings\nDB_PASSWORD={a}\nJWT_KEY={b}\n"
                f"BOTH={a}:{b}\nLEFT={{{{not_a_placeholder}}}}\n")
    wait_version(d, "a", 1)
    wait_version(d, "b", 1)
    wait_for(out.exists, 5, "the env file")
    assert out.read_text() == expected()
    assert file_state(out) == (0o600, os.getuid(), os.getgid())
    b1 = pb.read_text()
    rotate(d, "a")
    assert out.read_text() == expected()
    assert pb.read_text() == b1
    rotate(d, "b")
    assert out.read_text() == expected() and pb.read_text() != b1
    f = [x for x in show(d, "b")["files"] if x["kind"] == "env_file"]
    assert f and f[0]["path"] == str(out) and f[0]["mode"] == "0600", f


def test_env_file_unknown_secret_is_a_config_error(tmp_path):
    tpl = tmp_path / "t.env"
    tpl.write_text("A={{secret:a}}\n\nX={{secret:x}}\n")
    rc, out, err, conf = check_config(
        secret_conf("a", tmp_path / "a") +
        section("env_file e", template=tpl, path=tmp_path / "e.env"),
        tmp_path)
    assert rc == 1, (out, err)
    assert f"{tpl}:3: unknown secret 'x'" in err, err


# --- config errors -----------------------------------------------------------

def _bad(tmp_path, body, marker, message):
    """body with a line holding marker (or the section line when marker
    starts with '['): --check-config must say FILE:LINE: ...message."""
    rc, out, err, conf = check_config(body, tmp_path)
    assert rc == 1, f"accepted:\n{body}\n{out}{err}"
    line = next(i for i, x in enumerate(body.splitlines(), 1)
                if x.startswith(marker))
    assert f"{conf}:{line}: " in err and message in err, \
        f"expected {conf}:{line}: ...{message}...; got\n{err}"
    return err


CONFIG_ERRORS = [
    ("rotate_every-and-schedule", dict(rotate_every="1d",
                                       schedule="0 3 * * *"),
     "schedule =", "rotate_every and schedule"),
    ("random-with-role", dict(role="app"), "role =",
     "role is for kind = postgres-password"),
    ("postgres-without-database", dict(kind="postgres-password",
                                       role="app"), "[secret s]",
     "needs database"),
    ("alternating-one-role", dict(kind="postgres-password", database="db",
                                  strategy="alternating", roles="app_a"),
     "roles =", "exactly two roles"),
    ("mode-0666", dict(mode="0666"), "mode =", "lets anyone write"),
    ("mode-0500", dict(mode="0500"), "mode =", "executable"),
    ("bytes-too-few", dict(bytes=8), "bytes =", ""),
    ("bad-encoding", dict(encoding="base32"), "encoding =", "base32"),
]


@pytest.mark.parametrize("keys,marker,message",
                         [c[1:] for c in CONFIG_ERRORS],
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_config_error(tmp_path, keys, marker, message):
    _bad(tmp_path, secret_conf("s", tmp_path / "s", **keys), marker, message)


def test_config_error_two_secrets_one_path(tmp_path):
    _bad(tmp_path, secret_conf("a", tmp_path / "same") +
         secret_conf("b", tmp_path / "same"), "[secret b]",
         f"{tmp_path / 'same'} is already written by another")


def test_config_error_secret_and_env_file_one_path(tmp_path):
    tpl = tmp_path / "t"
    tpl.write_text("A={{secret:a}}\n")
    _bad(tmp_path, secret_conf("a", tmp_path / "same") +
         section("env_file e", template=tpl, path=tmp_path / "same"),
         "[env_file e]", "already written by another")


def test_config_error_unknown_verify_probe(tmp_path):
    _bad(tmp_path, secret_conf("a", tmp_path / "a", verify_probe="nope"),
         "verify_probe =", "unknown probe 'nope'")


def test_config_error_unknown_alert_route(tmp_path):
    _bad(tmp_path, section("alert hook", type="webhook",
                           url="http://127.0.0.1:9/x") +
         secret_conf("a", tmp_path / "a", alert=["hook", "pager"]),
         "alert = pager", "unknown alert route 'pager'")


def test_reload_with_bad_secret_keeps_old_config(opsd_launcher, tmp_path):
    path = tmp_path / "k"
    good = secret_conf("k", path, mode="0440")
    d = opsd_launcher(good)
    wait_version(d, "k", 1)
    bad = d.config(secret_conf("k", path, mode="0666", keep_previous=1) +
                   secret_conf("other", tmp_path / "other"))
    d.conf_path.write_text(bad)
    rc, out, err = d.cli("reload")
    line = next(i for i, x in enumerate(bad.splitlines(), 1)
                if x.startswith("mode ="))
    assert rc == 1 and f"{d.conf_path}:{line}: " in err and \
        "lets anyone write" in err, (rc, out, err)
    assert [s["name"] for s in d.rpc("secret.list")["secrets"]] == ["k"]
    assert not (tmp_path / "other").exists()
    # the old settings go on: mode 0440, no previous file
    rotate(d, "k")
    assert file_state(path)[0] == 0o440
    assert not Path(f"{path}.previous").exists()
    assert d.rpc("opsd.status")["reloads"] == 0
    # and a good one is taken
    d.conf_path.write_text(d.config(secret_conf("k", path, mode="0400",
                                                keep_previous=1)))
    assert d.cli("reload")[0] == 0
    rotate(d, "k")
    assert file_state(path)[0] == 0o400
    assert Path(f"{path}.previous").exists()


# --- failures leave the previous value in place ------------------------------

def _failing_setup(opsd_launcher, tmp_path, **keys):
    """A secret "s" at version 2 (so a previous file exists) whose
    on_rotate records every run and fails while tmp_path/fail exists."""
    path = tmp_path / "pub" / "s.key"
    path.parent.mkdir(exist_ok=True)
    flag = tmp_path / "fail"
    hook, log = recorder(tmp_path, path, flag)
    keys.setdefault("on_rotate", hook)
    d = opsd_launcher(secret_conf("s", path, keep_previous=1, **keys))
    wait_version(d, "s", 1)
    rotate(d, "s")
    return d, path, flag, log


def _assert_unchanged(d, path, before, prev_before, result, error_part):
    s = show(d, "s")
    assert path.read_text() == before, "the failed rotation left its value"
    assert Path(f"{path}.previous").read_text() == prev_before
    assert s["version"] == 2 and s["fingerprint"] == fingerprint(before), s
    assert s["state"] == "failed" and s["failures"] >= 1, s
    last = s["last_result"]
    assert last["result"] == result, last
    assert error_part in (last["error"] or ""), last
    assert s["last_error"] == last["error"], s
    ev = d.wait_event("secret.rotation_failed")[-1]
    assert ev["secret"] == "s" and ev["op"] == last["op"], ev
    assert error_part in ev["msg"] and ev.get("error") == last["error"], ev
    o = d.rpc("op.show", {"id": last["op"]})
    assert o["state"] == result and error_part in (o.get("error") or ""), o
    # the state holds no leftover of the failed version
    left = sorted(p.name for p in (d.state_dir / "secrets").iterdir())
    assert "s.v3" not in left, left
    return s


def test_on_rotate_failing_rolls_back(opsd_launcher, tmp_path):
    d, path, flag, log = _failing_setup(opsd_launcher, tmp_path)
    before, prev = path.read_text(), Path(f"{path}.previous").read_text()
    flag.touch()
    n = len(calls(log))
    rotate(d, "s", state="rolled_back")
    _assert_unchanged(d, path, before, prev, "rolled_back",
                      "exited with status 1")
    runs = calls(log)[n:]
    # the failed run saw the new value in place; the rollback ran it
    # again with the old one back in the file
    assert len(runs) == 2, runs
    assert runs[0][0] == "3" and runs[0][1] == runs[0][2] != \
        fingerprint(before), runs
    assert runs[1] == ("2", fingerprint(before), fingerprint(before)), runs
    # and the next rotation works
    flag.unlink()
    rotate(d, "s")
    s = show(d, "s")
    assert s["version"] == 3 and s["state"] == "ok" and s["failures"] == 0
    assert Path(f"{path}.previous").read_text() == before


def test_on_rotate_hanging_is_killed_and_rolled_back(opsd_launcher,
                                                     tmp_path):
    path = tmp_path / "pub" / "s.key"
    path.parent.mkdir()
    pidfile = tmp_path / "sleep.pid"
    hang = tmp_path / "hang"
    hook = script(tmp_path / "hook.sh",
                  f'echo "$OPSD_SECRET_VERSION" >> {tmp_path}/runs\n'
                  f'if [ -e {hang} ]; then sleep 60 & echo $! > {pidfile};'
                  f' wait; fi\n')
    d = opsd_launcher(secret_conf("s", path, keep_previous=1,
                                  on_rotate=hook, on_rotate_timeout="1s"))
    wait_version(d, "s", 1)
    rotate(d, "s")
    before, prev = path.read_text(), Path(f"{path}.previous").read_text()
    hang.touch()
    t0 = time.monotonic()
    rotate(d, "s", state="rolled_back")
    took = time.monotonic() - t0
    assert took < 10, f"the 1s on_rotate_timeout took {took:.1f}s"
    _assert_unchanged(d, path, before, prev, "rolled_back", "on_rotate")
    err = show(d, "s")["last_result"]["error"]
    assert "timed out" in err or "timeout" in err or "killed" in err, err
    pid = int(pidfile.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or
             "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], 5,
             "the hanging command's child to be killed")
    runs = (tmp_path / "runs").read_text().split()
    assert runs[-2:] == ["3", "2"], runs


def test_unwritable_directory_rolls_back(opsd_launcher, tmp_path):
    d, path, flag, log = _failing_setup(opsd_launcher, tmp_path)
    before, prev = path.read_text(), Path(f"{path}.previous").read_text()
    pub = path.parent
    # root ignores modes: a read-only bind mount of the directory
    rc, out, err = run(["mount", "--bind", pub, pub])
    if rc != 0:
        pytest.skip(f"cannot bind-mount here: {err.strip()}")
    try:
        rc, out, err = run(["mount", "-o", "remount,bind,ro", pub])
        assert rc == 0, err
        n = len(calls(log))
        rotate(d, "s", state="rolled_back")
        _assert_unchanged(d, path, before, prev, "rolled_back",
                          "Read-only file system")
        assert str(pub) in show(d, "s")["last_error"]
        # on_rotate never ran: nothing new was in place
        assert calls(log)[n:] == []
    finally:
        run(["umount", pub])
    rotate(d, "s")
    assert path.read_text() != before
    assert Path(f"{path}.previous").read_text() == before


def test_state_dir_unwritable_fails_without_change(opsd_launcher, tmp_path):
    """A rotation that cannot even store its pending value changed
    nothing: result failed, counted as such."""
    d, path, flag, log = _failing_setup(opsd_launcher, tmp_path)
    before, prev = path.read_text(), Path(f"{path}.previous").read_text()
    sdir = d.state_dir / "secrets"
    rc, out, err = run(["mount", "--bind", sdir, sdir])
    if rc != 0:
        pytest.skip(f"cannot bind-mount here: {err.strip()}")
    try:
        assert run(["mount", "-o", "remount,bind,ro", sdir])[0] == 0
        n = len(calls(log))
        rotate(d, "s", state="failed")
        s = show(d, "s")
        assert path.read_text() == before
        assert Path(f"{path}.previous").read_text() == prev
        assert s["version"] == 2 and s["state"] == "failed", s
        assert s["last_result"]["result"] == "failed", s
        assert "pending" in s["last_result"]["error"], s
        assert calls(log)[n:] == []
        m = samples(d)
        assert metric_value(m, "opsd_secret_rotations_total", secret="s",
                            result="failed") == 1
    finally:
        run(["umount", sdir])
    rotate(d, "s")


def test_verify_probe_failing_rolls_back(opsd_launcher, tmp_path):
    reject = tmp_path / "reject"
    path = tmp_path / "pub" / "s.key"
    path.parent.mkdir()
    hook, log = recorder(tmp_path, path)
    checker = script(tmp_path / "check.sh",
                     f'if [ -e {reject} ]; then echo "backend rejects key '
                     f'$(cut -c1-4 {reject})"; exit 2; fi\necho fine\n')
    d = opsd_launcher(
        section("probe v", kind="exec", command=checker, interval="1h",
                rise=1, fall=1) +
        secret_conf("s", path, keep_previous=1, on_rotate=hook,
                    verify_probe="v", verify_timeout="2s"))
    wait_version(d, "s", 1)
    rotate(d, "s")
    before, prev = path.read_text(), Path(f"{path}.previous").read_text()
    reject.write_text("k123")
    n = len(calls(log))
    rotate(d, "s", state="rolled_back")
    s = _assert_unchanged(d, path, before, prev, "rolled_back",
                          "backend rejects key k123")
    assert "verify_probe v" in s["last_error"], s
    runs = calls(log)[n:]
    assert [r[0] for r in runs] == ["3", "2"], runs
    assert runs[1][2] == fingerprint(before)
    # the probe passes again: so does the rotation
    reject.unlink()
    rotate(d, "s")
    assert show(d, "s")["version"] == 3


# --- retries, alerts, overdue ------------------------------------------------

def firing(kind):
    return lambda p: (p["json"] or {}).get("status") == "firing" and \
        p["json"].get("type") == kind


def resolved(kind):
    return lambda p: (p["json"] or {}).get("status") == "resolved" and \
        p["json"].get("type") == kind


def test_failed_scheduled_rotation_retried_and_alerted(opsd_launcher,
                                                       webhook_rx,
                                                       tmp_path):
    path = tmp_path / "s.key"
    flag = tmp_path / "fail"
    hook, log = recorder(tmp_path, path, flag)
    d = opsd_launcher(
        section("alert hook", type="webhook", url=webhook_rx.url) +
        secret_conf("s", path, rotate_every="3s", retry_delay="1s",
                    grace="1h", on_rotate=hook, alert="hook"))
    wait_version(d, "s", 1)
    v1 = path.read_text()
    flag.touch()
    post = webhook_rx.wait(firing("secret.rotation"), timeout=10)[0]["json"]
    assert post["name"] == "s" and post["event"] == \
        "secret.rotation_failed", post
    assert "told to fail" in post["message"] or "status 1" in \
        post["message"], post
    # retried after 1s, then 2s (doubling): not in a tight loop
    wait_for(lambda: len(d.events("secret.rotation_failed")) >= 3, 10,
             "three failed attempts")
    time.sleep(1.0)
    failed = d.events("secret.rotation_failed")
    assert len(failed) <= 4, f"{len(failed)} attempts in about 6s: " \
        f"retry_delay is not kept"
    attempts = [c for c in calls(log) if c[0] == "2"]
    assert 3 <= len(attempts) <= 4, attempts
    s = show(d, "s")
    assert s["state"] == "failed" and s["failures"] >= 3, s
    assert s["next_rotation"] > time.time() - 1, s
    assert path.read_text() == v1
    flag.unlink()
    webhook_rx.wait(resolved("secret.rotation"), timeout=15)
    s = wait_version(d, "s", 2, timeout=5)
    assert s["state"] == "ok" and s["failures"] == 0, s
    assert path.read_text() != v1
    m = samples(d)
    assert metric_value(m, "opsd_secret_rotations_total", secret="s",
                        result="rolled_back") >= 3
    assert metric_value(m, "opsd_secret_rotations_total", secret="s",
                        result="ok") >= 2


def test_overdue_fires_event_and_alert(opsd_launcher, webhook_rx, tmp_path):
    path = tmp_path / "s.key"
    flag = tmp_path / "fail"
    hook, log = recorder(tmp_path, path, flag)
    d = opsd_launcher(
        section("alert hook", type="webhook", url=webhook_rx.url) +
        secret_conf("s", path, rotate_every="2s", grace="1s",
                    retry_delay="1s", on_rotate=hook, alert="hook"))
    s1 = wait_version(d, "s", 1)
    flag.touch()
    ev = d.wait_event("secret.overdue", timeout=10)[0]
    assert ev["secret"] == "s" and ev["version"] == "1", ev
    assert "OVERDUE" in ev["msg"], ev
    assert time.time() >= s1["created"] + 3
    post = webhook_rx.wait(firing("secret.overdue"), timeout=5)[0]["json"]
    assert post["name"] == "s", post
    assert metric_value(samples(d), "opsd_secret_overdue", secret="s") == 1
    # between two retries (while one runs the state says rotating)
    wait_for(lambda: listed(d, "s")["state"] == "overdue", 5,
             "state overdue", detail=lambda: listed(d, "s"))
    wait_for(lambda: (lambda h: h["status"] == "warning" and
                      any("overdue" in p for p in h["problems"]))(
                          d.rpc("opsd.health")), 5,
             "opsd.health to warn of it", detail=lambda: d.rpc("opsd.health"))
    flag.unlink()
    webhook_rx.wait(resolved("secret.overdue"), timeout=10)
    wait_for(lambda: listed(d, "s")["state"] == "ok", 5, "state ok")
    assert metric_value(samples(d), "opsd_secret_overdue", secret="s") == 0
    assert len(webhook_rx.received(firing("secret.overdue"))) == 1


# --- metrics and health ------------------------------------------------------

def test_metrics(opsd_launcher, tmp_path):
    path = tmp_path / "m.key"
    flag = tmp_path / "fail"
    hook, log = recorder(tmp_path, path, flag)
    d = opsd_launcher(secret_conf("m", path, on_rotate=hook,
                                  rotate_every="1h") +
                      secret_conf("plain", tmp_path / "plain"))
    wait_version(d, "m", 1)
    wait_version(d, "plain", 1)
    m = samples(d)

    def val(name, **labels):
        return metric_value(samples(d), name, **labels)
    assert metric_value(m, "opsd_secret_version", secret="m") == 1
    assert metric_value(m, "opsd_secret_rotations_total", secret="m",
                        result="ok") == 1
    for r in ("failed", "rolled_back"):
        assert metric_value(m, "opsd_secret_rotations_total", secret="m",
                            result=r) == 0
    created = show(d, "m")["created"]
    assert metric_value(m, "opsd_secret_next_rotation_timestamp_seconds",
                        secret="m") == created + 3600
    # no rotation planned: no sample
    assert metric_value(m, "opsd_secret_next_rotation_timestamp_seconds",
                        secret="plain") is None
    age = metric_value(m, "opsd_secret_age_seconds", secret="m")
    assert 0 <= age <= 5
    time.sleep(2.1)
    assert val("opsd_secret_age_seconds", secret="m") >= age + 2
    rotate(d, "m")
    rotate(d, "m")
    assert val("opsd_secret_version", secret="m") == 3
    assert val("opsd_secret_rotations_total", secret="m", result="ok") == 3
    assert val("opsd_secret_age_seconds", secret="m") <= 1
    assert val("opsd_secret_next_rotation_timestamp_seconds",
               secret="m") == show(d, "m")["created"] + 3600
    flag.touch()
    rotate(d, "m", state="rolled_back")
    rotate(d, "m", state="rolled_back")
    assert val("opsd_secret_rotations_total", secret="m",
               result="rolled_back") == 2
    assert val("opsd_secret_rotations_total", secret="m", result="ok") == 3
    assert val("opsd_secret_version", secret="m") == 3
    assert val("opsd_secret_version", secret="plain") == 1
    assert val("opsd_secret_rotations_total", secret="plain",
               result="ok") == 1
    # the counters are kept across a restart
    d.stop()
    d.start()
    assert val("opsd_secret_rotations_total", secret="m",
               result="rolled_back") == 2
    assert val("opsd_secret_rotations_total", secret="m", result="ok") == 3
    # and the exposition is valid for Prometheus' own parser
    text = d.metrics()
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def test_health_warns_after_failed_rotation(opsd_launcher, tmp_path):
    path = tmp_path / "h.key"
    flag = tmp_path / "fail"
    gate, started = tmp_path / "go", tmp_path / "started"
    gate.touch()
    hook, log = recorder(tmp_path, path, flag)
    wait = script(tmp_path / "wait.sh",
                  f"touch {started}\n"
                  f"while [ ! -e {gate} ]; do sleep 0.05; done\n")
    d = opsd_launcher(secret_conf("h", path, on_rotate=[hook, wait]))
    wait_version(d, "h", 1)
    h = d.rpc("opsd.health")
    assert h["status"] == "ok", h
    assert h["secrets"]["list"] == [{"name": "h", "state": "ok"}], h
    flag.touch()
    rotate(d, "h", state="rolled_back")
    h = d.rpc("opsd.health")
    assert h["status"] == "warning", h
    assert any("secret h" in p and "failed" in p for p in h["problems"]), h
    assert h["secrets"]["list"] == [{"name": "h", "state": "failed"}], h
    rc, out, err = d.cli("status", "--check")
    assert rc == 1 and out.startswith("WARNING"), (rc, out, err)
    # still a warning while the next attempt runs: the check does not
    # flap to OK at every retry
    flag.unlink()
    gate.unlink()
    res = d.rpc("secret.rotate", {"name": "h"})
    wait_for(started.exists, 10, "the next attempt's on_rotate")
    assert listed(d, "h")["state"] == "rotating"
    h = d.rpc("opsd.health")
    assert h["status"] == "warning", h
    assert d.cli("status", "--check")[0] == 1
    gate.touch()
    assert wait_op(d, res["op"])["state"] == "ok"
    rotate(d, "h")
    assert d.rpc("opsd.health")["status"] == "ok"
    assert d.cli("status", "--check")[0] == 0


# --- secret.rotate: errors and follow ----------------------------------------

def proto_codes():
    text = (HERE.parents[1] / "proto" / "opsd-proto.h").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"#define\s+(OPSD_ERR_\w+)\s+\(?(-\d+)", text)}


def test_rotate_errors(opsd_launcher, tmp_path):
    codes = proto_codes()
    path = tmp_path / "k"
    gate, started = tmp_path / "go", tmp_path / "started"
    gate.touch()
    hook = script(tmp_path / "hook.sh",
                  f"touch {started}\n"
                  f"while [ ! -e {gate} ]; do sleep 0.05; done\n")
    d = opsd_launcher(secret_conf("k", path, on_rotate=hook,
                                  min_interval="3s"))
    wait_version(d, "k", 1)
    for method in ("secret.show", "secret.rotate"):
        r = d.rpc_raw(method, {"name": "nope"})
        assert r["error"]["code"] == codes["OPSD_ERR_NOT_FOUND"], r
        assert "nope" in r["error"]["message"], r
    # min_interval holds for a manual rotation; force skips it
    r = d.rpc_raw("secret.rotate", {"name": "k"})
    assert r["error"]["code"] == codes["OPSD_ERR_BUSY"], r
    assert "min_interval" in r["error"]["message"], r
    gate.unlink()
    started.unlink(missing_ok=True)
    res = d.rpc("secret.rotate", {"name": "k", "force": True})
    wait_for(started.exists, 10, "on_rotate to run")
    # one rotation at a time
    r = d.rpc_raw("secret.rotate", {"name": "k", "force": True})
    assert r["error"]["code"] == codes["OPSD_ERR_BUSY"], r
    assert res["op"] in r["error"]["message"], r
    s = listed(d, "k")
    assert s["state"] == "rotating" and s["version"] == 1, s
    gate.touch()
    assert wait_op(d, res["op"])["state"] == "ok"
    assert show(d, "k")["version"] == 2


def test_rotate_follow_notifications(opsd_launcher, tmp_path):
    import socket
    path = tmp_path / "k"
    hook, log = recorder(tmp_path, path)
    d = opsd_launcher(secret_conf("k", path, on_rotate=hook))
    wait_version(d, "k", 1)
    msgs = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10 * (3 if SANITIZED else 1))
        c.connect(str(d.socket))
        c.sendall(json.dumps({"jsonrpc": "2.0", "id": 7,
                              "method": "secret.rotate",
                              "params": {"name": "k", "follow": True}})
                  .encode() + b"\n")
        buf = b""
        while not any(m.get("method") == "secret.finished" for m in msgs):
            chunk = c.recv(65536)
            assert chunk, f"connection closed after {msgs}"
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msgs.append(json.loads(line))
    reply = msgs[0]
    assert reply["id"] == 7 and reply["result"]["follow"] is True, reply
    op = reply["result"]["op"]
    steps = [m["params"]["step"] for m in msgs
             if m.get("method") == "secret.progress"]
    assert steps == ["generate", "write_files", "on_rotate", "promote"], \
        steps
    fin = msgs[-1]["params"]
    value = path.read_text()
    assert fin == {"op": op, "secret": "k", "result": "ok", "error": None,
                   "version": 2, "fingerprint": fingerprint(value)}, fin
    assert value not in json.dumps(msgs)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_min_interval_postpones_without_spinning(opsd_launcher, tmp_path):
    """rotate_every shorter than min_interval: each rotation waits for
    min_interval, and the daemon idles meanwhile."""
    path = tmp_path / "k"
    d = opsd_launcher(secret_conf("k", path, rotate_every="1s",
                                  min_interval="3s"))
    s1 = wait_version(d, "k", 1)
    # the time it will really start, not the one it will be put off from
    assert s1["next_rotation"] == s1["created"] + 3, s1
    cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
    s2 = wait_version(d, "k", 2, timeout=8)
    assert s2["created"] - s1["created"] >= 3, (s1, s2)
    used = cpu_seconds(d.pid) - cpu0
    took = time.monotonic() - t0
    assert used < 0.05 * took + 0.15, \
        f"opsd used {used:.2f}s of CPU in {took:.2f}s while waiting"


def test_on_rotate_commands_in_order_and_all_again_on_rollback(
        opsd_launcher, tmp_path, webhook_rx):
    """Two on_rotate commands and an env file: the second command fails
    for the new version; the rollback puts the file and the env file back
    and runs both commands again, in order. A manual rotation of a secret
    that is not due is not retried, but it does alert."""
    path = tmp_path / "pub" / "s.key"
    path.parent.mkdir()
    log = tmp_path / "runs"
    first = script(tmp_path / "first.sh",
                   f'echo "first $OPSD_SECRET_VERSION $(cat {path} | '
                   f'sha256sum | cut -c1-16)" >> {log}\n')
    second = script(tmp_path / "second.sh",
                    f'echo "second $OPSD_SECRET_VERSION" >> {log}\n'
                    f'[ "$OPSD_SECRET_VERSION" -lt 3 ]\n')
    tpl = tmp_path / "tpl"
    tpl.write_text("KEY={{secret:s}}\n")
    env = tmp_path / "app.env"
    d = opsd_launcher(
        section("alert hook", type="webhook", url=webhook_rx.url) +
        secret_conf("s", path, on_rotate=[first, second], retry_delay="1s",
                    rotate_every="1h", alert="hook") +
        section("env_file app", template=tpl, path=env))
    wait_version(d, "s", 1)
    rotate(d, "s")
    v2 = path.read_text()
    assert env.read_text() == f"KEY={v2}\n"
    log.write_text("")
    rotate(d, "s", state="rolled_back")
    h2 = hashlib.sha256(v2.encode()).hexdigest()[:16]
    lines = log.read_text().splitlines()
    assert [x.split()[:2] for x in lines] == [
        ["first", "3"], ["second", "3"], ["first", "2"], ["second", "2"]], \
        lines
    assert lines[0].split()[2] != h2 and lines[2].split()[2] == h2, lines
    assert path.read_text() == v2
    assert env.read_text() == f"KEY={v2}\n", "the env file was not put back"
    assert "second.sh" in show(d, "s")["last_error"]
    webhook_rx.wait(firing("secret.rotation"))
    # manual, not due: no retry
    time.sleep(2.5)
    assert len(log.read_text().splitlines()) == 4
    assert show(d, "s")["next_rotation"] == show(d, "s")["created"] + 3600


def test_verify_probe_passes_a_run_made_after_the_change(opsd_launcher,
                                                        tmp_path):
    path = tmp_path / "s.key"
    seen = tmp_path / "probe-saw"
    checker = script(tmp_path / "check.sh",
                     f'[ -e {path} ] && sha256sum < {path} | cut -c1-16 '
                     f'>> {seen}\nexit 0\n')
    d = opsd_launcher(
        section("probe v", kind="exec", command=checker, interval="1h",
                rise=1, fall=1) +
        secret_conf("s", path, verify_probe="v", verify_timeout="10s"))
    wait_version(d, "s", 1)
    seen.write_text("")
    o = rotate(d, "s")
    v2 = path.read_text()
    runs = seen.read_text().split()
    # the probe ran with the new value in place before the promotion
    assert hashlib.sha256(v2.encode()).hexdigest()[:16] in runs, runs
    assert [x["name"] for x in o["steps"]] == \
        ["generate", "write_files", "verify", "promote"], o


def test_path_under_a_regular_file(opsd_launcher, tmp_path):
    """The first value cannot be written (the directory of path is a
    file): the secret is missing, with a clear error, retried, and the
    daemon keeps answering; once the directory is there it is made."""
    parent = tmp_path / "secrets"
    parent.write_text("not a directory\n")
    path = parent / "k"
    d = opsd_launcher(secret_conf("k", path, retry_delay="1s",
                                  keep_previous=1))
    d.wait_event("secret.rotation_failed")
    wait_for(lambda: listed(d, "k")["last_error"], 5, "the error")
    s = listed(d, "k")
    assert s["state"] == "missing" and s["version"] is None, s
    assert str(parent) in s["last_error"] and \
        "Not a directory" in s["last_error"], s
    e = d.events("secret.rotation_failed")[0]
    assert e.get("error") == s["last_error"], e
    h = d.rpc("opsd.health")
    assert h["status"] == "critical", h
    assert any("secret k" in p for p in h["problems"]), h
    json.dumps(show(d, "k"))
    assert d.cli("--json", "status")[0] == 0
    # retried: once the directory is there, the value is made
    parent.unlink()
    parent.mkdir()
    wait_version(d, "k", 1, timeout=10)
    assert len(path.read_text()) == 44


@pytest.mark.parametrize("text,line,message", [
    ("A={{secret:a}}\n# no user\nU={{secret_user:a}}\n", 3,
     "{{secret_user:a}}: secret a is a random value and has no user"),
    ("A={{secret:a}}\nB={{secret:a b}}\n", 2, "{{secret:NAME}}"),
    ("A={{secret:a\n}}\n", 1, "on one line"),
], ids=["user-of-random", "blank-in-name", "two-lines"])
def test_env_file_template_errors(tmp_path, text, line, message):
    tpl = tmp_path / "t.env"
    tpl.write_text(text)
    rc, out, err, conf = check_config(
        secret_conf("a", tmp_path / "a") +
        section("env_file e", template=tpl, path=tmp_path / "e.env"),
        tmp_path)
    assert rc == 1, (out, err)
    assert f"{tpl}:{line}: " in err and message in err, err


def test_env_file_template_edited_and_reloaded(opsd_launcher, tmp_path):
    tpl = tmp_path / "t.env"
    tpl.write_text("A={{secret:a}}\n")
    out = tmp_path / "e.env"
    body = (secret_conf("a", tmp_path / "a") +
            section("env_file e", template=tpl, path=out))
    d = opsd_launcher(body)
    wait_version(d, "a", 1)
    a = (tmp_path / "a").read_text()
    wait_for(lambda: out.exists() and out.read_text() == f"A={a}\n", 5,
             "the env file")
    tpl.write_text("# edited\nAPI_KEY={{secret:a}}\n")
    assert d.cli("reload")[0] == 0
    wait_for(lambda: out.read_text() == f"# edited\nAPI_KEY={a}\n", 5,
             "the edited template rendered", detail=out.read_text)
    assert file_state(out)[0] == 0o600
