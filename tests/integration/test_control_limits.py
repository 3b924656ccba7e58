"""The control socket's limits under clients that go away, never read, or
use up the daemon's file descriptors: the socket must keep answering."""
import json
import os
import selectors
import signal
import socket
import subprocess
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import SANITIZED, CLI, OPSD, env, wait_for  # noqa: E402

pytest_plugins = ["svc"]

# a status call from a fresh client must not wait behind the others
PROMPT = 2.0 if SANITIZED else 1.0


def probe(name, kind, **keys):
    lines = [f"[probe {name}]", f"kind = {kind}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid):
    """User + system CPU time of pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def call(path, method, timeout=10.0):
    """One call on a fresh connection to the socket at path; the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1,
                              "method": method}).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError(f"opsd closed the connection during {method}")
            buf += chunk
    return json.loads(buf.split(b"\n")[0])


def timed_status(d, timeout=10.0):
    t0 = time.monotonic()
    reply = call(d.socket, "opsd.status", timeout=timeout)
    return reply, time.monotonic() - t0


def connections(d):
    return call(d.socket, "opsd.status")["result"]["loop"]["connections"]


# --- 1. async calls of clients that went away ------------------------------

def test_async_notifications_of_closed_clients_free_their_slots(
        opsd_launcher):
    """probe.run sent as a notification (no id), then the client closes:
    nothing will ever be sent on that connection, so it must not hold one
    of max_connections' slots until the daemon restarts."""
    d = opsd_launcher("max_connections = 50\n\n" +
                      probe("x", "exec", command="sleep 2", interval="1h",
                            timeout="10s"),
                      metrics=False)
    note = json.dumps({"jsonrpc": "2.0", "method": "probe.run",
                       "params": {"name": "x"}}).encode() + b"\n"
    with_id = json.dumps({"jsonrpc": "2.0", "method": "probe.run", "id": 7,
                          "params": {"name": "x"}}).encode() + b"\n"
    for i in range(60):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(d.socket))
        # a few ask with an id and go away too: their answer is dropped
        s.sendall(with_id if i % 10 == 9 else note)
        s.close()
    reply, took = timed_status(d)
    assert "result" in reply, reply
    assert took < PROMPT, f"opsd.status took {took:.2f}s after 60 " \
        f"clients sent probe.run and closed"
    # the probe (sleep 2) is still running: the slots are free already
    wait_for(lambda: connections(d) <= 2, 1.5,
             "the closed clients' connections to be freed",
             detail=lambda: d.rpc("opsd.status")["loop"])
    # and once the run ends its dropped answers harm nothing
    time.sleep(2.5)
    assert d.proc.poll() is None
    assert connections(d) == 1
    assert d.rpc("probe.list")["probes"][0]["name"] == "x"


def test_half_closed_client_is_closed_when_its_notification_is_done(
        opsd_launcher):
    """A client that sent probe.run as a notification and shut down its
    sending side is owed nothing: once the run ends the daemon closes."""
    d = opsd_launcher(probe("x", "exec", command="sleep 1", interval="1h",
                            timeout="10s"), metrics=False)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(d.socket))
    s.sendall(json.dumps({"jsonrpc": "2.0", "method": "probe.run",
                          "params": {"name": "x"}}).encode() + b"\n")
    s.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    try:
        data = s.recv(100)
    except socket.timeout:
        data = None
    took = time.monotonic() - t0
    s.close()
    assert data == b"", f"expected the daemon to close the connection " \
        f"after the run, got {data!r} after {took:.1f}s"
    assert took < 5, took
    assert connections(d) == 1


# --- 2. clients that never read ---------------------------------------------

