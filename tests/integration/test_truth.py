"""opsd says what is true and current: probes run when they appear, the
health summary and the exit codes an operator scripts against match what
the daemon knows, and metrics follow the Prometheus conventions."""
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import closed_port, wait_for  # noqa: E402

pytest_plugins = ["svc"]


def probe(name, kind, **keys):
    lines = [f"[probe {name}]", f"kind = {kind}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def test_hourly_probe_runs_right_after_start_and_after_reload(
        opsd_launcher):
    # an hourly probe used to wait up to an hour for its first run, so a
    # broken target alerted hours late
    port = closed_port()
    hourly = probe("hourly", "tcp", address=f"127.0.0.1:{port}",
                   interval="1h", fall=1)
    d = opsd_launcher(hourly)
    t0 = time.monotonic()
    d.wait_state("hourly", "down", timeout=5)
    assert time.monotonic() - t0 < 5
    # one run, not a burst: the next one is an interval or more away
    time.sleep(1.5)
    assert d.probe("hourly")["runs_failed"] == 1, d.probe("hourly")

    d.write(hourly + probe("added", "tcp", address=f"127.0.0.1:{port}",
                           interval="1h", fall=1))
    rc, out, err = d.cli("reload")
    assert rc == 0, err
    d.wait_state("added", "down", timeout=5)
    # the unchanged probe was not run again by the reload
    assert d.probe("hourly")["runs_failed"] == 1, d.probe("hourly")
