"""
What every helper module of the suite needs to run opsd and the tools
around it: the binaries of $OPSD_BUILD, an environment without systemd's
or libpq's variables, free ports (never handed out twice in a session),
polling with deadlines that stretch on sanitizer builds, and
DaemonProc, one opsd with a private config, socket, state dir and
stderr log (JSON lines), restartable and killable with SIGKILL.

svc.py (probes, alerts, metrics), backup_svc.py (PostgreSQL, backups,
secrets) and deploy_svc.py (nginx, slots, load) build on it; none of it
is a pytest plugin, so bench/ scripts can import it too.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("OPSD_BUILD") or REPO / "build").resolve()
OPSD = BUILD / "daemon" / "opsd"
CLI = BUILD / "client" / "opsd-cli"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer")
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
               "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM",
               "OPSD_SOCKET", "INVOCATION_ID")
# libpq variables that would change what opsd, pg_dump or psql connect to
PG_ENV = ("PGPASSWORD", "PGPASSFILE", "PGHOST", "PGPORT", "PGUSER",
          "PGDATABASE", "PGSERVICE", "PGSSLMODE", "PGOPTIONS")


def _sanitized(path):
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


SANITIZED = _sanitized(OPSD)
# deadlines of things opsd does: longer under ASan, never shorter
SCALE = 2.5 if SANITIZED else 1.0


def env(**extra):
    """This process's environment without systemd's and libpq's
    variables, plus extra."""
    e = {k: v for k, v in os.environ.items()
         if k not in SYSTEMD_ENV and k not in PG_ENV}
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(argv, timeout=60, **kw):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    kw.setdefault("env", env())
    p = subprocess.run([str(a) for a in argv], capture_output=True,
                       text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def must(argv, what=None, **kw):
    rc, out, err = run(argv, **kw)
    if rc != 0:
        raise AssertionError(f"{what or argv[0]} failed ({rc}): "
                             f"{' '.join(map(str, argv))}\n{out}{err}")
    return out


_given = set()      # ports handed out in this session: never twice


def free_port():
    """A port that was free a moment ago and that no other helper of this
    session hands out again."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(pred, timeout=5.0, what="condition", interval=0.02,
             detail=None, scale=None):
    """Polls pred() until it returns something true and returns it; fails
    with what (and detail()) after timeout * scale (SCALE by default)."""
    limit = timeout * (SCALE if scale is None else scale)
    deadline = time.monotonic() + limit
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = "\n" + str(detail()) if detail is not None else ""
            raise AssertionError(f"timed out after {limit:.1f}s "
                                 f"waiting for {what}{extra}")
        time.sleep(interval)


def pid_alive(pid):
    """True while pid runs (a zombie does not)."""
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class DaemonProc:
    """opsd with a private config, socket, state dir and stderr log (JSON
    lines, --log-target=stderr). Restartable: the log is appended to, and
    log_offset marks where the last start began. metrics: a metrics port
    of its own (else metrics_listen = off)."""

    scale = SCALE
    cli_timeout = 60

    def __init__(self, workdir, rundir, name, metrics=False):
        self.name = name
        self.workdir = Path(workdir)
        self.socket = Path(rundir) / f"{name}.sock"
        self.state_dir = self.workdir / f"{name}.state"
        self.conf_path = self.workdir / f"{name}.conf"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.metrics_port = free_port() if metrics else None
        self.proc = None
        self._err = None
        self.log_offset = 0

    def _wait(self, pred, timeout, what, **kw):
        return wait_for(pred, timeout, what, scale=self.scale, **kw)

    def write(self, body=""):
        listen = (f"127.0.0.1:{self.metrics_port}"
                  if self.metrics_port is not None else "off")
        self.conf_path.write_text(
            "[opsd]\n"
            f"socket = {self.socket}\n"
            f"state_dir = {self.state_dir}\n"
            "socket_mode = 0600\n"
            "log_level = info\n"
            f"metrics_listen = {listen}\n"
            "\n" + body)
        return self

    def start(self, extra_env=None):
        """Starts opsd and waits until it answers; with OPSD_FAULT in
        extra_env, until it answers or exits (at the fault point)."""
        self.log_offset = len(self._log_bytes())
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [str(OPSD), "-c", str(self.conf_path), "--log-target=stderr"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            env=env(**(extra_env or {})))
        if extra_env is None or "OPSD_FAULT" not in extra_env:
            self.wait_ready()
        else:
            self._wait(lambda: self.proc.poll() is not None or
                       self._ready(), 10, f"opsd {self.name} to answer",
                       detail=lambda: self.log()[-3000:])
        return self

    def wait_ready(self):
        self._wait(self._ready, 10, f"opsd {self.name} to answer",
                   detail=lambda: self.log()[-3000:])

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"opsd exited with {self.proc.returncode} "
                                 f"at start-up:\n{self.log()[-3000:]}")
        if not self.socket.exists():
            return False
        try:
            return "result" in self.rpc_raw("opsd.status", timeout=2)
        except (OSError, ValueError):
            return False

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15 * self.scale)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError(f"opsd {self.name} ignored SIGTERM:\n"
                                     f"{self.log()[-3000:]}")
        self._close()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def wait_exit(self, timeout=30):
        try:
            rc = self.proc.wait(timeout=timeout * self.scale)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"opsd did not exit:\n{self.log()[-4000:]}")
        self._close()
        return rc

    def _close(self):
        if self._err is not None:
            self._err.close()
            self._err = None

    # --- output --------------------------------------------------------------
    def _log_bytes(self):
        try:
            return self.stderr_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log(self, since_start=False):
        b = self._log_bytes()
        if since_start:
            b = b[self.log_offset:]
        return b.decode("utf-8", "replace")

    def events(self, name=None, since_start=False):
        out = []
        for line in self.log(since_start).splitlines():
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if name is None or e.get("event") == name:
                out.append(e)
        return out

    def wait_event(self, name, pred=None, timeout=10.0, since_start=False):
        def found():
            return [e for e in self.events(name, since_start)
                    if pred is None or pred(e)]
        return self._wait(found, timeout, f"a '{name}' event from opsd "
                          f"{self.name}", interval=0.05,
                          detail=lambda: self.log()[-4000:])

    def sanitizer_report(self):
        for line in self.log().splitlines():
            if any(m in line for m in SANITIZER_MARKERS):
                return line
        return None

    # --- control -------------------------------------------------------------
    def rpc_raw(self, method, params=None, timeout=10.0):
        req = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            req["params"] = params
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket))
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError(f"opsd closed the connection during "
                                  f"{method}")
                buf += chunk
        return json.loads(buf.split(b"\n")[0])

    def rpc(self, method, params=None, timeout=10.0):
        reply = self.rpc_raw(method, params, timeout)
        assert "result" in reply, f"{method} failed: {reply}"
        return reply["result"]

    def cli(self, *args, timeout=None):
        """opsd-cli -s SOCKET args: (rc, stdout, stderr)."""
        return run([CLI, "-s", self.socket] + [str(a) for a in args],
                   timeout=(timeout or self.cli_timeout) * self.scale)

    def cli_popen(self, *args):
        return subprocess.Popen(
            [str(CLI), "-s", str(self.socket)] + [str(a) for a in args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env())

    def metrics(self):
        """The body of GET /metrics (needs metrics=True)."""
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port,
                                       timeout=5)
        try:
            c.request("GET", "/metrics")
            return c.getresponse().read().decode()
        finally:
            c.close()