def test_many_clients_that_never_read_cost_bounded_memory(opsd_factory):
    """200 clients that ask for big results and read none of them: the
    output held for all of them together is bounded, and a fresh client is
    still answered at once."""
    # conftest's daemon: on sanitizer builds it runs with a small
    # quarantine, so that RSS measures the daemon
    d = opsd_factory(start=False)
    d.write_config(d.config_text() + "\n" + "".join(
        probe(f"p{i}", "exec", command="true", interval="1h")
        for i in range(20)))
    d.start()
    rss_before = vm_rss_kb(d.pid)
    reqs = b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i,
                    "method": ("opsd.methods", "probe.list")[i % 2]}
                   ).encode() + b"\n" for i in range(1000))
    socks = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(str(d.socket))
            s.setblocking(False)
            socks.append([s, 0])
        # push requests until the daemon stops reading every one of them
        deadline = time.monotonic() + 30
        active = list(socks)
        while active and time.monotonic() < deadline:
            still = []
            for entry in active:
                s, off = entry
                try:
                    n = s.send(reqs[off:])
                except BlockingIOError:
                    continue
                entry[1] = off + n
                if entry[1] < len(reqs):
                    still.append(entry)
            if len(still) == len(active):
                time.sleep(0.05)
            active = still
            # stop once nobody made progress for a while
            if active and all(e[1] == 0 for e in active):
                break
        # while the daemon renders what they asked for, and once it has
        # stopped (it uses no more CPU), a fresh client is answered at once
        worst, idle_since = 0.0, None
        deadline = time.monotonic() + (60 if SANITIZED else 30)
        while time.monotonic() < deadline:
            c0 = cpu_seconds(d.pid)
            reply, took = timed_status(d)
            assert "result" in reply, reply
            worst = max(worst, took)
            time.sleep(0.2)
            if cpu_seconds(d.pid) - c0 > 0.05:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 1.0:
                break
        assert idle_since is not None, "the daemon never went idle"
        rss = vm_rss_kb(d.pid)
        # 64M of replies held; AddressSanitizer's size classes, redzones
        # and quarantine add about as much again (without the limit: 200M
        # plain, twice that sanitized)
        limit = (200 if SANITIZED else 100) * 1024
        assert rss - rss_before < limit, \
            f"RSS grew by {(rss - rss_before) >> 10} MiB with 200 " \
            f"clients that never read"
        assert worst < PROMPT, f"opsd.status took {worst:.2f}s while 200 " \
            f"clients were not reading"
        assert reply["result"]["loop"]["connections"] >= 200
    finally:
        for s, _ in socks:
            s.close()
    wait_for(lambda: connections(d) == 1, 10,
             "the non-reading clients' connections to be freed")


def test_reading_resumes_once_the_client_reads(opsd_launcher):
    """A client paused because its replies piled up gets all of them
    once it reads: nothing is lost or answered out of order."""
    d = opsd_launcher(metrics=False)
    n = 400
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(d.socket))
    s.sendall(b"".join(json.dumps({"jsonrpc": "2.0", "id": i,
                                   "method": "opsd.methods"}).encode() +
                       b"\n" for i in range(n)))
    time.sleep(0.5)
    buf, ids = b"", []
    while len(ids) < n:
        chunk = s.recv(1 << 20)
        assert chunk, f"connection closed after {len(ids)} replies"
        buf += chunk
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            ids.append(json.loads(line)["id"])
    s.close()
    assert ids == list(range(n))


# --- 2b. clients that all come at once ---------------------------------------

def connect_all_at_once(d, n, method):
    """n clients connect and send one request each (id i) while the daemon
    is stopped, so that all of them wait in the listen backlog together
    and are accepted as one burst once it goes on."""
    n = min(n, int(open("/proc/sys/net/core/somaxconn").read()))
    socks = []
    os.kill(d.pid, signal.SIGSTOP)
    try:
        for i in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(d.socket))
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": i,
                                  "method": method}).encode() + b"\n")
            s.setblocking(False)
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        os.kill(d.pid, signal.SIGCONT)
    return socks


def first_replies(socks, timeout, close_each):
    """Each socket's first reply line, parsed (None: closed without one).
    close_each: a socket is closed as soon as it has its reply, freeing its
    connection; else all stay open until the end. Fails if some are still
    waiting after timeout seconds."""
    replies, bufs = {}, {s: b"" for s in socks}
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    try:
        while len(replies) < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s, i = key.fileobj, key.data
                chunk = s.recv(1 << 20)
                bufs[s] += chunk
                if b"\n" in bufs[s] or not chunk:
                    line = bufs[s].split(b"\n")[0]
                    replies[i] = json.loads(line) if line else None
                    sel.unregister(s)
                    if close_each:
                        s.close()
    finally:
        for s in socks:
            s.close()
    missing = sorted(set(range(len(socks))) - set(replies))
    assert not missing, f"{len(missing)} of {len(socks)} clients got no " \
        f"reply in {timeout}s (first: {missing[:10]})"
    return replies


def test_clients_connecting_at_once_are_all_answered(opsd_launcher):
    """200 clients that connect in the same instant, each with a request
    already sent: accepts are spread over loop iterations and requests
    wait their turns, and every client gets its own answer in full. They
    all stay connected: none of them frees a slot that would make the
    daemon accept again."""
    d = opsd_launcher("".join(probe(f"p{i}", "exec", command="true",
                                    interval="1h") for i in range(20)),
                      metrics=False)
    wait_for(lambda: all(p["runs_ok"] for p in
                         d.rpc("probe.list")["probes"]), 10, "first runs")
    socks = connect_all_at_once(d, 200, "probe.list")
    n = len(socks)
    replies = first_replies(socks, 60 if SANITIZED else 30, False)
    for i, r in replies.items():
        assert r is not None, f"client {i} was closed without a reply"
        assert r.get("id") == i, (i, r)
        assert len(r["result"]["probes"]) == 20, (i, r)
    wait_for(lambda: connections(d) == 1, 10,
             f"the {n} connections to be freed")
    assert "result" in call(d.socket, "opsd.status")


