"""systemd integration: sd_notify, the watchdog, socket activation, units."""
import signal
import socket
import statistics
import time

import pytest

from conftest import OPSD, REPO, Conn, base_env, run


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []      # (monotonic time, {key: value}, raw text)

    def recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        text = data.decode()
        kv = dict(line.split("=", 1) for line in text.split("\n") if
                  "=" in line)
        m = (time.monotonic(), kv, text)
        self.msgs.append(m)
        return m

    def wait_for(self, pred, timeout, what, on_msg=None):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {what} notification within {timeout}s; got: " +
                    repr([m[2] for m in self.msgs[-20:]]))
            m = self.recv(left)
            if m is None:
                continue
            if on_msg:
                on_msg(m)
            if pred(m[1]):
                return m

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(rundir):
    n = NotifySocket(rundir / "notify.sock")
    yield n
    n.close()


def test_sd_notify_and_watchdog(opsd_factory, notify):
    d = opsd_factory(start=False)
    env = base_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=200000,
                   WATCHDOG_PID=None)
    d.start(env=env, wait=False)

    served_at_ready = {}

    def check_socket_at_ready(m):
        # the moment READY=1 arrives, the control socket must answer
        if m[1].get("READY") == "1" and not served_at_ready:
            c = Conn(d.socket, timeout=5)
            try:
                served_at_ready["reply"] = c.call("opsd.status")
            finally:
                c.close()

    notify.wait_for(lambda kv: kv.get("READY") == "1", 15, "READY=1",
                    on_msg=check_socket_at_ready)
    assert "result" in served_at_ready.get("reply", {}), \
        f"the control socket did not answer at READY=1: {served_at_ready}"
    notify.wait_for(lambda kv: "STATUS" in kv, 5, "STATUS=")
    status_text = [m[1]["STATUS"] for m in notify.msgs if "STATUS" in
                   m[1]][0]
    assert status_text, "empty STATUS="

    # watchdog pings at about half of WATCHDOG_USEC
    t_end = time.monotonic() + 1.2
    while time.monotonic() < t_end:
        notify.recv(t_end - time.monotonic())
    pings = [m[0] for m in notify.msgs if m[1].get("WATCHDOG") == "1"]
    assert len(pings) >= 6, \
        f"only {len(pings)} WATCHDOG=1 in ~1.2s with WATCHDOG_USEC=200000"
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    med = statistics.median(gaps)
    assert 0.05 <= med <= 0.15, f"median watchdog interval {med:.3f}s, " \
        f"expected about 0.1s"
    p90 = sorted(gaps)[int(len(gaps) * 0.9) - 1]
    assert p90 < 0.2, f"watchdog gaps up to {p90:.3f}s (90th percentile) " \
        f"would let systemd kill the service: {gaps}"

    st = d.status()
    assert st["watchdog_usec"] == 200000, st

    # reload: RELOADING=1 with MONOTONIC_USEC, then READY=1
    start = len(notify.msgs)
    d.send_signal(signal.SIGHUP)
    m = notify.wait_for(lambda kv: kv.get("RELOADING") == "1", 5,
                        "RELOADING=1")
    assert "MONOTONIC_USEC" in m[1], \
        f"RELOADING=1 must carry MONOTONIC_USEC= in the same message: " \
        f"{m[2]!r}"
    now_us = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
    assert abs(now_us - int(m[1]["MONOTONIC_USEC"])) < 5e6, \
        f"MONOTONIC_USEC={m[1]['MONOTONIC_USEC']} is not CLOCK_MONOTONIC " \
        f"now ({now_us:.0f})"
    notify.wait_for(lambda kv: kv.get("READY") == "1", 5,
                    "READY=1 after reload")
    assert len(notify.msgs) > start

    # stop
    d.send_signal(signal.SIGTERM)
    notify.wait_for(lambda kv: kv.get("STOPPING") == "1", 5, "STOPPING=1")
    assert d.wait(5) == 0, d.log()


def test_no_watchdog_when_watchdog_pid_is_another_process(opsd_factory,
                                                          notify):
    d = opsd_factory(start=False)
    env = base_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=200000,
                   WATCHDOG_PID=1)
    d.start(env=env)
    notify.wait_for(lambda kv: kv.get("READY") == "1", 5, "READY=1")
    t_end = time.monotonic() + 0.6
    while time.monotonic() < t_end:
        notify.recv(t_end - time.monotonic())
    assert not [m for m in notify.msgs if "WATCHDOG" in m[1]], \
        "opsd pinged a watchdog meant for another process"
    assert d.status()["watchdog_usec"] == 0


