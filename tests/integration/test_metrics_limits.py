"""The metrics listener against hostile or careless clients: a huge body,
hundreds of idle connections, scrapers without credentials, plain http on
a TLS port. Each limit is checked by what it protects: the daemon's
memory, its file descriptors (the control socket and probes keep
working), the metrics themselves."""
import base64
import http.client
import os
import resource
import select
import socket
import ssl
import subprocess
import time

import pytest

pytest.register_assert_rewrite("svc")
from conftest import vm_rss_kb  # noqa: E402
from svc import OPSD, SLOW, env, must, wait_for  # noqa: E402

pytest_plugins = ["svc"]

MB = 1024 * 1024


def start_with_nofile(d, nofile):
    """Opsd.start with a hard RLIMIT_NOFILE of nofile, so running out of
    descriptors happens at a few hundred connections, not thousands."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    d._err = open(d.stderr_path, "ab")
    d.proc = subprocess.Popen(
        [str(OPSD), "-c", str(d.conf_path), "--log-target=stderr"],
        stdin=subprocess.DEVNULL, stdout=d._err, stderr=d._err, env=env(),
        preexec_fn=limit)
    wait_for(d._ready, 10, f"opsd {d.name} to start", detail=d.log)
    return d


def test_huge_body_is_not_buffered(opsd_launcher):
    d = opsd_launcher()
    assert d.http_get("/healthz")[0] == 200
    base = vm_rss_kb(d.pid)
    peak = base
    total = 200 * MB
    chunk = b"x" * (64 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", d.metrics_port,
                                      timeout=10)
    sent = 0
    try:
        conn.putrequest("POST", "/metrics")
        conn.putheader("Content-Length", str(total))
        conn.endheaders()
        while sent < total:
            conn.send(chunk)
            sent += len(chunk)
            if sent % (8 * MB) == 0:
                peak = max(peak, vm_rss_kb(d.pid))
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass            # the server closed early: what we want
    finally:
        conn.close()
    peak = max(peak, vm_rss_kb(d.pid))
    assert peak - base < 32 * 1024, \
        f"RSS grew by {(peak - base) // 1024} MB for a {sent // MB} MB " \
        f"body that nothing reads"
    assert d.http_get("/healthz") == (200, "ok\n")


def test_huge_headers_are_refused(opsd_launcher):
    d = opsd_launcher()
    with socket.create_connection(("127.0.0.1", d.metrics_port),
                                  timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):        # 1 MB of headers
                s.sendall(b"X-Pad: " + b"a" * 16 * 1024 + b"\r\n")
            s.sendall(b"\r\n")
            reply = s.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            reply = b""
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert d.http_get("/healthz") == (200, "ok\n")


def open_idle(port, n):
    """n TCP connections that never send a byte; fewer if connects stall
    (a full accept queue)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def closed_by_peer(socks, timeout):
    """How many of socks the other end closed within timeout."""
    closed = set()
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks) and time.monotonic() < deadline:
        live = [s for s in socks if s not in closed]
        r, _, _ = select.select(live, [], [], 0.1)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/1.1 503"):
                closed.add(s)
    return len(closed)


def test_idle_connections_are_capped(opsd_launcher):
    d = opsd_launcher("[probe p]\nkind = exec\ncommand = true\n"
                      "interval = 24h\n", start=False)
    text = d.conf_path.read_text().replace(
        "[opsd]\n", "[opsd]\nmetrics_max_connections = 16\n", 1)
    d.conf_path.write_text(text)
    start_with_nofile(d, 256)
    socks = open_idle(d.metrics_port, 300)
    try:
        # how many connects complete depends on the accept queue and timing
        assert len(socks) >= 100, f"only {len(socks)} connects went through"
        rc, out, err = d.cli("status")
        assert rc == 0, f"opsd-cli status with idle scrapers: {out}{err}"
        rc, res = d.run_probe("p")
        assert rc == 0 and res["ok"] is True, res
        n = closed_by_peer(socks, 3 * SLOW)
        assert n >= len(socks) - 16, \
            f"{len(socks) - n} idle connections held open, the cap is 16"
    finally:
        for s in socks:
            s.close()
    status = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        d.http_get("/metrics")), 5, "/metrics after the idle ones left")
    assert "opsd_up 1" in status[1]


