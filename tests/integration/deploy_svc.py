"""
Helpers for the deploy tests (and bench/deploy): a real nginx of the
test's own (its prefix, a free port, an upstream include opsd owns), slot
processes that are real servers (deploy_backend.py, detached as a service
manager would start them), a load generator, and opsd with a [deploy]
section, restartable and killable with SIGKILL.

Everything of one test lives under its tmp_path and a short /tmp
directory, on free ports, so tests run in parallel (pytest-xdist).

The load generator is the suite's own: threads, each with one keep-alive
http.client connection to nginx, GET / in a loop. A request that fails on
a connection that had answered before, with nothing of a response read,
is sent again on a new connection (RFC 9112 9.3.1: a client may retry an
idempotent request when a persistent connection closed under it; nginx
closes idle keep-alive connections when its old workers exit at a
reload). Such retries are counted apart; a failure on a new connection,
or any non-2xx answer, is a failed request.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import opsd_proc
from opsd_proc import (BUILD, CLI, OPSD, REPO, SANITIZED,  # noqa: F401
                       SANITIZER_MARKERS, DaemonProc, env, free_port, must,
                       pid_alive, port_open, run)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BACKEND = Path(__file__).resolve().parent / "deploy_backend.py"
PYTHON = "/usr/bin/python3"

# a shared 2-core machine: deadlines stretch, never shrink
SCALE = 2.5 if SANITIZED else 1.5


def wait_for(pred, timeout=5.0, what="condition", interval=0.05,
             detail=None):
    return opsd_proc.wait_for(pred, timeout, what, interval, detail,
                              scale=SCALE)


def get(port, path="/", host=None, timeout=5.0):
    """(status, version header, body) of one GET on a new connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host} if host else {})
        r = c.getresponse()
        body = r.read()
        return r.status, r.getheader("X-Version"), body.decode()
    finally:
        c.close()


# --- nginx -----------------------------------------------------------------


