"""The plain-http probe transport (http:// without redirects or a proxy:
opsd's own keep-alive client) against small Python servers that do what
real ones do between and during requests: close idle keep-alive
connections, send bytes nobody asked for, close a reused connection as a
request arrives, reset mid-response, send a header without end."""
import socket
import struct
import threading
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import SANITIZED, wait_for  # noqa: E402

pytest_plugins = ["svc"]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def http_probe(name, url, **keys):
    keys.setdefault("interval", "60s")
    lines = [f"[probe {name}]", "kind = http", f"url = {url}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def read_request(c):
    """One request head from c; None when the peer closed or timed out."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = c.recv(4096)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


class Server:
    """A TCP server on 127.0.0.1; handler(conn, conn_index, server) runs in
    a thread per connection. It counts connections and requests."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/health"
        self.conns = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._run, args=(c, n),
                             daemon=True).start()

    def _run(self, c, n):
        try:
            self.handler(c, n, self)
        except OSError:
            pass
        finally:
            c.close()

    def request(self, c):
        r = read_request(c)
        if r is not None:
            with self.lock:
                self.requests += 1
        return r

    def close(self):
        self.closing = True
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def make(handler):
        s = Server(handler)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def failed_runs(d, name):
    return [h for h in d.history(name) if not h["ok"]]


def one_run_per_request(p, srv):
    """Every run sent one request: none was made up from bytes that came
    between runs (one request may still be in flight)."""
    runs = p["runs_ok"] + p["runs_failed"]
    assert srv.requests - runs in (0, 1), \
        f"{runs} runs for {srv.requests} requests: {p}"


# --- between runs: the idle connection -----------------------------------------

def test_idle_keepalive_close_is_not_a_failed_run(opsd_launcher, server):
    """A server that closes idle connections after 1 s (gunicorn: 2 s,
    Node and Apache: 5 s) under a probe every 2 s: every run finds its
    connection closed, none of them fails."""
    def handler(c, n, srv):
        c.settimeout(1.0)
        while srv.request(c) is not None:
            c.sendall(OK)
        # idle for 1 s: close, as a keep-alive timeout does
    srv = server(handler)
    d = opsd_launcher(http_probe("ka", srv.url, interval="2s", rise=1,
                                 fall=1, timeout="1s"))
    d.wait_state("ka", "up", timeout=5)
    time.sleep(10)
    p = d.probe("ka")
    assert failed_runs(d, "ka") == [], d.history("ka")
    assert p["runs_failed"] == 0, p
    assert p["state"] == "up", p
    assert p["runs_ok"] >= 4, p
    one_run_per_request(p, srv)
    assert srv.conns >= 3, "the server never closed an idle connection"


def test_unasked_bytes_on_idle_connection_are_dropped(opsd_launcher, server):
    """A server that, after answering, sends bytes nobody asked for: they
    are not the next run's response, and that run still succeeds."""
    def handler(c, n, srv):
        while srv.request(c) is not None:
            c.sendall(OK)
            time.sleep(0.3)
            c.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\n"
                      b"junk\x00\xff garbage\r\n")
    srv = server(handler)
    d = opsd_launcher(http_probe("g", srv.url, interval="1s", rise=1,
                                 fall=1))
    wait_for(lambda: d.probe("g")["runs_ok"] >= 4, 8, "four runs",
             detail=lambda: d.history("g"))
    p = d.probe("g")
    assert failed_runs(d, "g") == [], d.history("g")
    assert p["runs_failed"] == 0 and p["state"] == "up", p
    one_run_per_request(p, srv)
    assert srv.conns >= 3, "opsd kept the connection that sent junk"


