"""The control socket's limits under clients that go away, never read, or
use up the daemon's file descriptors: the socket must keep answering."""
import json
import os
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


def timed_status(d, timeout=10.0):
    t0 = time.monotonic()
    reply = d.rpc_raw("opsd.status", timeout=timeout)
    return reply, time.monotonic() - t0


def connections(d):
    return d.rpc("opsd.status")["loop"]["connections"]


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
    n = wait_for(lambda: connections(d) <= 2 and connections(d), 1.5,
                 "the closed clients' connections to be freed",
                 detail=lambda: d.rpc("opsd.status")["loop"])
    assert n <= 2
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
