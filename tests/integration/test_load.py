"""Many clients, misbehaving clients, idle clients, the connection limit."""
import json
import selectors
import socket
import time

from conftest import SANITIZED, raise_nofile, vm_rss_kb

NCONN = 1000


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_thousand_concurrent_connections(opsd):
    raise_nofile(NCONN + 200)
    socks = []
    try:
        for i in range(NCONN):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(str(opsd.socket))
            socks.append(s)
        # every connection has a request in flight at the same time
        for i, s in enumerate(socks):
            s.sendall(json.dumps({"jsonrpc": "2.0", "method": "opsd.status",
                                  "id": i}).encode() + b"\n")
        sel = selectors.DefaultSelector()
        bufs = {}
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            bufs[i] = b""
        replies = {}
        deadline = time.monotonic() + 30
        while len(replies) < NCONN and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                i = key.data
                chunk = key.fileobj.recv(65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    replies.setdefault(i, None)
                    continue
                bufs[i] += chunk
                if b"\n" in bufs[i]:
                    replies[i] = json.loads(bufs[i].split(b"\n")[0])
                    sel.unregister(key.fileobj)
        sel.close()
        missing = [i for i in range(NCONN) if replies.get(i) is None]
        assert not missing, f"{len(missing)} of {NCONN} connections got " \
            f"no reply (first: {missing[:10]})"
        bad = [(i, r) for i, r in replies.items()
               if r.get("id") != i or r.get("result", {}).get("pid") !=
               opsd.pid]
        assert not bad, f"{len(bad)} wrong replies, e.g. {bad[:3]}"
        st = opsd.status()
        assert st["loop"]["connections"] == NCONN + 1, \
            f"status counts {st['loop']['connections']} connections, " \
            f"expected {NCONN} + opsd-cli's own"
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: opsd.status()["loop"]["connections"] == 1, 5,
               "the closed connections to be forgotten")
    assert opsd.alive()


def test_connection_limit(opsd_factory):
    d = opsd_factory(max_connections=2)
    # wait until the readiness probe's connection is gone: a is alone
    deadline = time.monotonic() + 5
    while True:
        a = d.connect()
        if a.call("opsd.status")["result"]["loop"]["connections"] == 1:
            break
        a.close()
        assert time.monotonic() < deadline, "connections never dropped to 1"
        time.sleep(0.02)
    b = d.connect()
    assert "result" in b.call("opsd.status")
    extra = d.connect()
    reply = extra.read_reply(5)
    assert reply.get("error", {}).get("code") == -32003, \
        f"a connection over max_connections should get -32003: {reply}"
    extra.sock.settimeout(5)
    assert extra.sock.recv(100) == b"", "over-limit connection not closed"
    a.close()
    # a freed slot is usable again
    c = d.connect()
    assert "result" in c.call("opsd.status", timeout=3), \
        "no service after a slot was freed"
    assert d.alive()


def test_client_that_never_reads(opsd):
    """A client pushing requests without reading its replies neither stalls
    other clients nor makes the daemon's memory grow without bound."""
    rss_before = vm_rss_kb(opsd.pid)
    bad = opsd.connect()
    bad.sock.setblocking(False)
    chunk = (json.dumps({"jsonrpc": "2.0", "method": "opsd.status",
                         "id": 1}).encode() + b"\n") * 1000
    target, sent = 50 << 20, 0
    stuck_since, stuck = None, False
    deadline = time.monotonic() + 20
    view = memoryview(chunk)
    off = 0
    while sent < target and time.monotonic() < deadline:
        try:
            n = bad.sock.send(view[off:])
            sent += n
            off = (off + n) % len(chunk)
            stuck_since = None
        except BlockingIOError:
            now = time.monotonic()
            if stuck_since is None:
                stuck_since = now
            elif now - stuck_since > 1.0:
                stuck = True
                break
            time.sleep(0.01)
    # while the bad client is stuck (or after it pushed everything),
    # another client is answered promptly
    for _ in range(3):
        t0 = time.monotonic()
        good = opsd.connect(timeout=5)
        reply = good.call("opsd.status", timeout=5)
        elapsed = time.monotonic() - t0
        good.close()
        assert "result" in reply, reply
        assert elapsed < 1.0, f"another client waited {elapsed:.2f}s " \
            f"while a client was not reading (stuck={stuck}, sent " \
            f"{sent >> 20} MiB)"
    rss = vm_rss_kb(opsd.pid)
    if SANITIZED:
        # shadow memory and the quarantine: judge the growth only
        assert rss - rss_before < 64 * 1024, \
            f"RSS grew by {(rss - rss_before) >> 10} MiB (sent " \
            f"{sent >> 20} MiB, stuck={stuck})"
    else:
        assert rss < 64 * 1024, f"opsd RSS is {rss >> 10} MiB after a " \
            f"client pushed {sent >> 20} MiB without reading"
    bad.close()
    assert opsd.status()["pid"] == opsd.pid


