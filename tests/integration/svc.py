"""
Real services for the probe, alert and metrics tests, and a launcher for
the daemon under test.

Test modules load this file as a pytest plugin (pytest_plugins = ["svc"]),
so its session fixtures are shared by every module that uses them and
started once. Everything runs on 127.0.0.1 on free ports, under /tmp, and
is stopped in teardown:

  pg_server      PostgreSQL 15 (initdb under /tmp as postgres, fsync=off,
                 scram-sha-256, a login role `probe` with a password);
                 stop() and start() for down/up tests; pg_up: the same,
                 started again if an earlier test left it stopped
  tls_certs      a test CA, a 365-day server certificate for
                 localhost/127.0.0.1 signed by it and a 5-day one, made
                 with the openssl command-line tool
  nginx_server   nginx with its own prefix: http (/health, /down,
                 /redirect), https with the 365-day certificate and a
                 second https port with the 5-day one
  smtp_sink      aiosmtpd's Mailbox handler; mails are files in DIR/new
  webhook_rx     (per test) an http.server in a thread that records the
                 POSTs; it can answer 500 or be down
  opsd_launcher  (per test) make(config text) -> a running opsd with a
                 private socket, state dir and metrics port; teardown stops
                 it and fails the test on a sanitizer report in its stderr

Binaries come from $OPSD_BUILD (default: build/ at the top of the tree).
"""
import calendar
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from opsd_proc import (BUILD, CLI, OPSD, REPO, SANITIZED, _given,  # noqa
                       SANITIZER_MARKERS, SYSTEMD_ENV, env, free_port, must,
                       port_open)
import opsd_proc

PGBIN = Path("/usr/lib/postgresql/15/bin")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# deadlines for things that normally take milliseconds
SLOW = 3.0 if SANITIZED else 1.0


def run(argv, timeout=30, **kw):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    return opsd_proc.run(argv, timeout, **kw)


def wait_for(pred, timeout=5.0, what="condition", interval=0.02,
             detail=None):
    """Polls pred() until it returns something true; returns that value.
    On timeout fails with what, and detail() if given."""
    deadline = time.monotonic() + timeout * (2 if SANITIZED else 1)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = ""
            if detail is not None:
                extra = "\n" + str(detail())
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}{extra}")
        time.sleep(interval)


def tmpdir(prefix):
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


