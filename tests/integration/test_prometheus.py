"""
What ships for Prometheus and Grafana (docs/prometheus/, docs/grafana/)
against the real tools and the real daemon: `promtool check rules`,
`promtool test rules` (series in, alerts out: opsd.rules.test.yml),
`promtool check config` of the scrape example; the dashboard is valid
JSON with a panel for each area; and every metric name the rules and the
dashboard use is one that a running opsd exports, scraped from an opsd
whose probes, backup, secret, certificate (served by nginx), deploy and
alert route all have data.
"""
import json
import re
import subprocess
from pathlib import Path

import pytest

pytest.register_assert_rewrite("svc")
from svc import PROMTOOL, REPO, closed_port, wait_for  # noqa: E402

pytest_plugins = ["svc"]

PROM = REPO / "docs" / "prometheus"
DASHBOARD = REPO / "docs" / "grafana" / "opsd.json"

# Made by Prometheus for every target, not by opsd.
SYNTHETIC = {"up"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on",
            "ignoring", "group_left", "group_right", "inf", "nan"}


def promtool(*args):
    p = subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, \
        f"promtool {' '.join(args)} failed ({p.returncode}):\n" \
        f"{p.stdout}{p.stderr}"
    return p.stdout + p.stderr


def metric_names(expr):
    """The metric names a PromQL expression reads (not its functions,
    keywords, labels, strings or durations)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue        # a function
        if m.group(0).lower() not in KEYWORDS:
            names.add(m.group(0))
    return names


def test_metric_names_of_an_expression():
    assert metric_names('increase(opsd_backup_upload_total{result="failed"}'
                        '[6h]) > 0 unless ignoring (result) (x_total > 0)') \
        == {"opsd_backup_upload_total", "x_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le, instance) "
                        "(rate(a_bucket[5m])))") == {"a_bucket"}
    assert metric_names("(b - time()) < 14 * 86400") == {"b"}


def rule_exprs():
    text = (PROM / "opsd.rules.yml").read_text()
    # the expressions, folded over their continuation lines
    exprs, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^(\s*)expr: (.*)$", line)
        if m:
            cur = [len(m.group(1)), m.group(2)]
            exprs.append(cur)
        elif cur is not None and line.strip() and \
                len(line) - len(line.lstrip()) > cur[0] and \
                not re.match(r"^\s*\w+:", line):
            cur[1] += " " + line.strip()
        else:
            cur = None
    return [e for _, e in exprs]


def dashboard_exprs():
    d = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])]


def test_promtool_checks_and_tests_the_rules():
    out = promtool("check", "rules", "opsd.rules.yml")
    assert "SUCCESS: 13 rules found" in out, out
    out = promtool("test", "rules", "opsd.rules.test.yml")
    assert "SUCCESS" in out, out
    out = promtool("check", "config", "prometheus.yml.example")
    assert "SUCCESS" in out, out


def test_rules_cover_what_an_operator_must_know():
    text = (PROM / "opsd.rules.yml").read_text()
    names = re.findall(r"^\s*- alert: (\w+)$", text, re.M)
    assert sorted(names) == sorted([
        "OpsdDown", "OpsdLoopLagging", "OpsdReloadFailed", "OpsdProbeDown",
        "OpsdBackupStale", "OpsdBackupUnverified", "OpsdBackupUploadFailing",
        "OpsdSecretRotationOverdue", "OpsdCertExpiringSoon",
        "OpsdCertExpiringCritical", "OpsdCertServedDiffers",
        "OpsdDeployFailed", "OpsdDeployDegraded"]), names
    # every rule has its test in the promtool tests
    tests = (PROM / "opsd.rules.test.yml").read_text()
    for n in names:
        assert re.search(rf"alertname: {n}\n\s+exp_alerts:\n\s+- exp_labels",
                         tests), f"no test that {n} fires"
    assert len(rule_exprs()) == len(names)


def test_dashboard_is_a_dashboard():
    d = json.loads(DASHBOARD.read_text())
    assert d["title"] == "opsd" and d["uid"] == "opsd"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), \
                p["title"]
    text = " ".join(p["title"].lower() for p in d["panels"])
    for area in ("probe", "backup", "secret", "certificate", "deploy",
                 "loop lag", "backup size", "days left", "latency"):
        assert area in text, f"no panel about {area}"
    uses = {n for e in dashboard_exprs() for n in metric_names(e)}
    assert "opsd_probe_schedule_lateness_seconds_bucket" in uses


@pytest.fixture
def full(opsd_launcher, nginx_server, tls_certs, tmp_path):
    """An opsd in which every family the rules and the dashboard read
    has a sample."""
    pw = tmp_path / "db.pw"
    pw.write_text("unused\n")
    pw.chmod(0o600)
    body = (
        f"[alert hook]\ntype = webhook\nurl = http://127.0.0.1:"
        f"{closed_port()}/\n\n"
        "[probe up]\nkind = exec\ncommand = true\ninterval = 300ms\n"
        "rise = 1\nfall = 1\n\n"
        f"[probe down]\nkind = tcp\naddress = 127.0.0.1:{closed_port()}\n"
        "interval = 300ms\nrise = 1\nfall = 1\n\n"
        "[database main]\n"
        f"conninfo = host=127.0.0.1 port={closed_port()} user=b dbname=b "
        "connect_timeout=2\n"
        f"password_file = {pw}\n\n"
        f"[backup nightly]\ndatabase = main\ndir = {tmp_path / 'bk'}\n"
        "schedule = 0 3 * * *\npg_bin_dir = /usr/lib/postgresql/15/bin\n"
        "persistent = no\nverify = never\n\n"
        # verify = never has no verified time: one that verifies has
        f"[backup checked]\ndatabase = main\ndir = {tmp_path / 'bk2'}\n"
        "schedule = 0 3 * * *\npg_bin_dir = /usr/lib/postgresql/15/bin\n"
        "persistent = no\n\n"
        f"[secret token]\nkind = random\npath = {tmp_path / 'token'}\n"
        "rotate_every = 30d\n\n"
        f"[cert site]\npath = {tls_certs.server_crt}\n"
        f"key = {tls_certs.server_key}\nca_file = {tls_certs.ca}\n"
        f"served_at = 127.0.0.1:{nginx_server.https_port}\n\n"
        "[deploy app]\nstart = /bin/true\nstop = /bin/true\n"
        f"blue_port = {closed_port()}\ngreen_port = {closed_port()}\n"
        "active = blue\nactive_version = 1.0\n"
        "health = http://127.0.0.1:{port}/up\n"
        f"upstream_file = {tmp_path / 'upstream.conf'}\n"
        "proxy_test = /bin/true\nproxy_reload = /bin/true\n"
        f"proxy_pid_file = {tmp_path / 'nginx.pid'}\n"
        f"verify_url = http://127.0.0.1:{closed_port()}/\n\n")
    d = opsd_launcher(body)
    d.wait_state("up", "up")
    d.wait_state("down", "down")
    wait_for(lambda: "opsd_cert_served_matches{" in d.metrics(), 15,
             "the served certificate to be checked")
    return d


def exported(text):
    """Every sample name opsd exports: the families of its TYPE lines and,
    for histograms, their _bucket, _sum and _count."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if not m:
            continue
        names.add(m.group(1))
        if m.group(2) == "histogram":
            names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    samples = {re.match(r"^([a-zA-Z_:][\w:]*)", line).group(1)
               for line in text.splitlines()
               if line and not line.startswith("#")}
    return names, samples


def test_every_metric_used_is_exported(full):
    text = full.metrics()
    families, samples = exported(text)
    used = {}
    for where, exprs in (("opsd.rules.yml", rule_exprs()),
                         ("grafana/opsd.json", dashboard_exprs())):
        for e in exprs:
            for n in metric_names(e):
                used.setdefault(n, set()).add(where)
    assert len(used) > 25, used
    missing = {n: w for n, w in used.items()
               if n not in SYNTHETIC and n not in families}
    assert not missing, f"used but not exported by opsd: {missing}"
    # and each has a sample now, in a daemon that has the data
    empty = {n: w for n, w in used.items()
             if n not in SYNTHETIC and n not in samples}
    assert not empty, f"exported without a sample here: {empty}"
