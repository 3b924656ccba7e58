"""
Shared helpers for opsd's black-box integration tests.

Every test talks to the real binaries: $OPSD_BUILD/daemon/opsd and
$OPSD_BUILD/client/opsd-cli (OPSD_BUILD defaults to build/ at the top of the
source tree). A daemon is started on a private socket and state directory
with a generated configuration, and is always stopped in teardown, even when
the test failed. The same suite runs against sanitizer builds: teardown
fails the test when a daemon's stderr carries an AddressSanitizer,
LeakSanitizer or UndefinedBehaviorSanitizer report.
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# OPSD_BUILD may be relative to the top of the source tree (build-asan)
BUILD = Path(REPO, os.environ.get("OPSD_BUILD") or "build").resolve()
OPSD = BUILD / "daemon" / "opsd"
CLI = BUILD / "client" / "opsd-cli"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer")

# Environment a systemd service manager would set: never inherited by
# accident, each test sets what it means to test.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
               "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM",
               "OPSD_SOCKET", "INVOCATION_ID")

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups"]
NOBODY_UID = 65534

START_TIMEOUT = 15.0     # sanitizer builds start slower


def _is_sanitized(path):
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


SANITIZED = _is_sanitized(OPSD)


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if SANITIZED:
        # a small quarantine, so that RSS measures the daemon and not
        # AddressSanitizer's pool of freed memory
        env["ASAN_OPTIONS"] = ":".join(filter(None, [
            env.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_report(text):
    """The first sanitizer line in text, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line
    return None


def run(argv, timeout=30, env=None, **kw):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, env=env or base_env(), **kw)
    return p.returncode, p.stdout, p.stderr


def cli_run(*args, socket_path=None, prefix=(), timeout=30, env=None):
    """Runs opsd-cli [-s socket_path] args...; returns (rc, stdout, stderr).
    prefix is prepended to the command line (e.g. AS_NOBODY)."""
    argv = list(prefix) + [CLI]
    if socket_path is not None:
        argv += ["-s", socket_path]
    argv += list(args)
    return run(argv, timeout=timeout, env=env)


def as_user(groups=None, regid="nogroup"):
    """setpriv prefix running as nobody with the given extra groups."""
    argv = ["setpriv", "--reuid=nobody", f"--regid={regid}"]
    if groups:
        argv.append("--groups=" + ",".join(str(g) for g in groups))
    else:
        argv.append("--clear-groups")
    return argv


def parse_json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        want = n if hard == resource.RLIM_INFINITY else min(n, hard)
        if want < n:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {n}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


EVT_TYPE_RE = re.compile(
    r'struct\s+evt_type\s+EVT_\w+\s*=\s*\{\s*"([\w.]+)"\s*,\s*'
    r'"([0-9a-f]{32})"')


def message_ids():
    """Event name -> MESSAGE_ID, read from the daemon's sources: the core
    types in daemon/core/evt.c, subsystems' own in their files."""
    core = dict(EVT_TYPE_RE.findall(
        (REPO / "daemon" / "core" / "evt.c").read_text()))
    assert core, "found no 'const struct evt_type EVT_X = { \"name\", " \
                 "\"<32 hex>\", ...}' definitions in daemon/core/evt.c"
    ids = {}
    for src in sorted((REPO / "daemon").rglob("*.c")):
        for name, mid in EVT_TYPE_RE.findall(src.read_text()):
            assert ids.get(name, mid) == mid, \
                f"event {name} has two MESSAGE_IDs ({src.name})"
            ids[name] = mid
    dup = {m for m in ids.values() if list(ids.values()).count(m) > 1}
    assert not dup, f"MESSAGE_IDs used by more than one event: {dup}"
    return ids