def test_idle_connection_times_out(opsd_launcher):
    d = opsd_launcher()
    with socket.create_connection(("127.0.0.1", d.metrics_port),
                                  timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")     # and never the rest
        t0 = time.monotonic()
        s.settimeout(20)
        try:
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
        took = time.monotonic() - t0
    assert took < 10 + 3 * SLOW, f"a half-sent request held for {took:.1f}s"


# --- basic auth ---------------------------------------------------------------

def authed_get(d, header=None, path="/metrics"):
    conn = http.client.HTTPConnection("127.0.0.1", d.metrics_port,
                                      timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": header}
                     if header is not None else {})
        r = conn.getresponse()
        return r.status, r.getheader("WWW-Authenticate"), r.read().decode()
    finally:
        conn.close()


def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_basic_auth(opsd_launcher, tmp_path):
    pw = "pw-" + os.urandom(8).hex()
    auth = tmp_path / "metrics.auth"
    auth.write_text(f"prom:{pw}\n")
    auth.chmod(0o600)
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "[opsd]\n", f"[opsd]\nmetrics_auth_file = {auth}\n", 1))
    d.start()
    status, www, _ = authed_get(d)
    assert status == 401 and www == 'Basic realm="opsd"', (status, www)
    assert authed_get(d, basic("prom", pw + "x"))[0] == 401
    assert authed_get(d, basic("prom", pw[:-1]))[0] == 401
    assert authed_get(d, basic("other", pw))[0] == 401
    assert authed_get(d, "Basic !!!notbase64")[0] == 401
    assert authed_get(d, "Bearer " + pw)[0] == 401
    status, _, body = authed_get(d, basic("prom", pw))
    assert status == 200 and "opsd_up 1" in body, status
    # a new password takes effect on reload
    pw2 = "pw-" + os.urandom(8).hex()
    auth.write_text(f"prom:{pw2}\n")
    d.proc.send_signal(1)
    wait_for(lambda: authed_get(d, basic("prom", pw2))[0] == 200, 5,
             "the new password after SIGHUP")
    assert authed_get(d, basic("prom", pw))[0] == 401
    log = d.log()
    assert pw not in log and pw2 not in log, "a password reached the log"


def test_wide_listener_without_auth_warns(opsd_launcher):
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "metrics_listen = 127.0.0.1:", "metrics_listen = 0.0.0.0:", 1))
    d.start()
    warn = [e for e in d.events("metrics.listen")
            if "authentication" in e.get("msg", "")]
    assert warn, f"no warning for 0.0.0.0 without auth:\n{d.log()[-2000:]}"
    loopback = opsd_launcher(name="lo")
    assert not [e for e in loopback.events("metrics.listen")
                if "authentication" in e.get("msg", "")]


# --- TLS -------------------------------------------------------------------

def test_tls_listener(opsd_launcher, tmp_path):
    crt, key = tmp_path / "m.crt", tmp_path / "m.key"
    must(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
          "-subj", "/CN=localhost", "-days", "2", "-keyout", key,
          "-out", crt, "-addext", "subjectAltName=DNS:localhost,"
          "IP:127.0.0.1"], "openssl req")
    key.chmod(0o600)
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "[opsd]\n", f"[opsd]\nmetrics_tls_cert = {crt}\n"
        f"metrics_tls_key = {key}\n", 1))
    d.start()
    ctx = ssl.create_default_context(cafile=str(crt))
    for _ in range(3):      # several connections, not just the first
        conn = http.client.HTTPSConnection("127.0.0.1", d.metrics_port,
                                           context=ctx, timeout=5)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        assert r.status == 200 and "opsd_up 1" in body, r.status
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(crt))
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", d.metrics_port),
                                      timeout=5) as s:
            with old.wrap_socket(s, server_hostname="localhost"):
                pass
    # plain http on the TLS port gets no metrics
    try:
        status, body = d.http_get("/metrics", timeout=5)
    except (OSError, http.client.HTTPException):
        status, body = None, ""
    assert status != 200 and "opsd_up" not in body, status