def test_large_batches_from_clients_that_never_read(opsd):
    """A batch within the 1 MiB request limit must not make the daemon
    hold many times that per connection (client_buffer is the promise)."""
    rss_before = vm_rss_kb(opsd.pid)
    one = json.dumps({"jsonrpc": "2.0", "method": "opsd.status", "id": 1},
                     separators=(",", ":"))
    n = (1024 * 1024 - 2) // (len(one) + 1)
    batch = ("[" + ",".join([one] * n) + "]\n").encode()
    conns = []
    for _ in range(2):
        c = opsd.connect(timeout=30)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(batch)
        conns.append(c)
    # the daemon has read them all once it answers a status call after them
    t0 = time.monotonic()
    good = opsd.connect(timeout=30)
    assert "result" in good.call("opsd.status", timeout=30)
    elapsed = time.monotonic() - t0
    rss = vm_rss_kb(opsd.pid)
    limit = rss_before + 64 * 1024 if SANITIZED else 64 * 1024
    assert rss < limit, \
        f"RSS {rss >> 10} MiB (before {rss_before >> 10} MiB) after 2 " \
        f"clients each sent one {len(batch) >> 10} KiB batch of {n} calls " \
        f"and read nothing"
    assert elapsed < 5, f"status took {elapsed:.1f}s behind the batches"


def test_notification_flood_is_consumed_in_bounded_memory(opsd):
    """50 MiB of large notifications (no replies): all read, memory
    bounded."""
    rss_before = vm_rss_kb(opsd.pid)
    c = opsd.connect(timeout=30)
    chunk = b'{"jsonrpc":"2.0","method":"opsd.status"' + b" " * 60000 + \
        b"}\n"
    sent = 0
    t0 = time.monotonic()
    while sent < (50 << 20):
        c.send(chunk)
        sent += len(chunk)
        assert time.monotonic() - t0 < 60, "daemon reads too slowly"
    reply = c.call("opsd.status", timeout=30)
    assert "result" in reply, reply
    rss = vm_rss_kb(opsd.pid)
    limit = rss_before + 64 * 1024 if SANITIZED else 64 * 1024
    assert rss < limit, f"RSS {rss >> 10} MiB after {sent >> 20} MiB of " \
        f"notifications (before: {rss_before >> 10} MiB)"


def test_idle_connection_is_closed(opsd_factory):
    d = opsd_factory(idle_timeout="1s")
    c = d.connect()
    c.sock.settimeout(10)
    t0 = time.monotonic()
    data = c.sock.recv(100)
    elapsed = time.monotonic() - t0
    assert data == b"", f"expected EOF on an idle connection, got {data!r}"
    assert 0.8 <= elapsed < 3.0, \
        f"idle_timeout=1s closed the connection after {elapsed:.2f}s"
    assert d.alive()


def test_active_connection_is_not_closed(opsd_factory):
    d = opsd_factory(idle_timeout="1s")
    c = d.connect()
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:
        assert "result" in c.call("opsd.status"), \
            "a connection with traffic every 0.4s was closed"
        time.sleep(0.4)


def test_idle_timeout_zero_disables(opsd_factory):
    d = opsd_factory(idle_timeout="0")
    c = d.connect()
    c.sock.settimeout(1.5)
    try:
        data = c.sock.recv(100)
    except socket.timeout:
        data = None
    assert data is None, f"idle_timeout=0 should keep connections: {data!r}"
