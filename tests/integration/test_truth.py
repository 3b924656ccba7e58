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


def test_reload_metrics_follow_the_prometheus_convention(opsd_launcher):
    import urllib.request
    from svc import metric_value, parse_metrics
    d = opsd_launcher("")
    url = f"http://127.0.0.1:{d.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Content-Type"].startswith(
            "text/plain; version=0.0.4"), r.headers["Content-Type"]
    s = parse_metrics(d.http_get()[1])
    started = metric_value(s, "opsd_config_last_reload_success_timestamp_"
                              "seconds")
    assert metric_value(s, "opsd_config_last_reload_successful") == 1
    assert abs(started - time.time()) < 30, started

    good = d.conf_path.read_text()
    d.conf_path.write_text(good + "[probe broken]\nkind = nope\n")
    rc, out, err = d.cli("reload")
    assert rc != 0
    s = parse_metrics(d.http_get()[1])
    assert metric_value(s, "opsd_config_last_reload_successful") == 0
    assert metric_value(s, "opsd_config_last_reload_success_timestamp_"
                           "seconds") == started

    time.sleep(1.1)
    d.conf_path.write_text(good)
    rc, out, err = d.cli("reload")
    assert rc == 0, err
    s = parse_metrics(d.http_get()[1])
    assert metric_value(s, "opsd_config_last_reload_successful") == 1
    assert metric_value(s, "opsd_config_last_reload_success_timestamp_"
                           "seconds") > started


def test_probe_list_shows_the_failure_streak_of_a_probe_still_up(
        opsd_launcher, tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    d = opsd_launcher(probe("flaky", "exec", command=f"test -e {flag}",
                            interval="1h", rise=1, fall=3))
    d.wait_state("flaky", "up")         # its first run, right at start
    flag.unlink()
    rc, r = d.run_probe("flaky")
    assert rc == 1, r
    p = d.probe("flaky")
    assert (p["state"], p["fail_streak"], p["fall"]) == ("up", 1, 3), p
    rc, out, err = d.cli("probe", "list")
    assert rc == 0, err
    row = [ln for ln in out.splitlines() if ln.startswith("flaky")][0]
    assert "up, failing 1/3" in row, out
    flag.write_text("")
    d.run_probe("flaky")
    rc, out, err = d.cli("probe", "list")
    row = [ln for ln in out.splitlines() if ln.startswith("flaky")][0]
    assert "failing" not in row, out


def test_postgres_probe_reports_and_checks_the_first_value(opsd_launcher,
                                                           pg_up):
    def pg(name, **keys):
        keys.setdefault("interval", "1h")
        return probe(name, "postgres",
                     conninfo=f"host=127.0.0.1 port={pg_up.port} "
                              f"dbname=postgres user=probe",
                     password_file=pg_up.password_file, **keys)
    q = "SELECT count(*) FROM pg_stat_activity"
    d = opsd_launcher(pg("conns", query=q, expect="< 1000") +
                      pg("few", query="SELECT 3", expect="> 5") +
                      pg("plain"))
    rc, r = d.run_probe("conns")
    assert rc == 0, r
    value = r["reason"].split()[0]
    assert r["reason"] == f"{value} ({q})" and value.isdigit(), r
    rc, r = d.run_probe("few")
    assert rc == 1, r
    assert r["reason"] == "got 3, expected > 5 (SELECT 3)", r
    rc, r = d.run_probe("plain")
    assert rc == 0 and r["reason"] == "1 (SELECT 1)", r
    rc, out, err = d.cli("probe", "list")
    assert "ok: 1 (SELECT 1)" in out and "ok: ok:" not in out, out


def test_postgres_probe_expect_is_checked_in_the_config(tmp_path):
    from svc import check_config
    rc, out, err, path = check_config(probe(
        "bad", "postgres", conninfo="host=127.0.0.1 dbname=postgres",
        expect="about 5"), tmp_path)
    assert rc == 1, out + err
    assert "expect 'about 5'" in err, err