class Nginx:
    """nginx with its own prefix; `include`s upstream.conf, which holds
    `upstream NAME` for opsd to rewrite."""

    def __init__(self, prefix, name="api", workers=1):
        self.prefix = Path(prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.name = name
        self.workers = workers
        self.conf = self.prefix / "nginx.conf"
        self.upstream = self.prefix / "upstream.conf"
        self.pid_file = self.prefix / "nginx.pid"
        self.error_log = self.prefix / "error.log"
        self.proc = None

    def argv(self):
        return [NGINX, "-p", self.prefix, "-e", self.error_log, "-c",
                self.conf]

    def cmd(self, *extra):
        """A shell command line for opsd's proxy_test / proxy_reload."""
        return " ".join(str(a) for a in self.argv() + list(extra))

    def write(self, extra_http=""):
        p = self.prefix
        temps = "".join(f"    {t}_temp_path {p}/{t}_temp;\n" for t in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf.write_text(
            f"pid {self.pid_file};\n"
            f"error_log {self.error_log} notice;\n"
            f"worker_processes {self.workers};\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            "    default_type text/plain;\n" + temps +
            f"    include {self.upstream};\n" + extra_http +
            "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n"
            "        location / {\n"
            f"            proxy_pass http://{self.name};\n"
            "        }\n"
            "    }\n"
            "}\n")

    def point_at(self, port, comment=""):
        """The include as an operator wrote it before opsd's first
        deploy."""
        self.upstream.write_text(
            f"# hand-written{comment}\nupstream {self.name} {{\n"
            f"    server 127.0.0.1:{port};\n}}\n")

    def start(self):
        self.write()
        must(self.argv() + ["-t", "-q"], "nginx -t")
        self.proc = subprocess.Popen(
            [str(a) for a in self.argv()] + ["-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "stderr", "wb"))
        wait_for(lambda: self.proc.poll() is None and port_open(self.port)
                 and self.pid_file.exists(), 10, "nginx to listen",
                 detail=lambda: self.error_log.read_text())
        return self

    def master(self):
        return int(self.pid_file.read_text().strip())

    def workers_now(self):
        m = self.master()
        kids = Path(f"/proc/{m}/task/{m}/children").read_text().split()
        return sorted(int(k) for k in kids)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- slots -----------------------------------------------------------------


class Slots:
    """The two slots' files: pid files, logs, behaviour files."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"blue": free_port(), "green": free_port()}

    def pid_file(self, slot):
        return self.dir / f"{slot}.pid"

    def start_cmd(self):
        return (f"{PYTHON} {BACKEND} --daemon --port {{port}} "
                f"--version {{version}} --pidfile {self.dir}/{{slot}}.pid "
                f"--log {self.dir}/{{slot}}.log --behavior-dir {self.dir}")

    def stop_cmd(self):
        return f"{PYTHON} {BACKEND} --stop --pidfile {self.dir}/{{slot}}.pid"

    def behave(self, version, **b):
        (self.dir / f"{version}.json").write_text(json.dumps(b))

    def start(self, slot, version):
        cmd = (self.start_cmd().replace("{port}", str(self.ports[slot]))
               .replace("{version}", version).replace("{slot}", slot))
        must(["/bin/sh", "-c", cmd], "start a slot")
        wait_for(lambda: port_open(self.ports[slot]), 10,
                 f"slot {slot} to listen")

    def stop(self, slot):
        run(["/bin/sh", "-c", self.stop_cmd().replace("{slot}", slot)])

    def pid(self, slot):
        try:
            return int(self.pid_file(slot).read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, slot):
        p = self.pid(slot)
        return p is not None and pid_alive(p) and port_open(self.ports[slot])

    def version_on(self, slot):
        try:
            return get(self.ports[slot], "/up")[1]
        except OSError:
            return None

    def cleanup(self):
        for slot in ("blue", "green"):
            p = self.pid(slot)
            if p is not None and pid_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --- load ------------------------------------------------------------------


class Load:
    """Keep-alive clients through nginx until stop(); see the top."""

    def __init__(self, port, threads=4, path="/", pause=0.0):
        self.port = port
        self.path = path
        self.pause = pause
        self.lock = threading.Lock()
        self.ok = 0
        self.non2xx = []
        self.errors = []
        self.retried = 0
        self.versions = {}
        self.first = {}          # version -> monotonic time of first answer
        self.last = {}           # version -> of the last one
        self.last_wall = {}      # the same as Unix time, for opsd's logs
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        wait_for(lambda: self.ok >= 20, 10, "the load to get answers",
                 detail=self.summary)
        return self

    def _conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _one(self, c):
        c.request("GET", self.path)
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("X-Version")

    def _run(self):
        c, used = self._conn(), False
        while not self.stopping.is_set():
            try:
                status, version = self._one(c)
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.BadStatusLine) as e:
                c.close()
                c = self._conn()
                if not used:
                    self._error(e)
                    continue
                used = False
                with self.lock:
                    self.retried += 1
                try:
                    status, version = self._one(c)
                except (OSError, http.client.HTTPException) as e2:
                    c.close()
                    c = self._conn()
                    self._error(e2)
                    continue
            except (OSError, http.client.HTTPException) as e:
                c.close()
                c, used = self._conn(), False
                self._error(e)
                continue
            used = True
            now = time.monotonic()
            with self.lock:
                if 200 <= status < 300:
                    self.ok += 1
                else:
                    self.non2xx.append((now, status, version))
                self.versions[version] = self.versions.get(version, 0) + 1
                self.first.setdefault(version, now)
                self.last[version] = now
                self.last_wall[version] = time.time()
            if self.pause:
                time.sleep(self.pause)
        c.close()

    def _error(self, e):
        with self.lock:
            self.errors.append((time.monotonic(), repr(e)))
        time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)
        return self

    def summary(self):
        with self.lock:
            return (f"ok {self.ok}, non-2xx {len(self.non2xx)} "
                    f"{self.non2xx[:5]}, errors {len(self.errors)} "
                    f"{self.errors[:5]}, retried {self.retried}, versions "
                    f"{self.versions}")

    def assert_clean(self):
        assert not self.non2xx and not self.errors, self.summary()


# --- opsd ------------------------------------------------------------------


class Daemon(DaemonProc):
    """opsd for the deploy tests (see opsd_proc.DaemonProc), with its own
    metrics port and helpers for deploys and ops."""

    scale = SCALE
    cli_timeout = 120

    def __init__(self, workdir, rundir, name="d1"):
        super().__init__(workdir, rundir, name, metrics=True)

    # --- deploys -------------------------------------------------------------
    def status(self, name="api"):
        return self.rpc("deploy.status", {"name": name})

    def wait_idle(self, name="api", timeout=60):
        return wait_for(lambda: (lambda s: s if s["operation"] is None
                                 else None)(self.status(name)), timeout,
                        f"deploy {name} to finish",
                        detail=lambda: self.log()[-4000:])

    def ops(self):
        rc, out, err = self.cli("--json", "op", "list")
        assert rc == 0, f"op list failed ({rc}): {out}{err}"
        return json.loads(out)["ops"]

    def op(self, op_id):
        for o in self.ops():
            if o["id"] == op_id:
                return o
        return None


# --- one test's whole stack ------------------------------------------------


class Stack:
    """nginx, two slots, and opsd's [deploy api] between them. Blue
    serves `first` before opsd's first deploy, through a hand-written
    include."""

    def __init__(self, tmp_path, rundir, first="1.0"):
        self.tmp = Path(tmp_path)
        self.rundir = Path(rundir)
        self.nginx = Nginx(self.tmp / "nginx")
        self.slots = Slots(self.tmp / "slots")
        self.first = first
        self.daemons = []
        self.d = None

    def up(self, start_daemon=True, **keys):
        self.slots.start("blue", self.first)
        self.nginx.point_at(self.slots.ports["blue"])
        self.nginx.start()
        self.d = Daemon(self.tmp, self.rundir)
        self.daemons.append(self.d)
        self.d.write(self.section(**keys))
        if start_daemon:
            self.d.start()
        return self

    def section(self, name="api", **keys):
        k = {
            "start": self.slots.start_cmd(),
            "stop": self.slots.stop_cmd(),
            "blue_port": self.slots.ports["blue"],
            "green_port": self.slots.ports["green"],
            "active": "blue",
            "active_version": self.first,
            "health": "http://127.0.0.1:{port}/up",
            "version_header": "X-Version",
            "pid_file": f"{self.slots.dir}/{{slot}}.pid",
            "health_interval": "200ms",
            "health_rise": 2,
            "health_deadline": "10s",
            "health_timeout": "2s",
            "upstream_file": self.nginx.upstream,
            "proxy_test": self.nginx.cmd("-t", "-q"),
            "proxy_reload": self.nginx.cmd("-s", "reload"),
            "proxy_pid_file": self.nginx.pid_file,
            "proxy_timeout": "10s",
            "verify_url": f"http://127.0.0.1:{self.nginx.port}/",
            "verify_timeout": "5s",
            "drain": "1s",
            "watch": "0",
            "rollback_window": "10m",
        }
        k.update(keys)
        s = f"[deploy {name}]\n"
        for key, v in k.items():
            if v is None:
                continue
            for x in (v if isinstance(v, (list, tuple)) else [v]):
                s += f"{key} = {x}\n"
        return s + "\n"

    def served(self):
        """The version nginx serves to a new connection now."""
        return get(self.nginx.port)[1]

    def deploy(self, version, *extra, ok=True, timeout=120):
        rc, out, err = self.d.cli("deploy", "start", "api", "--version",
                                  version, "--follow", *extra,
                                  timeout=timeout)
        if ok is not None:
            assert (rc == 0) == ok, f"deploy start {version} exited {rc}:\n" \
                f"{out}{err}\n{self.d.log()[-4000:]}"
        return rc, out, err

    def cleanup(self):
        errors = []
        for d in self.daemons:
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.nginx.stop()
        self.slots.cleanup()
        for d in self.daemons:
            line = d.sanitizer_report()
            if line:
                errors.append(f"sanitizer report in {d.stderr_path}: {line}")
        return errors


def short_dir(prefix="opsd-dp."):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


if __name__ == "__main__":
    sys.exit("a helper module of the deploy tests")