def test_reused_connection_closed_on_request_is_retried(opsd_launcher,
                                                       server):
    """The server closes a kept-alive connection just as the request
    arrives (once): the run goes out again on a fresh connection and
    succeeds, timed from the second send."""
    state = {"closed": False}

    def handler(c, n, srv):
        k = 0
        while srv.request(c) is not None:
            k += 1
            if k == 2 and not state["closed"]:
                state["closed"] = True
                time.sleep(0.6)
                return          # close instead of answering
            c.sendall(OK)
    srv = server(handler)
    # the probe's own first run (within a second of the start) opens the
    # connection; a long interval keeps its later runs out of the test
    d = opsd_launcher(http_probe("r", srv.url, timeout="3s",
                                 interval="1h"))
    wait_for(lambda: d.probe("r")["runs_ok"] >= 1, 5,
             "the probe's first scheduled run")
    rc, r = d.run_probe("r")
    assert rc == 0 and r["ok"] is True, \
        f"the run on the closed connection was not retried: {r}"
    assert state["closed"], "the server never closed on a reused connection"
    assert srv.conns == 2 and srv.requests == 3, (srv.conns, srv.requests)
    assert r["latency_ms"] < 400 * (3 if SANITIZED else 1), \
        f"latency counted from the first send, not the retry: {r}"
    assert d.probe("r")["runs_failed"] == 0


def test_fresh_connection_closed_on_request_is_not_retried(opsd_launcher,
                                                          server):
    """Only a reused connection is retried: a server that closes every
    new connection on the request fails the run, once."""
    def handler(c, n, srv):
        srv.request(c)
    srv = server(handler)
    # a long interval: the scheduled first run (anywhere in it) stays out
    d = opsd_launcher(http_probe("f", srv.url, interval="1h"))
    rc, r = d.run_probe("f")
    assert rc == 1 and r["ok"] is False, r
    assert "connection closed before the response began" in r["reason"], r
    # one connection a run: the probe's own schedule may have run it too
    # (its first run falls anywhere in the interval)
    p = d.probe("f")
    runs = p["runs_ok"] + p["runs_failed"]
    assert runs >= 1 and srv.conns == runs, (srv.conns, p)


# --- during a run: what the reason says ----------------------------------------

HALF = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 20)


def test_reset_mid_response_says_so(opsd_launcher, server):
    def handler(c, n, srv):
        srv.request(c)
        c.sendall(HALF)
        time.sleep(0.3)         # the client reads it before the reset
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    srv = server(handler)
    d = opsd_launcher(http_probe("rst", srv.url))
    rc, r = d.run_probe("rst")
    assert rc == 1 and r["ok"] is False, r
    want = f"connection reset after {len(HALF)} bytes of the response"
    assert r["reason"] == want, f"reason {r['reason']!r}, want {want!r}"


def test_close_mid_response_says_so(opsd_launcher, server):
    def handler(c, n, srv):
        srv.request(c)
        c.sendall(HALF)
        time.sleep(0.2)
    srv = server(handler)
    d = opsd_launcher(http_probe("cl", srv.url))
    rc, r = d.run_probe("cl")
    assert rc == 1 and r["ok"] is False, r
    assert r["reason"].startswith(
        f"connection closed after {len(HALF)} bytes of the response"), r


def test_huge_header_says_so(opsd_launcher, server):
    def handler(c, n, srv):
        srv.request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) +
                  b"\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.5)
    srv = server(handler)
    d = opsd_launcher(http_probe("big", srv.url))
    rc, r = d.run_probe("big")
    assert rc == 1 and r["ok"] is False, r
    assert r["reason"] == "response header over 64 KiB", r
    # the probe carries on: the next run on a sane answer works
    rc, r = d.run_probe("big")
    assert rc == 1 and r["reason"] == "response header over 64 KiB", r


@pytest.mark.parametrize("resp, want", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
     "malformed response: Content-Length '-1'"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
     "malformed response: two different Content-Lengths (2 and 3)"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "malformed response: chunk size 'zz'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2;ext=1\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\n\r\nok", None),
])
def test_framing(opsd_launcher, server, resp, want):
    def handler(c, n, srv):
        srv.request(c)
        c.sendall(resp)
        if b"HTTP/1.0" not in resp:
            time.sleep(0.5)
    srv = server(handler)
    d = opsd_launcher(http_probe("fr", srv.url, expect_body="ok"))
    rc, r = d.run_probe("fr")
    if want is None:
        assert rc == 0 and r["ok"] is True, r
    else:
        assert rc == 1 and r["reason"] == want, r


