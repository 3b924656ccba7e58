"""Start, stop, crash and restart."""
import json
import signal
import socket
import time



def read_run_state(d):
    path = d.state_dir / "opsd.json"
    assert path.exists(), f"{path} does not exist"
    return json.loads(path.read_text())


def test_sigterm_stops_cleanly(opsd):
    assert read_run_state(opsd)["clean_shutdown"] is False, \
        "a running daemon should record clean_shutdown false"
    t0 = time.monotonic()
    rc = opsd.stop(signal.SIGTERM, timeout=5)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"opsd exited {rc} on SIGTERM:\n{opsd.log()}"
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    assert not opsd.socket.exists(), \
        f"{opsd.socket} was left behind after a clean stop"
    st = read_run_state(opsd)
    assert st["clean_shutdown"] is True, st
    assert st["pid"] == opsd.pid, st
    assert opsd.events("opsd.stopped"), opsd.log()


def test_sigint_stops_cleanly(opsd):
    rc = opsd.stop(signal.SIGINT, timeout=5)
    assert rc == 0, f"opsd exited {rc} on SIGINT:\n{opsd.log()}"
    assert read_run_state(opsd)["clean_shutdown"] is True


def test_sigterm_with_idle_client_connected(opsd):
    idle = opsd.connect()
    busy = opsd.connect()
    assert "result" in busy.call("opsd.status")
    t0 = time.monotonic()
    rc = opsd.stop(signal.SIGTERM, timeout=5)
    assert rc == 0, opsd.log()
    assert time.monotonic() - t0 < 3
    idle.sock.settimeout(2)
    assert idle.sock.recv(10) == b"", "idle client not disconnected"


def test_sigterm_with_stuck_client_is_bounded(opsd_factory):
    """A client that never reads cannot hold up the stop beyond
    shutdown_timeout."""
    d = opsd_factory(shutdown_timeout="1s")
    bad = d.connect()
    bad.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    bad.sock.setblocking(False)
    req = b'{"jsonrpc":"2.0","method":"opsd.methods","id":1}\n' * 2000
    sent, t_end, stuck_since = 0, time.monotonic() + 5, None
    while time.monotonic() < t_end and sent < 8 << 20:
        try:
            sent += bad.sock.send(req)
            stuck_since = None
        except BlockingIOError:
            now = time.monotonic()
            stuck_since = stuck_since or now
            if now - stuck_since > 0.3:
                break       # opsd stopped reading: replies are queued
            time.sleep(0.02)
    t0 = time.monotonic()
    rc = d.stop(signal.SIGTERM, timeout=6)
    elapsed = time.monotonic() - t0
    assert rc == 0, d.log()
    assert elapsed < 4, f"stop took {elapsed:.1f}s with shutdown_timeout=1s"


def test_unclean_shutdown_is_reported(opsd_factory):
    d = opsd_factory()
    first = d.pid
    # a clean stop and start: no complaint
    assert d.stop() == 0
    d.start()
    assert not d.events("opsd.unclean_shutdown"), \
        f"unclean_shutdown reported after a clean stop:\n{d.log()}"
    second = d.pid
    assert second != first
    d.send_signal(signal.SIGKILL)
    d.wait()
    assert d.socket.exists(), "expected the stale socket after kill -9"
    d.start()      # must cope with the stale socket file
    ev = d.events("opsd.unclean_shutdown", since_start=True)
    assert ev, f"no opsd.unclean_shutdown event after kill -9:\n{d.log()}"
    assert ev[0].get("prev_pid") == str(second), ev[0]
    assert ev[0].get("level") == "warning", ev[0]
    assert d.status()["pid"] == d.pid


def test_second_instance_refuses_the_same_socket(opsd, opsd_factory):
    other = opsd_factory(start=False, name="other", socket=opsd.socket)
    other.start(wait=False)
    rc = other.wait(timeout=10)
    assert rc != 0, "a second opsd started on a socket already in use"
    assert str(opsd.socket) in other.log(), other.log()
    assert opsd.status()["pid"] == opsd.pid, \
        "the first daemon lost its socket"


def test_bad_config_at_start_fails(opsd_factory):
    d = opsd_factory(start=False)
    d.write_config(text=f"[opsd]\nsocket = {d.socket}\nlog_level = loud\n")
    d.start(wait=False)
    rc = d.wait(timeout=10)
    assert rc == 1, f"opsd with a bad config exited {rc}, not 1"
    errs = d.events("config.error")
    assert errs and f"{d.conf_path}:3:" in errs[0]["msg"], d.log()
    assert not d.socket.exists()