def test_a_burst_past_max_connections_is_answered_or_refused(opsd_launcher):
    """More clients at once than max_connections: those past the limit are
    told so, and those left in the backlog are accepted as slots free. No
    client is left without an answer."""
    d = opsd_launcher("max_connections = 50\n", metrics=False)
    socks = connect_all_at_once(d, 120, "opsd.methods")
    replies = first_replies(socks, 60 if SANITIZED else 30, True)
    answered = [i for i, r in replies.items() if r and "result" in r]
    refused = [i for i, r in replies.items()
               if r and r.get("error", {}).get("code") == -32003]
    assert len(answered) >= 50, f"only {len(answered)} of 120 answered"
    assert len(answered) + len(refused) == len(socks), replies
    for i in answered:
        assert replies[i]["id"] == i, replies[i]
    wait_for(lambda: connections(d) == 1, 10, "the connections to be freed")


# --- 3. out of file descriptors ---------------------------------------------

def test_out_of_file_descriptors_the_socket_still_answers(tmp_path):
    """With its file descriptors used up by idle clients, the daemon
    answers a new client with a clear error (instead of leaving it in the
    backlog), does not spin on the listening socket, and serves again
    once descriptors are free."""
    sock = f"/tmp/opsd-fd.{os.getpid()}.sock"
    conf = tmp_path / "fd.conf"
    conf.write_text("[opsd]\n"
                    f"socket = {sock}\n"
                    f"state_dir = {tmp_path / 'state'}\n"
                    "socket_mode = 0666\nlog_level = info\n"
                    "metrics_listen = off\n")
    err = open(tmp_path / "fd.stderr", "ab")
    # soft = hard: the daemon's own raise to the hard limit changes nothing
    proc = subprocess.Popen(["prlimit", "--nofile=64:64", str(OPSD), "-c",
                             str(conf), "--log-target=stderr"],
                            stdin=subprocess.DEVNULL, stdout=err,
                            stderr=err, env=env())
    idle = []
    try:
        def ready():
            assert proc.poll() is None, (tmp_path / "fd.stderr").read_text()
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(sock)
                    s.sendall(b'{"jsonrpc":"2.0","method":"opsd.status",'
                              b'"id":1}\n')
                    return b"result" in s.recv(65536)
            except OSError:
                return False
        wait_for(ready, 10, "opsd to answer")
        # use up every descriptor the daemon has, and some backlog
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(sock)
            idle.append(s)
        time.sleep(0.5)
        t0 = time.monotonic()
        p = subprocess.run([str(CLI), "-s", sock, "--timeout", "5s",
                            "status"], capture_output=True, text=True,
                           timeout=20, env=env())
        took = time.monotonic() - t0
        assert took < 3, f"opsd-cli status took {took:.1f}s with the " \
            f"daemon out of descriptors: {p.stdout}{p.stderr}"
        assert p.returncode == 0 or "descriptor" in p.stderr, \
            f"opsd-cli status: rc {p.returncode}: {p.stdout}{p.stderr}"
        # not spinning on a readable listener meanwhile
        c0 = cpu_seconds(proc.pid)
        time.sleep(2)
        used = cpu_seconds(proc.pid) - c0
        assert used < 0.5, f"opsd used {used:.2f}s of CPU in 2s while " \
            f"out of descriptors"
        assert proc.poll() is None
        # descriptors free again: normal service
        for s in idle:
            s.close()
        idle = []
        wait_for(ready, 5, "opsd to answer once descriptors are free")
        p = subprocess.run([str(CLI), "-s", sock, "status"],
                           capture_output=True, text=True, timeout=20,
                           env=env())
        assert p.returncode == 0, p.stderr
    finally:
        for s in idle:
            s.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()
    log = (tmp_path / "fd.stderr").read_text()
    assert "out of file descriptors" in log, \
        f"the daemon never ran out of descriptors: the test proves " \
        f"nothing\n{log}"
    for m in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert m not in log, log


# --- 4. libevent's own messages ---------------------------------------------

def test_libevent_messages_go_through_the_json_log(opsd_launcher, tmp_path):
    """libevent prints its own messages on stderr unless told otherwise;
    EVENT_SHOW_METHOD makes it print one at start-up. It must arrive as
    one of opsd's JSON records, like every other line of the log."""
    d = opsd_launcher(metrics=False, start=False)
    err = open(d.stderr_path, "ab")
    d._err = err
    d.proc = subprocess.Popen(
        [str(OPSD), "-c", str(d.conf_path), "--log-target=stderr"],
        stdin=subprocess.DEVNULL, stdout=err, stderr=err,
        env=env(EVENT_SHOW_METHOD="1"))
    wait_for(d._ready, 10, "opsd to answer", detail=d.log)
    lines = [line for line in d.log().splitlines() if line.strip()]
    not_json = []
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            not_json.append(line)
    assert not not_json, f"lines of opsd's log that are not JSON: {not_json}"
    ev = [e for e in d.events("libevent") if "using" in e.get("msg", "")]
    assert ev, f"no 'libevent' record saying which backend it uses:\n" \
        f"{d.log()}"
    assert ev[0]["level"] == "info", ev[0]