# --- the harvest: answers read together, timed by their arrival ---------------
#
# A run on a kept-alive connection whose answers come quickly is not read
# as its answer comes but at the probe set's harvest, with the other runs
# started with it (one wake-up); the time the answer arrived comes from
# the kernel (SO_TIMESTAMPNS). Test builds take OPSD_TEST_HARVEST_USEC: the
# harvest that long after the request, whatever the answers took before,
# so that an answer comes well before or well after it.

def harvested(opsd_launcher, srv, wait_usec, **keys):
    """A daemon with probe "h" on srv, harvested wait_usec after each
    request, after its first (scheduled) run opened the connection."""
    keys.setdefault("interval", "1h")
    keys.setdefault("timeout", "5s")
    d = opsd_launcher(http_probe("h", srv.url, **keys), start=False)
    d.start(extra_env={"OPSD_TEST_HARVEST_USEC": str(wait_usec)})
    wait_for(lambda: d.probe("h")["runs_ok"] >= 1, 5,
             "the probe's first scheduled run", detail=lambda: d.history("h"))
    return d


def timed_run(d, name):
    t0 = time.monotonic()
    rc, r = d.run_probe(name)
    return rc, r, time.monotonic() - t0


def test_harvested_answer_is_timed_by_its_arrival(opsd_launcher, server):
    """The answer comes at once, the harvest reads it 600 ms later: the
    run's latency is when it came, not when it was read."""
    def handler(c, n, srv):
        while srv.request(c) is not None:
            c.sendall(OK)
    srv = server(handler)
    d = harvested(opsd_launcher, srv, 600000)
    rc, r, took = timed_run(d, "h")
    assert rc == 0 and r["ok"] is True, r
    assert took >= 0.6, f"the run was not read at the harvest ({took:.3f} s)"
    assert r["latency_ms"] < 200 * (3 if SANITIZED else 1), \
        f"latency counted to the harvest, not to the answer: {r}"
    assert srv.conns == 1, "the harvested run did not reuse the connection"


def test_answer_after_the_harvest_is_read_when_it_comes(opsd_launcher,
                                                       server):
    """The harvest finds nothing yet: the connection is watched again and
    the answer, 400 ms after the request, is read when it comes."""
    def handler(c, n, srv):
        while srv.request(c) is not None:
            time.sleep(0.4)
            c.sendall(OK)
    srv = server(handler)
    d = harvested(opsd_launcher, srv, 50000)
    rc, r, took = timed_run(d, "h")
    assert rc == 0 and r["ok"] is True, r
    assert 400 <= r["latency_ms"] < 400 + 300 * (3 if SANITIZED else 1), r
    assert srv.conns == 1, srv.conns


def test_answer_split_over_the_harvest(opsd_launcher, server):
    """The harvest reads the head and half the body; the rest, 400 ms
    later, is read when it comes, and the body is checked whole."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfirst-"

    def handler(c, n, srv):
        while srv.request(c) is not None:
            c.sendall(head)
            time.sleep(0.4)
            c.sendall(b"second")
    srv = server(handler)
    d = harvested(opsd_launcher, srv, 50000, expect_body="first-second")
    rc, r, took = timed_run(d, "h")
    assert rc == 0 and r["ok"] is True, r
    assert 400 <= r["latency_ms"] < 400 + 300 * (3 if SANITIZED else 1), r


def test_close_before_the_harvest_is_retried(opsd_launcher, server):
    """The server closes the kept-alive connection as the request comes,
    before the harvest reads it: the run goes out again on a fresh
    connection, as when the close is seen as it comes."""
    def handler(c, n, srv):
        if srv.request(c) is not None:
            c.sendall(OK)
        if n == 1:
            srv.request(c)      # the second request: close, unanswered
            return
        while srv.request(c) is not None:
            c.sendall(OK)
    srv = server(handler)
    d = harvested(opsd_launcher, srv, 300000)
    rc, r, took = timed_run(d, "h")
    assert rc == 0 and r["ok"] is True, r
    assert srv.conns == 2 and srv.requests == 3, (srv.conns, srv.requests)
    assert d.probe("h")["runs_failed"] == 0, d.history("h")
