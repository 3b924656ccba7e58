"""The Prometheus endpoint: /metrics checked by promtool and by value
against opsd's own view (probe.list) and the real world (the certificate's
notAfter read with openssl), /healthz, and metrics_listen = off."""
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

pytest.register_assert_rewrite("svc")
from svc import (PROMTOOL, closed_port, metric_value,  # noqa: E402
                 parse_metrics, wait_for)

pytest_plugins = ["svc"]


def probe(name, kind, **keys):
    lines = [f"[probe {name}]", f"kind = {kind}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


@pytest.fixture
def stack(opsd_launcher, nginx_server, tls_certs):
    """An opsd with an up, a down, a tls and an https probe, all run."""
    d = opsd_launcher(
        probe("web", "http",
              url=f"http://127.0.0.1:{nginx_server.http_port}/health",
              interval="300ms", rise=1, fall=1) +
        probe("gone", "tcp", address=f"127.0.0.1:{closed_port()}",
              interval="300ms", rise=1, fall=1) +
        probe("cert", "tls", address=f"127.0.0.1:{nginx_server.https_port}",
              ca_file=tls_certs.ca, interval="300ms", rise=1, fall=1) +
        probe("site", "http",
              url=f"https://127.0.0.1:{nginx_server.https_port}/health",
              ca_file=tls_certs.ca, interval="300ms", rise=1, fall=1) +
        probe("idle", "exec", command="true", interval="24h"))
    for name, state in (("web", "up"), ("gone", "down"), ("cert", "up"),
                        ("site", "up")):
        d.wait_state(name, state)
    return d


def promtool(text):
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)


def test_promtool_accepts_metrics(stack):
    text = stack.metrics()
    p = promtool(text)
    assert p.returncode == 0, \
        f"promtool check metrics failed ({p.returncode}):\n{p.stdout}" \
        f"{p.stderr}\n--- metrics ---\n{text}"
    # every sample parses, every family has HELP and TYPE
    samples = parse_metrics(text)
    families = {line.split()[2] for line in text.splitlines()
                if line.startswith("# TYPE ")}
    for name, _, _ in samples:
        base = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in families:
                base = name[:-len(suffix)]
        assert base in families, f"{name} has no # TYPE line"


def consistent(d, read):
    """Runs read() between two probe.list calls until both agree, so the
    metrics are compared with one consistent view; returns (probes,
    read())."""
    for _ in range(20):
        before = d.probes()
        value = read()
        after = d.probes()
        if all(before[n]["runs_ok"] == after[n]["runs_ok"] and
               before[n]["runs_failed"] == after[n]["runs_failed"]
               for n in before):
            return after, value
    raise AssertionError("probe counters never stood still for a scrape")


def test_probe_values(stack, tls_certs):
    probes, text = consistent(stack, stack.metrics)
    s = parse_metrics(text)
    assert metric_value(s, "opsd_probe_up", probe="web", kind="http") == 1
    assert metric_value(s, "opsd_probe_up", probe="gone", kind="tcp") == 0
    assert metric_value(s, "opsd_probe_up", probe="cert", kind="tls") == 1
    for name in ("web", "gone", "cert"):
        assert metric_value(s, "opsd_probe_known", probe=name) == 1, name
    if probes["idle"]["state"] == "unknown":
        # 0/1 as Prometheus wants, and "not known yet" said apart
        assert metric_value(s, "opsd_probe_up", probe="idle",
                            kind="exec") == 0
        assert metric_value(s, "opsd_probe_known", probe="idle") == 0
    for name, p in probes.items():
        assert metric_value(s, "opsd_probe_state_changes_total",
                            probe=name) == p["state_changes"], name
        assert metric_value(s, "opsd_probe_runs_total", probe=name,
                            result="ok") == p["runs_ok"], name
        assert metric_value(s, "opsd_probe_runs_total", probe=name,
                            result="failed") == p["runs_failed"], name
        if p["last"] is not None:
            d = metric_value(s, "opsd_probe_duration_seconds", probe=name)
            assert d is not None and 0 <= d < 5, (name, d)
            t = metric_value(s, "opsd_probe_last_run_timestamp_seconds",
                             probe=name)
            assert abs(t - time.time()) < 60, (name, t)
    assert metric_value(s, "opsd_probe_state_changes_total",
                        probe="gone") == 1

    real = tls_certs.not_after(tls_certs.server_crt)
    for name in ("cert", "site"):
        v = metric_value(s, "opsd_probe_cert_expiry_timestamp_seconds",
                         probe=name)
        assert v is not None, f"no certificate expiry for {name}"
        assert abs(v - real) < 86400, (name, v, real)
    assert metric_value(s, "opsd_probe_cert_expiry_timestamp_seconds",
                        probe="web") is None

    # the lateness histogram is cumulative and ends in +Inf == count
    buckets = [(l["le"], v) for n, l, v in s
               if n == "opsd_probe_schedule_lateness_seconds_bucket"]
    assert buckets and buckets[-1][0] == "+Inf", buckets
    values = [v for _, v in buckets]
    assert values == sorted(values), buckets
    assert values[-1] == metric_value(
        s, "opsd_probe_schedule_lateness_seconds_count") > 0