class Conn:
    """One raw connection to the control socket."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self.next_id = 1000

    def send(self, obj_or_bytes):
        if isinstance(obj_or_bytes, (bytes, bytearray)):
            data = bytes(obj_or_bytes)
        else:
            data = json.dumps(obj_or_bytes).encode() + b"\n"
        self.sock.sendall(data)

    def read_line(self, timeout=5.0):
        """The next reply line (bytes, without newline). Raises
        TimeoutError, or EOFError when the daemon closed the connection."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply line within {timeout}s "
                                   f"(have {self.buf[:200]!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise EOFError(f"connection closed by opsd (partial "
                               f"{self.buf[:200]!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_reply(self, timeout=5.0):
        line = self.read_line(timeout)
        try:
            return json.loads(line)
        except ValueError as e:
            raise AssertionError(f"reply is not JSON ({e}): {line[:300]!r}")

    def call(self, method, params=None, timeout=5.0):
        """Sends a request with a fresh id; returns the whole reply."""
        self.next_id += 1
        req = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            req["params"] = params
        self.send(req)
        reply = self.read_reply(timeout)
        assert reply.get("id") == self.next_id, \
            f"reply to {method} id {self.next_id} has another id: {reply}"
        return reply

    def expect_silence(self, timeout=0.3):
        """Asserts that nothing arrives within timeout."""
        try:
            line = self.read_line(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"expected no reply, got {line[:300]!r}")

    def close(self):
        self.sock.close()


def short_rundir():
    """A short directory for sockets (sun_path holds 107 bytes; pytest's
    tmp_path is long and mode 0700, which `nobody` cannot traverse)."""
    d = tempfile.mkdtemp(prefix="opsd-it.", dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


class Daemon:
    """A real opsd with its own config, socket, state dir and stderr log."""

    counter = 0

    def __init__(self, workdir, rundir, name=None):
        Daemon.counter += 1
        name = name or f"d{Daemon.counter}"
        self.name = name
        self.workdir = Path(workdir)
        self.rundir = Path(rundir)
        self.conf_path = self.workdir / f"{name}.conf"
        self.socket = self.rundir / f"{name}.sock"
        self.state_dir = self.workdir / f"{name}.state"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.proc = None
        self.stderr_file = None
        self.conns = []
        self.keys = {}

    # --- configuration ---------------------------------------------------
    def config_text(self, **keys):
        # metrics off: a test daemon opens no TCP port
        k = {"socket": self.socket, "state_dir": self.state_dir,
             "log_level": "info", "socket_mode": "0666",
             "metrics_listen": "off"}
        k.update(keys)
        lines = ["# opsd integration test config", "[opsd]"]
        lines += [f"{key} = {val}" for key, val in k.items()
                  if val is not None]
        return "\n".join(lines) + "\n"

    def write_config(self, text=None, **keys):
        if text is None:
            self.keys = keys
            text = self.config_text(**keys)
        self.conf_path.write_text(text)
        return self.conf_path

    # --- process ---------------------------------------------------------
    def start(self, args=None, env=None, prefix=(), log_target="stderr",
              wait=True, socket_path=None):
        if not self.conf_path.exists():
            self.write_config()
        argv = list(prefix) + [str(OPSD), "-c", str(self.conf_path)]
        if log_target is not None:
            argv.append(f"--log-target={log_target}")
        argv += list(args or [])
        self.argv = argv
        # append: a restarted daemon keeps the earlier log for reading
        self.stderr_file = open(self.stderr_path, "ab")
        self.stderr_offset = self.stderr_file.tell()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr_file,
                                     stderr=self.stderr_file,
                                     env=env or base_env())
        if wait:
            self.wait_ready(socket_path)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, socket_path=None, timeout=START_TIMEOUT):
        """Ready once an opsd.status call is answered: the event loop runs
        only after start-up finished (state written, signals handled)."""
        path = str(socket_path or self.socket)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"opsd exited with {self.proc.returncode} before its "
                    f"socket {path} answered; stderr:\n{self.log()}")
            try:
                c = Conn(path, timeout=max(0.1, deadline - time.monotonic()))
            except OSError as e:
                last = e
                time.sleep(0.01)
                continue
            try:
                c.send({"jsonrpc": "2.0", "method": "opsd.status", "id": 0})
                reply = c.read_reply(max(0.1, deadline - time.monotonic()))
                if "result" in reply:
                    return
                last = reply
            except (OSError, EOFError, TimeoutError) as e:
                last = e
            finally:
                c.close()
            time.sleep(0.01)
        raise AssertionError(f"opsd did not answer on {path} within "
                             f"{timeout}s ({last}); stderr:\n{self.log()}")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=5.0):
        """Waits for exit; returns the exit code (fails on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"opsd (pid {self.pid}) still running "
                                 f"{timeout}s later; stderr:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        self.send_signal(sig)
        return self.wait(timeout)

    def cleanup(self):
        """Teardown: stop gently (so LeakSanitizer runs), then SIGKILL."""
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.conns = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.stderr_file is not None:
            self.stderr_file.close()
            self.stderr_file = None

    # --- output ----------------------------------------------------------
    def log(self, since_start=False):
        try:
            data = self.stderr_path.read_bytes()
        except FileNotFoundError:
            return ""
        if since_start:
            data = data[self.stderr_offset:]
        return data.decode("utf-8", "replace")

    def events(self, name=None, since_start=False):
        ev = parse_json_lines(self.log(since_start))
        if name is not None:
            ev = [e for e in ev if e.get("event") == name]
        return ev

    def wait_event(self, name, timeout=5.0, pred=None):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(name):
                if pred is None or pred(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{name}' event on opsd's stderr "
                                     f"within {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    # --- clients ---------------------------------------------------------
    def cli(self, *args, prefix=(), timeout=30, env=None):
        return cli_run(*args, socket_path=self.socket, prefix=prefix,
                       timeout=timeout, env=env)

    def status(self):
        rc, out, err = self.cli("--json", "status")
        assert rc == 0, f"opsd-cli --json status failed ({rc}): {err}"
        return json.loads(out)

    def connect(self, timeout=5.0, path=None):
        c = Conn(path or self.socket, timeout)
        self.conns.append(c)
        return c

    def rpc(self, obj_or_bytes, nreplies=1, timeout=5.0):
        """Sends raw bytes (or one JSON value as a line) on a new
        connection and returns the reply (or a list of nreplies replies)."""
        c = self.connect()
        try:
            c.send(obj_or_bytes)
            replies = [c.read_reply(timeout) for _ in range(nreplies)]
        finally:
            c.close()
            self.conns.remove(c)
        return replies[0] if nreplies == 1 else replies


def check_sanitizers(daemons):
    problems = []
    for d in daemons:
        line = sanitizer_report(d.log())
        if line:
            problems.append(f"{d.name} ({d.stderr_path}): {line}")
    if problems:
        pytest.fail("sanitizer report on opsd's stderr:\n" +
                    "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    missing = [str(p) for p in (OPSD, CLI) if not os.access(p, os.X_OK)]
    if missing:
        pytest.exit(f"opsd binaries not found: {', '.join(missing)} "
                    f"(build with 'ninja -C {BUILD}' or set OPSD_BUILD)",
                    returncode=4)


@pytest.fixture
def rundir():
    d = short_rundir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def opsd_factory(tmp_path, rundir):
    """make(start=True, **config keys) -> Daemon. All are stopped and their
    stderr checked for sanitizer reports in teardown."""
    daemons = []

    def make(start=True, name=None, **keys):
        d = Daemon(tmp_path, rundir, name)
        d.write_config(**keys)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in daemons:
        d.cleanup()
    check_sanitizers(daemons)


@pytest.fixture
def opsd(opsd_factory):
    """A running opsd with the default test config."""
    return opsd_factory()


@pytest.fixture
def cli(opsd):
    return opsd.cli


@pytest.fixture
def rpc(opsd):
    return opsd.rpc


@pytest.fixture(scope="session")
def admin_group():
    """A group for admin_group tests: (name, gid). Created once with
    groupadd if missing and left in place (it grants nothing by itself;
    removing it could break a concurrent run of the suite)."""
    name = "opsdtestadm"
    rc, out, _ = run(["getent", "group", name])
    if rc != 0:
        rc, _, err = run(["groupadd", name])
        if rc not in (0, 9):     # 9: created meanwhile by a parallel run
            pytest.skip(f"groupadd {name} failed: {err.strip()}")
        rc, out, _ = run(["getent", "group", name])
        assert rc == 0, f"group {name} missing after groupadd"
    return name, int(out.split(":")[2])


@pytest.fixture
def opsd_version():
    rc, out, err = run([OPSD, "--version"])
    assert rc == 0, f"opsd --version failed ({rc}): {err}"
    m = re.match(r"opsd (\d+\.\d+\.\d+\S*)", out)
    assert m, f"opsd --version printed {out!r}"
    return m.group(1)
