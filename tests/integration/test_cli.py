"""opsd-cli and opsd command lines: output, help, exit codes."""
import json
import socket
import threading
import time

from conftest import CLI, OPSD, cli_run, run, sanitizer_report


def test_status_human_output(opsd, cli, opsd_version):
    rc, out, err = cli("status")
    assert rc == 0, f"opsd-cli status exited {rc}: {err}"
    assert f"opsd {opsd_version}" in out, \
        f"status does not show version {opsd_version}:\n{out}"
    assert str(opsd.conf_path) in out, \
        f"status does not show the config path {opsd.conf_path}:\n{out}"
    assert str(opsd.state_dir) in out, \
        f"status does not show the state dir {opsd.state_dir}:\n{out}"
    assert f"pid {opsd.pid}" in out, f"status does not show the pid:\n{out}"


def test_status_json(opsd, cli, opsd_version):
    rc, out, err = cli("status", "--json")
    assert rc == 0, f"opsd-cli status --json exited {rc}: {err}"
    try:
        st = json.loads(out)
    except ValueError as e:
        raise AssertionError(f"status --json is not JSON ({e}): {out!r}")
    for key in ("version", "pid", "uptime_seconds", "config", "state_dir",
                "objects", "loop"):
        assert key in st, f"status --json lacks '{key}': {st}"
    assert st["version"] == opsd_version
    assert st["pid"] == opsd.pid, \
        f"status pid {st['pid']} is not the daemon's pid {opsd.pid}"
    assert isinstance(st["uptime_seconds"], int) and \
        0 <= st["uptime_seconds"] < 60, st["uptime_seconds"]
    assert st["config"] == str(opsd.conf_path)
    assert st["state_dir"] == str(opsd.state_dir)
    assert isinstance(st["objects"], dict), st["objects"]
    assert isinstance(st["loop"], dict) and "connections" in st["loop"], \
        st["loop"]
    # the global option before the command means the same
    rc, out2, err = cli("--json", "status")
    assert rc == 0 and json.loads(out2)["pid"] == opsd.pid, (rc, out2, err)


def test_opsd_version():
    rc, out, err = run([OPSD, "--version"])
    assert rc == 0, f"opsd --version exited {rc}: {err}"
    assert out.startswith("opsd ") and "protocol" in out, out
    rc, cout, err = run([CLI, "--version"])
    assert rc == 0, f"opsd-cli --version exited {rc}: {err}"
    assert cout.split()[1] == out.split()[1], \
        f"opsd and opsd-cli report different versions: {out!r} {cout!r}"


def test_opsd_help():
    rc, out, err = run([OPSD, "--help"])
    assert rc == 0, f"opsd --help exited {rc}: {err}"
    for word in ("usage: opsd", "--check-config", "--log-target",
                 "--config"):
        assert word in out, f"opsd --help lacks {word!r}:\n{out}"
    rc, out, err = run([OPSD, "--no-such-option"])
    assert rc == 2, f"opsd with an unknown option exited {rc}, not 2"


def test_cli_help():
    rc, out, err = run([CLI, "--help"])
    assert rc == 0, f"opsd-cli --help exited {rc}: {err}"
    for word in ("usage: opsd-cli", "status", "reload", "log-level",
                 "methods", "--timeout", "--json"):
        assert word in out, f"opsd-cli --help lacks {word!r}:\n{out}"


def test_cli_command_help():
    # needs no daemon: a socket that does not exist must not matter
    rc, out, err = cli_run("status", "--help",
                           socket_path="/nonexistent/opsd.sock")
    assert rc == 0, f"opsd-cli status --help exited {rc}: {err}"
    assert "usage:" in out and "status" in out and "opsd.status" in out, out


def test_cli_unknown_command():
    rc, out, err = cli_run("frobnicate", socket_path="/nonexistent/x.sock")
    assert rc == 2, f"unknown command exited {rc}, not 2 (usage): {err}"
    assert "frobnicate" in err, f"error does not name the command: {err}"


def test_cli_bad_arguments():
    rc, _, err = cli_run("log-level", socket_path="/nonexistent/x.sock")
    assert rc == 2, f"log-level without LEVEL exited {rc}, not 2: {err}"
    rc, _, err = cli_run("--timeout", "soon", "status",
                         socket_path="/nonexistent/x.sock")
    assert rc == 2, f"--timeout soon exited {rc}, not 2: {err}"


def test_cli_missing_socket(rundir):
    path = rundir / "nothing-here.sock"
    rc, out, err = cli_run("status", socket_path=path)
    assert rc == 3, f"missing socket: exit {rc}, not 3: {err}"
    assert str(path) in err, f"message does not name {path}: {err}"
    assert "running" in err, f"message does not ask whether opsd is " \
        f"running: {err}"


def test_cli_missing_socket_says_no_such_file(rundir):
    path = rundir / "gone.sock"
    rc, out, err = cli_run("status", socket_path=path)
    assert rc == 3, f"missing socket: exit {rc}, not 3: {err}"
    assert f"no such file: is opsd running? (socket {path}" in err, err


def test_cli_path_that_is_not_a_socket(rundir):
    # connect() to a regular file or a directory is refused like a dead
    # socket: the message must not send the operator after a crashed opsd
    plain = rundir / "opsd.conf"
    plain.write_text("[opsd]\n")
    for path, kind in ((plain, "regular file"), (rundir, "directory")):
        rc, out, err = cli_run("status", socket_path=path)
        assert rc == 3, f"{kind}: exit {rc}, not 3: {err}"
        assert f"{path} is not a socket but a {kind}" in err, err
        assert "refused" not in err, err


def test_cli_refused_socket(rundir):
    # a socket file nobody listens on: opsd died without cleaning up
    path = rundir / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    rc, out, err = cli_run("status", socket_path=path)
    assert rc == 3, f"refused socket: exit {rc}, not 3: {err}"
    assert str(path) in err, err


def test_cli_timeout(rundir):
    path = rundir / "silent.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept_and_ignore():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                held.append(c)      # read nothing, answer nothing
            except socket.timeout:
                pass

    t = threading.Thread(target=accept_and_ignore, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        rc, out, err = cli_run("--timeout", "500ms", "status",
                               socket_path=path, timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()
    assert held, "opsd-cli never connected to the silent listener"
    assert rc == 3, f"timeout: exit {rc}, not 3: {err}"
    assert 0.45 <= elapsed < 3.0, \
        f"--timeout 500ms gave up after {elapsed:.2f}s"
    assert str(path) in err and "500ms" in err, \
        f"timeout message should name the socket and the limit: {err}"


def test_cli_runs_clean_under_sanitizers(opsd, cli, rundir):
    """opsd-cli itself must not trigger ASan/UBSan/LSan reports (only a
    sanitizer build can fail this)."""
    runs = [cli("status"), cli("--json", "status"), cli("methods"),
            cli("reload"), cli("log-level", "info"),
            cli("call", "opsd.no_such_method"),
            cli_run("status", socket_path=rundir / "missing.sock")]
    for rc, out, err in runs:
        line = sanitizer_report(err)
        assert line is None, f"sanitizer report from opsd-cli: {line}\n{err}"