# --- Prometheus text format --------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)'
                     r'(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_value(samples, name, **labels):
    """The value of the one sample of name whose labels include labels;
    None when there is none."""
    found = [v for n, l, v in samples
             if n == name and all(l.get(k) == str(x)
                                  for k, x in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


# --- the daemon under test ---------------------------------------------------

class Opsd:
    """A real opsd with its own config, socket, state dir, metrics port
    and stderr log (JSON lines: --log-target=stderr)."""

    def __init__(self, workdir, rundir, name, metrics=True,
                 log_level="info"):
        self.name = name
        self.workdir = Path(workdir)
        self.socket = Path(rundir) / f"{name}.sock"
        self.state_dir = self.workdir / f"{name}.state"
        self.conf_path = self.workdir / f"{name}.conf"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.metrics_port = free_port() if metrics else None
        self.log_level = log_level
        self.proc = None
        self._err = None

    def config(self, body=""):
        listen = (f"127.0.0.1:{self.metrics_port}" if self.metrics_port
                  else "off")
        return ("[opsd]\n"
                f"socket = {self.socket}\n"
                f"state_dir = {self.state_dir}\n"
                "socket_mode = 0666\n"
                f"log_level = {self.log_level}\n"
                f"metrics_listen = {listen}\n"
                "\n" + body)

    def write(self, body=""):
        self.conf_path.write_text(self.config(body))
        return self.conf_path

    def start(self, extra_env=None):
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [str(OPSD), "-c", str(self.conf_path), "--log-target=stderr"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            env=env(**(extra_env or {})))
        wait_for(self._ready, 10, f"opsd {self.name} to answer on "
                 f"{self.socket}", detail=self.log)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"opsd exited with {self.proc.returncode}"
                                 f" at start-up:\n{self.log()}")
        if not self.socket.exists():
            return False
        try:
            return "result" in self.rpc_raw("opsd.status")
        except (OSError, ValueError):
            return False

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError(f"opsd {self.name} ignored SIGTERM for "
                                     f"10s:\n{self.log()[-3000:]}")
        if self._err is not None:
            self._err.close()
            self._err = None

    # --- output ------------------------------------------------------------
    def log(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def events(self, name=None):
        out = []
        for line in self.log().splitlines():
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if name is None or e.get("event") == name:
                out.append(e)
        return out

    def wait_event(self, name, pred=None, timeout=5.0, count=1):
        """Waits for count events named name that satisfy pred; returns
        the list of them."""
        def found():
            ev = [e for e in self.events(name) if pred is None or pred(e)]
            return ev if len(ev) >= count else None
        return wait_for(found, timeout, f"{count} '{name}' event(s) on "
                        f"opsd's stderr", detail=lambda: self.log()[-4000:])

    def sanitizer_report(self):
        for line in self.log().splitlines():
            if any(m in line for m in SANITIZER_MARKERS):
                return line
        return None

    # --- control -----------------------------------------------------------
    def rpc_raw(self, method, params=None, timeout=10.0):
        """One JSON-RPC call on a fresh connection; the whole reply. Used
        for polling: no process to start, so it is fast even under load
        and on sanitizer builds."""
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
        """The result of a call; fails the test on an error reply."""
        reply = self.rpc_raw(method, params, timeout)
        assert "result" in reply, f"{method} failed: {reply}"
        return reply["result"]

    def cli(self, *args, timeout=30):
        return run([CLI, "-s", self.socket] + list(args), timeout=timeout)

    def cli_json(self, *args, ok=(0,)):
        rc, out, err = self.cli("--json", *args)
        assert rc in ok, f"opsd-cli --json {' '.join(args)} exited {rc}: " \
                         f"{out}{err}"
        return json.loads(out)

    def probes(self):
        return {p["name"]: p for p in self.rpc("probe.list")["probes"]}

    def probe(self, name):
        return self.probes()[name]

    def history(self, name):
        return self.rpc("probe.history", {"name": name})["history"]

    def run_probe(self, name):
        """probe run NAME --json: (exit code, result or error object)."""
        rc, out, err = self.cli("--json", "probe", "run", name)
        assert out.strip(), f"probe run {name} printed nothing ({rc}): {err}"
        return rc, json.loads(out)

    def wait_state(self, name, state, timeout=5.0):
        return wait_for(lambda: (lambda p: p if p["state"] == state else
                                 None)(self.probe(name)),
                        timeout, f"probe {name} to be {state}",
                        detail=lambda: json.dumps(self.probe(name)))

    def http_get(self, path="/metrics", timeout=5.0):
        """(status, body) of GET path on the metrics listener."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        status, body = self.http_get("/metrics")
        assert status == 200, f"/metrics answered {status}: {body[:500]}"
        return body


@pytest.fixture
def opsd_launcher(tmp_path):
    """make(body, name=None, metrics=True, start=True) -> a running Opsd
    whose config is the private [opsd] section plus body. All are stopped
    in teardown, and the test fails if one reported a sanitizer error."""
    rundir = tmpdir("opsd-pt.")
    daemons = []

    def make(body="", name=None, metrics=True, start=True,
             log_level="info"):
        d = Opsd(tmp_path, rundir, name or f"d{len(daemons) + 1}",
                 metrics=metrics, log_level=log_level)
        d.write(body)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make
    errors = []
    for d in daemons:
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(rundir, ignore_errors=True)
    for d in daemons:
        line = d.sanitizer_report()
        if line:
            errors.append(f"sanitizer report in {d.stderr_path}: {line}")
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def check_config(text_or_path, tmp_path):
    """opsd --check-config on a config text: (rc, stdout, stderr, path)."""
    path = Path(tmp_path) / "check.conf"
    path.write_text(text_or_path)
    rc, out, err = run([OPSD, "--check-config", "-c", path])
    bad = [line for line in err.splitlines()
           if any(m in line for m in SANITIZER_MARKERS)]
    assert not bad, f"opsd --check-config: {bad[0]}\n{err}"
    return rc, out, err, path


# --- PostgreSQL --------------------------------------------------------------

class Postgres:
    def __init__(self):
        self.dir = tmpdir("opsd-pg.")
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(12)
        self.password_file = self.dir / "probe.pass"
        self.bad_password_file = self.dir / "bad.pass"
        self.started = False

    def _as_pg(self, cmd, timeout=60):
        return must(["su", "postgres", "-s", "/bin/sh", "-c", cmd],
                    timeout=timeout)

    def setup(self):
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        su_pw = self.dir / "su.pass"
        su_pw.write_text(secrets.token_hex(16) + "\n")
        shutil.chown(su_pw, "postgres", "postgres")
        self._as_pg(f"{PGBIN}/initdb -D {self.data} -U postgres "
                    f"--pwfile={su_pw} --auth-local=peer "
                    f"--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 "
                    f"-N >/dev/null")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "password_encryption = 'scram-sha-256'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 50\nshared_buffers = 16MB\n")
        self.start()
        self.psql(f"CREATE ROLE probe LOGIN PASSWORD '{self.password}'")
        # the daemon runs as root and reads them; nobody else may
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.bad_password_file.write_text("not-" + self.password + "\n")
        os.chmod(self.bad_password_file, 0o600)

    def psql(self, sql):
        return self._as_pg(f"{PGBIN}/psql -X -q -At -h {self.dir} "
                           f"-p {self.port} -U postgres -d postgres "
                           f"-c \"{sql}\"")

    def start(self):
        self._as_pg(f"{PGBIN}/pg_ctl -D {self.data} -l {self.dir}/server.log"
                    f" -w -t 30 start >/dev/null")
        self.started = True
        wait_for(lambda: port_open(self.port), 10, "PostgreSQL's port")

    def stop(self):
        if not self.started:
            return
        self._as_pg(f"{PGBIN}/pg_ctl -D {self.data} -m fast -w -t 30 stop "
                    f">/dev/null")
        self.started = False
        wait_for(lambda: not port_open(self.port), 10,
                 "PostgreSQL's port to close")

    def version(self):
        return self.psql("SHOW server_version").strip()

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    pg = Postgres()
    try:
        pg.setup()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def pg_up(pg_server):
    """The session's PostgreSQL, running (a test may stop it)."""
    if not pg_server.started:
        pg_server.start()
    yield pg_server
    if not pg_server.started:
        pg_server.start()


# --- certificates ------------------------------------------------------------

class Certs:
    def __init__(self, d):
        self.dir = d
        self.ca = d / "ca.crt"
        self.server_crt = d / "server.crt"
        self.server_key = d / "server.key"
        self.short_crt = d / "short.crt"
        self.short_key = d / "short.key"

    def _key(self, path):
        must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", path])

    def make(self):
        d = self.dir
        self._key(d / "ca.key")
        must(["openssl", "req", "-x509", "-new", "-key", d / "ca.key",
              "-out", self.ca, "-days", "3650", "-subj",
              "/O=opsd tests/CN=opsd test CA"])
        ext = d / "server.ext"
        ext.write_text("basicConstraints = critical, CA:FALSE\n"
                       "keyUsage = critical, digitalSignature\n"
                       "extendedKeyUsage = serverAuth\n"
                       "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        for crt, key, cn, days in ((self.server_crt, self.server_key,
                                    "localhost", 365),
                                   (self.short_crt, self.short_key,
                                    "short.localhost", 5)):
            self._key(key)
            csr = crt.with_suffix(".csr")
            must(["openssl", "req", "-new", "-key", key, "-out", csr,
                  "-subj", f"/CN={cn}"])
            must(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca,
                  "-CAkey", d / "ca.key", "-CAcreateserial", "-out", crt,
                  "-days", str(days), "-extfile", ext])

    @staticmethod
    def not_after(crt):
        """notAfter as a Unix time, read with the openssl tool."""
        out = must(["openssl", "x509", "-in", crt, "-noout", "-enddate"])
        s = out.strip().split("=", 1)[1]
        return calendar.timegm(time.strptime(s, "%b %d %H:%M:%S %Y GMT"))


