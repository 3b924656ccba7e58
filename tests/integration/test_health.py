"""opsd.health and the monitoring check built on it: `opsd-cli status
--check` and `opsd-cli summary` print one Nagios line and exit 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
import json
import socket

import pytest

from conftest import cli_run
from svc import closed_port, wait_for  # noqa: E402

pytest_plugins = ["svc"]


@pytest.fixture
def listener():
    """A TCP port that accepts: a tcp probe of it is up."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def tcp_probe(name, port):
    return (f"[probe {name}]\nkind = tcp\naddress = 127.0.0.1:{port}\n"
            "interval = 1s\nrise = 1\nfall = 1\n\n")


def settled(d, n):
    """Waits until the n probes have all run once."""
    return wait_for(lambda: (lambda h: h if h["probes"]["unknown"] == 0
                             and h["probes"]["total"] == n else None)(
        d.rpc("opsd.health")), 10, "every probe to have run")


def check(d, *cmd):
    return d.cli(*(cmd or ("status", "--check")))


def test_one_probe_down_is_critical(opsd_launcher, listener):
    down = closed_port()
    d = opsd_launcher(tcp_probe("web", listener) + tcp_probe("api", down))
    h = settled(d, 2)
    assert h["status"] == "critical", h
    assert h["probes"]["up"] == 1 and h["probes"]["down"] == 1, h
    assert [p["name"] for p in h["probes"]["failing"]] == ["api"], h
    assert "probe api down" in h["problems"], h
    for cmd in (("status", "--check"), ("summary",)):
        rc, out, err = check(d, *cmd)
        assert rc == 2, f"{cmd}: exit {rc}, not 2 (CRITICAL): {out}{err}"
        assert out.startswith("CRITICAL: ") and "probe api down" in out, out
        assert len(out.splitlines()) == 1, f"not one line: {out!r}"
        assert "web" not in out, f"names a probe that is up: {out}"
    # status keeps its lines and adds the summary after them
    rc, out, err = d.cli("status")
    assert rc == 0, f"status exits 0 whatever the health: {rc} {err}"
    lines = out.splitlines()
    assert lines[0].startswith("opsd ") and lines[-1].startswith(
        "health"), out
    assert "CRITICAL: probe api down" in lines[-1], out
    rc, out, err = d.cli("--json", "status")
    st = json.loads(out)
    assert st["pid"] == d.pid and st["health"]["status"] == "critical", st


def test_all_up_is_ok(opsd_launcher, listener):
    d = opsd_launcher(tcp_probe("web", listener) + tcp_probe("api",
                                                             listener))
    settled(d, 2)
    rc, out, err = check(d)
    assert rc == 0, f"exit {rc}, not 0 (OK): {out}{err}"
    assert out == "OK: 2 probes up\n", out
    rc, out, err = d.cli("--json", "summary")
    assert rc == 0 and json.loads(out)["status"] == "ok", (rc, out, err)


def test_failed_reload_is_a_warning_with_its_error(opsd_launcher, listener):
    body = tcp_probe("web", listener)
    d = opsd_launcher(body)
    settled(d, 1)
    d.conf_path.write_text(d.config(body + "[probe web2]\nkind = tcp\n"
                                    "address = 127.0.0.1:1\n"
                                    "adress = 127.0.0.1:1\n"))
    rc, out, err = d.cli("reload")
    assert rc == 1, f"a bad config was accepted: {out}{err}"
    h = d.rpc("opsd.health")
    assert h["status"] == "warning" and not h["reload"]["ok"], h
    assert any("unknown key 'adress'" in e for e in h["reload"]["errors"]), h
    rc, out, err = check(d)
    assert rc == 1, f"exit {rc}, not 1 (WARNING): {out}{err}"
    assert out.startswith("WARNING: reload failed: ") and \
        "unknown key 'adress' in [probe web2]; did you mean 'address'?" \
        in out, out
    # a reload that succeeds clears it
    d.conf_path.write_text(d.config(body))
    rc, out, err = d.cli("reload")
    assert rc == 0, err
    rc, out, err = check(d)
    assert rc == 0 and out.startswith("OK: "), (rc, out, err)
    assert "errors" not in d.rpc("opsd.health")["reload"]


def test_no_daemon_is_unknown(rundir):
    path = rundir / "none.sock"
    for cmd in (("status", "--check"), ("summary",)):
        rc, out, err = cli_run(*cmd, socket_path=path)
        assert rc == 3, f"{cmd}: exit {rc}, not 3 (UNKNOWN): {out}{err}"
        assert out.startswith("UNKNOWN: ") and str(path) in out, out
    # a wrong argument to status is a usage error, as before
    rc, out, err = cli_run("status", "--chekc", socket_path=path)
    assert rc == 2, f"status --chekc: exit {rc}: {err}"


def test_health_method_is_read_only(opsd_launcher):
    d = opsd_launcher("")
    m = {x["name"]: x for x in d.rpc("opsd.methods")["methods"]}
    assert m["opsd.health"]["access"] == "read", m["opsd.health"]
    h = d.rpc("opsd.health")
    assert h["status"] == "ok" and h["problems"] == [], h
    for key in ("probes", "alerts", "backups", "reload"):
        assert key in h, f"opsd.health lacks {key}: {h}"