def test_process_and_build_metrics(opsd_launcher):
    d = opsd_launcher()
    s = parse_metrics(d.metrics())
    rss = metric_value(s, "process_resident_memory_bytes")
    assert rss is not None and rss > 1024 * 1024, rss
    assert metric_value(s, "process_virtual_memory_bytes") >= rss
    assert metric_value(s, "process_open_fds") > 3
    start = metric_value(s, "process_start_time_seconds")
    assert abs(start - time.time()) < 120, start
    build = [l for n, l, v in s if n == "opsd_build_info" and v == 1]
    assert len(build) == 1 and build[0].get("version"), build
    rc, out, _ = d.cli("--version")
    assert build[0]["version"] in out, (build, out)
    assert metric_value(s, "opsd_up") == 1


def test_rpc_counter(opsd_launcher):
    d = opsd_launcher()

    def status_ok():
        return metric_value(parse_metrics(d.metrics()),
                            "opsd_rpc_requests_total", method="opsd.status",
                            result="ok")
    before = status_ok()
    rc, out, err = d.cli("status")
    assert rc == 0, err
    assert status_ok() == before + 1
    before_err = metric_value(parse_metrics(d.metrics()),
                              "opsd_rpc_requests_total",
                              method="probe.history", result="error")
    assert d.cli("probe", "history", "nosuch")[0] == 1
    assert metric_value(parse_metrics(d.metrics()),
                        "opsd_rpc_requests_total", method="probe.history",
                        result="error") == before_err + 1


def test_healthz_and_other_paths(opsd_launcher):
    d = opsd_launcher()
    assert d.http_get("/healthz") == (200, "ok\n")
    status, _ = d.http_get("/nonexistent")
    assert status == 404
    req = urllib.request.Request(
        f"http://127.0.0.1:{d.metrics_port}/metrics", data=b"x",
        method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    assert code == 405, f"POST /metrics answered {code}"


def listening_ports(pid):
    """TCP ports the process listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_listen_off(opsd_launcher):
    on = opsd_launcher(name="on")
    assert listening_ports(on.pid) == {on.metrics_port}
    off = opsd_launcher(name="off", metrics=False)
    assert listening_ports(off.pid) == set(), \
        f"metrics_listen = off but opsd listens on " \
        f"{listening_ports(off.pid)}"
    assert off.cli("status")[0] == 0


def test_alert_counters_render(opsd_launcher, webhook_rx, tmp_path):
    flag = tmp_path / "never"
    d = opsd_launcher(
        "[alert hook]\ntype = webhook\n"
        f"url = {webhook_rx.url}\n\n"
        "[alert dead]\ntype = webhook\n"
        f"url = http://127.0.0.1:{closed_port()}/\nretries = 0\n\n"
        f"[probe p]\nkind = exec\ncommand = test -e {flag}\n"
        "interval = 200ms\nfall = 1\nalert = hook\nalert = dead\n")
    wait_for(lambda: (lambda s: metric_value(s, "opsd_alerts_sent_total",
                                             route="hook", result="ok") == 1
                      and metric_value(s, "opsd_alerts_sent_total",
                                       route="dead", result="failed") == 1)(
        parse_metrics(d.metrics())), 5, "one sent and one failed delivery")
    text = d.metrics()
    assert promtool(text).returncode == 0, promtool(text).stdout
    s = parse_metrics(text)
    assert metric_value(s, "opsd_alerts_sent_total", route="hook",
                        result="failed") == 0
    assert metric_value(s, "opsd_alerts_active") == 2