@pytest.fixture(scope="session")
def tls_certs():
    d = tmpdir("opsd-tls.")
    try:
        c = Certs(d)
        c.make()
        yield c
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- nginx -------------------------------------------------------------------

class Nginx:
    def __init__(self, certs):
        self.certs = certs
        self.prefix = tmpdir("opsd-nginx.")
        self.http_port = free_port()
        self.https_port = free_port()
        self.short_port = free_port()
        self.proc = None

    def conf(self):
        p = self.prefix
        c = self.certs
        health = ('location = /health { add_header X-Ready yes; '
                  'return 200 "ok\\n"; }\n'
                  '        location = /down { return 503 "down\\n"; }\n'
                  '        location = /redirect { return 301 /health; }\n')
        temps = "".join(f"    {t}_temp_path {p}/{t}_temp;\n" for t in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"pid {p}/nginx.pid;\n"
                f"error_log {p}/error.log warn;\n"
                "worker_processes 1;\n"
                "events { worker_connections 512; }\n"
                "http {\n"
                "    access_log off;\n"
                "    default_type text/plain;\n" + temps +
                "    server {\n"
                f"        listen 127.0.0.1:{self.http_port};\n"
                f"        {health}"
                "    }\n"
                "    server {\n"
                f"        listen 127.0.0.1:{self.https_port} ssl;\n"
                f"        ssl_certificate {c.server_crt};\n"
                f"        ssl_certificate_key {c.server_key};\n"
                f"        {health}"
                "    }\n"
                "    server {\n"
                f"        listen 127.0.0.1:{self.short_port} ssl;\n"
                f"        ssl_certificate {c.short_crt};\n"
                f"        ssl_certificate_key {c.short_key};\n"
                f"        {health}"
                "    }\n"
                "}\n")

    def start(self):
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.conf())
        argv = [NGINX, "-p", self.prefix, "-e", self.prefix / "error.log",
                "-c", conf]
        must(argv + ["-t", "-q"], "nginx -t")
        self.proc = subprocess.Popen(
            [str(a) for a in argv] + ["-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "stderr", "wb"))
        for port in (self.http_port, self.https_port, self.short_port):
            wait_for(lambda: self.proc.poll() is None and port_open(port),
                     10, f"nginx on port {port}",
                     detail=lambda: (self.prefix / "error.log").read_text())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


@pytest.fixture(scope="session")
def nginx_server(tls_certs):
    n = Nginx(tls_certs)
    try:
        n.start()
        yield n
    finally:
        n.stop()


# --- SMTP sink ---------------------------------------------------------------

class SmtpSink:
    def __init__(self):
        self.dir = tmpdir("opsd-smtp.")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l",
             f"127.0.0.1:{self.port}", "-c", "aiosmtpd.handlers.Mailbox",
             str(self.dir / "mbox")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr", "wb"), env=env())
        wait_for(lambda: self.proc.poll() is None and port_open(self.port),
                 15, "the SMTP sink's port",
                 detail=lambda: (self.dir / "stderr").read_text())

    def mails(self):
        """Every mail received so far, as email.message.Message objects."""
        import email
        new = self.dir / "mbox" / "new"
        if not new.is_dir():
            return []
        out = []
        for f in sorted(new.iterdir()):
            try:
                out.append(email.message_from_bytes(f.read_bytes()))
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def smtp_sink():
    s = SmtpSink()
    try:
        s.start()
        yield s
    finally:
        s.stop()


# --- webhook receiver --------------------------------------------------------

class Webhook:
    """Records every POST: dicts with path, headers (lower-case names),
    body (bytes), json (or None) and time. mode: 'ok' answers 200, 'fail'
    answers 500; down() closes the socket, up() listens again."""

    def __init__(self):
        self.port = free_port()
        self.posts = []
        self.mode = "ok"
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self):
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with hook.lock:
                    hook.posts.append({
                        "path": self.path, "body": body, "json": doc,
                        "headers": {k.lower(): v for k, v in
                                    self.headers.items()},
                        "time": time.monotonic()})
                    code = 200 if hook.mode == "ok" else 500
                reply = b"ok\n" if code == 200 else b"broken\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def down(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    def received(self, pred=None):
        with self.lock:
            return [p for p in self.posts if pred is None or pred(p)]

    def wait(self, pred=None, count=1, timeout=5.0):
        return wait_for(lambda: (lambda r: r if len(r) >= count else None)(
            self.received(pred)), timeout,
            f"{count} webhook POST(s)",
            detail=lambda: [p["body"][:300] for p in self.received()])


@pytest.fixture
def webhook_rx():
    w = Webhook()
    w.up()
    yield w
    w.down()


# --- small servers -----------------------------------------------------------

class SilentServer:
    """Listens and never accepts or answers: connects succeed, replies
    never come (for timeouts)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class LineServer:
    """Answers each line 'X' with '+PONG X' (for tcp send/expect)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(c,),
                             daemon=True).start()

    def _client(self, c):
        c.settimeout(5)
        buf = b""
        try:
            while b"\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
            line = buf.split(b"\n")[0].rstrip(b"\r")
            self.lines.append(line)
            c.sendall(b"+PONG " + line + b"\r\n")
            time.sleep(0.05)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def silent_server():
    s = SilentServer()
    yield s
    s.close()


@pytest.fixture
def line_server():
    s = LineServer()
    yield s
    s.close()


_held = []


def closed_port():
    """A port where connections are refused: bound by a socket that never
    listens and is kept until the session ends, so no other process can
    take the port meanwhile and the kernel does not hand it out as an
    ephemeral port (which could make a connect to it succeed)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            _held.append(s)
            return port
        s.close()
