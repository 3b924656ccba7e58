"""--check-config, the example config, reload over RPC and by SIGHUP."""
import json
import signal
import time

import pytest

from conftest import OPSD, REPO, Daemon, run


def check_config(path):
    return run([OPSD, "--check-config", "-c", path])


def test_check_config_valid(tmp_path, rundir):
    d = Daemon(tmp_path, rundir)
    conf = d.write_config()
    rc, out, err = check_config(conf)
    assert rc == 0, f"--check-config on a valid file exited {rc}: {err}"
    assert out.strip() == f"{conf}: ok", f"expected '{conf}: ok', got {out!r}"
    assert not d.socket.exists(), "--check-config created the socket"
    assert not d.state_dir.exists(), "--check-config created the state dir"


def test_check_config_invalid(tmp_path, rundir):
    d = Daemon(tmp_path, rundir)
    conf = d.write_config(text=(
        "[opsd]\n"
        f"socket = {d.socket}\n"
        "no_such_key = 1\n"
        f"state_dir = {d.state_dir}\n"))
    rc, out, err = check_config(conf)
    assert rc == 1, f"--check-config on an invalid file exited {rc}, not 1"
    assert f"{conf}:3:" in err, \
        f"the error should be reported as {conf}:3: ...; stderr: {err!r}"
    assert "no_such_key" in err, f"the error should name the key: {err!r}"
    assert "ok" not in out, f"printed {out!r} for an invalid file"
    assert not d.socket.exists(), "--check-config created the socket"
    assert not d.state_dir.exists(), "--check-config created the state dir"


def test_check_config_reports_every_error(tmp_path, rundir):
    d = Daemon(tmp_path, rundir)
    conf = d.write_config(text=(
        "[opsd]\n"
        "log_level = loud\n"
        "idle_timeout = soon\n"
        "socket_mode = 0777\n"))
    rc, out, err = check_config(conf)
    assert rc == 1, f"exit {rc}, not 1; stderr: {err}"
    for line in (2, 3, 4):
        assert f"{conf}:{line}:" in err, \
            f"no error reported for line {line}:\n{err}"


def test_example_config_is_valid():
    example = REPO / "etc" / "opsd.conf.example"
    if not example.exists():
        pytest.skip(f"{example} does not exist yet")
    rc, out, err = check_config(example)
    assert rc == 0, f"the shipped example config does not pass " \
        f"--check-config ({rc}):\n{err}"
    assert out.strip() == f"{example}: ok", out


def test_reload_applies_new_log_level(opsd):
    assert opsd.status()["log_level"] == "info"
    opsd.write_config(log_level="debug")
    rc, out, err = opsd.cli("reload")
    assert rc == 0, f"opsd-cli reload exited {rc}: {err}"
    assert str(opsd.conf_path) in out, out
    st = opsd.status()
    assert st["log_level"] == "debug", \
        f"log_level after reload is {st['log_level']}, not debug"
    assert st["reloads"] == 1, st
    assert opsd.events("opsd.reloaded"), \
        f"no opsd.reloaded event on stderr:\n{opsd.log()}"


def test_reload_with_bad_config_keeps_old(opsd):
    before = opsd.status()
    # a valid change next to the error must not be applied either
    opsd.write_config(text=(
        "[opsd]\n"
        f"socket = {opsd.socket}\n"
        f"state_dir = {opsd.state_dir}\n"
        "log_level = debug\n"
        "bogus_key = 1\n"))
    rc, out, err = opsd.cli("reload")
    assert rc == 1, f"reload of a bad config exited {rc}, not 1: {err}"
    assert f"{opsd.conf_path}:5:" in err, \
        f"stderr should name {opsd.conf_path}:5: {err!r}"
    assert "-32001" in err, f"expected error code -32001: {err!r}"
    rc, out, err = opsd.cli("--json", "reload")
    assert rc == 1, (rc, out, err)
    e = json.loads(out)
    assert e["code"] == -32001, e
    assert any(f"{opsd.conf_path}:5:" in x for x in e["data"]["errors"]), e
    after = opsd.status()
    assert after["pid"] == before["pid"]
    assert after["log_level"] == "info", \
        f"the rejected config's log_level was applied: {after['log_level']}"
    assert after["reloads"] == 0, after
    assert opsd.events("opsd.reload_failed"), \
        f"no opsd.reload_failed event:\n{opsd.log()}"


def test_sighup_with_bad_config_keeps_running(opsd):
    opsd.write_config(text="[opsd]\nlog_level = debug\nbogus = 1\n")
    opsd.send_signal(signal.SIGHUP)
    opsd.wait_event("opsd.reload_failed")
    assert opsd.alive(), f"opsd died on SIGHUP with a bad config:\n" \
        f"{opsd.log()}"
    st = opsd.status()
    assert st["log_level"] == "info" and st["reloads"] == 0, st
    assert st["socket"] == str(opsd.socket), st


def test_sighup_with_good_config_applies(opsd):
    opsd.write_config(log_level="warning")
    opsd.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        st = opsd.status()
        if st["reloads"] == 1:
            break
        assert time.monotonic() < deadline, \
            f"reloads still {st['reloads']} 5s after SIGHUP"
        time.sleep(0.05)
    assert st["log_level"] == "warning", st
    assert opsd.alive()
    opsd.write_config(log_level="info")
    opsd.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while opsd.status()["reloads"] != 2:
        assert time.monotonic() < deadline, "second SIGHUP not applied"
        time.sleep(0.05)


def test_reload_applies_idle_timeout_to_open_connections(opsd):
    c = opsd.connect()
    assert "result" in c.call("opsd.status")
    opsd.write_config(idle_timeout="1s")
    rc, _, err = opsd.cli("reload")
    assert rc == 0, err
    t0 = time.monotonic()
    c.sock.settimeout(5)
    data = c.sock.recv(100)
    elapsed = time.monotonic() - t0
    assert data == b"", f"expected the idle connection to be closed, " \
        f"got {data!r}"
    assert elapsed < 3, f"closed only after {elapsed:.1f}s"