def test_reload_failure_still_signals_ready(opsd_factory, notify):
    d = opsd_factory(start=False)
    d.start(env=base_env(NOTIFY_SOCKET=notify.path))
    notify.wait_for(lambda kv: kv.get("READY") == "1", 5, "READY=1")
    d.write_config(text="[opsd]\nbogus = 1\n")
    d.send_signal(signal.SIGHUP)
    notify.wait_for(lambda kv: kv.get("RELOADING") == "1", 5, "RELOADING=1")
    notify.wait_for(lambda kv: kv.get("READY") == "1", 5,
                    "READY=1 after a failed reload (systemd would wait "
                    "forever in 'reloading')")
    assert d.alive()


def test_socket_activation(opsd_factory, rundir):
    d = opsd_factory(start=False)
    activated = rundir / "activated.sock"
    d.start(prefix=["systemd-socket-activate", "-l", str(activated),
                    "--fdname=opsd"], wait=False)
    # the first connection makes systemd-socket-activate run opsd
    d.wait_ready(socket_path=activated)
    c = Conn(activated, timeout=15)
    reply = c.call("opsd.status", timeout=15)
    c.close()
    st = reply["result"]
    # systemd-socket-activate execs opsd (no fork): the same pid
    assert st["pid"] == d.pid, (st["pid"], d.pid)
    assert st["socket_activated"] is True, st
    assert st["socket"] == str(activated), st
    assert not d.socket.exists(), \
        f"opsd also bound the config's socket {d.socket}"
    rc, out, err = d.cli("--json", "status")   # the config's path: nothing
    assert rc == 3, f"config socket should not exist: {rc} {out} {err}"
    assert d.stop() == 0, d.log()
    assert activated.exists(), \
        "opsd removed the socket systemd passed it (the .socket unit owns it)"


def test_units_verify(tmp_path):
    src = REPO / "units"
    service_in = src / "opsd.service.in"
    assert service_in.exists(), f"{service_in} missing"
    unitdir = tmp_path / "units"
    unitdir.mkdir()
    text = service_in.read_text().replace("@SBINDIR@", str(OPSD.parent))
    assert "@" not in text.replace("@system-service", ""), \
        "unsubstituted @VAR@ left in opsd.service.in"
    (unitdir / "opsd.service").write_text(text)
    (unitdir / "opsd.socket").write_text((src / "opsd.socket").read_text())
    # --man=no: the man pages are not installed on a test machine
    rc, out, err = run(["systemd-analyze", "verify", "--man=no",
                        unitdir / "opsd.service", unitdir / "opsd.socket"],
                       env=base_env(SYSTEMD_LOG_COLOR="0"))
    lines = [l for l in (out + err).splitlines()
             if "opsd.service" in l or "opsd.socket" in l]
    assert rc == 0 and not lines, \
        f"systemd-analyze verify ({rc}):\n{out}{err}"


def test_unit_matches_daemon(tmp_path):
    """The unit's command lines are accepted by the daemon itself."""
    text = (REPO / "units" / "opsd.service.in").read_text()
    assert "Type=notify" in text
    assert "WatchdogSec=" in text
    execs = [l.split("=", 1)[1] for l in text.splitlines()
             if l.startswith(("ExecStart=", "ExecStartPre="))]
    conf = tmp_path / "opsd.conf"
    conf.write_text(f"[opsd]\nsocket = {tmp_path}/s\nstate_dir = "
                    f"{tmp_path}/st\n")
    for line in execs:
        argv = line.split()
        assert argv[0] == "@SBINDIR@/opsd", line
        args = [str(conf) if a == "/etc/opsd/opsd.conf" else a
                for a in argv[1:]]
        if "--check-config" in args or "-n" in args:
            rc, out, err = run([OPSD] + args)
            assert rc == 0, f"{line}: {err}"
        else:
            # options must parse: add --check-config to stop right there
            rc, out, err = run([OPSD] + args + ["--check-config"])
            assert rc == 0, f"{line} does not parse: {err}"
