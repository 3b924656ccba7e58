"""
opsd-cli audit against real files and two real PostgreSQL 15 servers: a
deliberately bad setup (a world-readable secret, a .env with
DB_PASSWORD=changeme, a trust rule in pg_hba, log_connections off, an md5
verifier, a foreign key without an index, no timeouts) where each is found
under its documented id, and the hardened setup docs/audit.md recommends,
where nothing at high or above is found. Also: --fail-on as a gate,
--only, values never printed, sample files, could-not-check apart from
findings, the schedule alerting on new findings only, /metrics, and the
check table against opsd.conf(5)'s AUDIT CHECKS section, both ways.
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import (BUILD, OPSD, PGBIN, REPO, Postgres, free_port,  # noqa
                        must, wait_for)

from svc import Webhook  # noqa: E402

pytest_plugins = ["backup_svc"]


class AuditPostgres(Postgres):
    """A PostgreSQL of its own whose pg_hba.conf and settings a test
    module chooses (written after initdb, then reloaded)."""

    def configure(self, conf="", hba=None):
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        if hba is not None:
            (self.data / "pg_hba.conf").write_text(hba)
        self._as_pg(f"{PGBIN}/pg_ctl -D {self.data} reload >/dev/null")
        time.sleep(0.3)

    def ssl_files(self):
        key, crt = self.data / "server.key", self.data / "server.crt"
        must(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
              "-keyout", str(key), "-out", str(crt), "-days", "2",
              "-subj", "/CN=localhost"], "openssl req")
        for p in (key, crt):
            shutil.chown(p, "postgres", "postgres")
            os.chmod(p, 0o600)


BAD_HBA = """\
local all all peer
host all trusty 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""

GOOD_HBA = """\
local all all peer
hostnossl all all 0.0.0.0/0 reject
hostnossl all all ::/0 reject
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
"""

GOOD_CONF = """
ssl = on
ssl_min_protocol_version = 'TLSv1.2'
log_connections = on
log_disconnections = on
log_statement = 'ddl'
log_line_prefix = '%m [%p] %q%u@%d from %h '
"""


@pytest.fixture(scope="module")
def bad_pg():
    pg = AuditPostgres()
    try:
        pg.setup()
        pg.configure("log_connections = off\n", BAD_HBA)
        # a role whose password predates scram
        pg.sql("SET password_encryption = 'md5'; CREATE ROLE legacy LOGIN "
               f"PASSWORD '{secrets.token_hex(8)}'")
        db = pg.new_db("bad", rows=50, extra_sql="""
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
CREATE TABLE child2 (id int PRIMARY KEY, parent_id int REFERENCES parent);
""")
        pg.db = db
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture(scope="module")
def good_pg():
    pg = AuditPostgres()
    try:
        pg.setup()
        pg.ssl_files()
        pg.configure(GOOD_CONF, GOOD_HBA)
        db = pg.new_db("good", rows=50)
        for sql in ("ALTER ROLE backup SET statement_timeout = '30s'",
                    # a setting for the role in this database counts too
                    f"ALTER ROLE backup IN DATABASE {db} SET "
                    "idle_in_transaction_session_timeout = '60s'",
                    "ALTER ROLE backup SET idle_session_timeout = '1h'",
                    "ALTER ROLE backup CONNECTION LIMIT 20"):
            pg.sql(sql)
        pg.db = db
        yield pg
    finally:
        pg.cleanup()


def write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def ids(res, min_sev=None):
    order = ["info", "low", "medium", "high", "critical"]
    return {f["id"] for f in res["findings"]
            if min_sev is None or order.index(f["severity"]) >=
            order.index(min_sev)}


def find(res, fid):
    return [f for f in res["findings"] if f["id"] == fid]


def audit(d, *args, rc=None):
    p = d.cli("--json", "audit", *args, timeout=60)
    if rc is not None:
        assert p[0] == rc, p
    return json.loads(p[1]), p


@pytest.fixture(scope="module")
def bad_setup(bad_pg, tmp_path_factory):
    t = tmp_path_factory.mktemp("audit-bad")
    value = "changeme"
    sec = write(t / "db.pass", value + "\n", 0o644)
    env = write(t / ".env.prod", "DB_HOST=db\nDB_PASSWORD=changeme\n"
                "API_TOKEN=Zq8rT2mXv7pL1tK9wB4nC6yD3hF5jG0s\n", 0o600)
    body = (bad_pg.conf_sections(bad_pg.db) +
            f"[audit]\nsecret_files = {sec}\nenv_files = {env}\n")
    return t, body, [value, "Zq8rT2mXv7pL1tK9wB4nC6yD3hF5jG0s",
                     bad_pg.backup_password, bad_pg.admin_password]


def test_bad_setup_finds_each_with_its_id(bk_daemons, bad_setup):
    t, body, values = bad_setup
    d = bk_daemons(body)
    res, (rc, out, err) = audit(d, rc=0)
    found = ids(res)
    for want in ("secret.world_readable", "secret.placeholder",
                 "secret.trailing_newline", "env.placeholder",
                 "env.literal_credential", "pg.hba_trust",
                 "pg.log_connections", "pg.md5_verifier",
                 "pg.fk_without_index", "pg.statement_timeout",
                 "pg.idle_in_transaction_timeout", "pg.ssl",
                 "pg.hba_no_ssl_reject"):
        assert want in found, f"{want} not found: {json.dumps(res, indent=1)}"
    # where each one is, and its fix
    (trust,) = find(res, "pg.hba_trust")
    assert trust["severity"] == "critical"
    assert re.search(r"pg_hba\.conf:2 \(host all trusty 127\.0\.0\.1",
                     trust["where"]), trust
    assert "scram-sha-256" in trust["fix"]
    (md5,) = find(res, "pg.md5_verifier")
    assert md5["where"].endswith("role legacy")
    (fk,) = [f for f in find(res, "pg.fk_without_index")
             if "table child," in f["where"]]
    assert "CREATE INDEX CONCURRENTLY ON child (parent_id)" == fk["fix"]
    (ph,) = find(res, "env.placeholder")
    assert ph["where"].endswith(".env.prod:2 DB_PASSWORD")
    assert ph["severity"] == "high"
    (wr,) = find(res, "secret.world_readable")
    assert wr["where"] == str(t / "db.pass") and "0644" in wr["what"]
    (lc,) = find(res, "pg.log_connections")
    assert "log_connections = on" in lc["fix"]
    # worst first
    order = ["info", "low", "medium", "high", "critical"]
    sevs = [order.index(f["severity"]) for f in res["findings"]]
    assert sevs == sorted(sevs, reverse=True)
    assert res["counts"]["critical"] >= 2
    # values never printed: not in the JSON, the text, or the log
    text = d.cli("audit", timeout=60)[1]
    for v in values:
        assert v not in out and v not in text and v not in d.log(), v
    assert "pg.hba_trust" in text and "fix: " in text


def test_fail_on_and_only(bk_daemons, bad_setup):
    _, body, _ = bad_setup
    d = bk_daemons(body)
    res, _ = audit(d, "--fail-on", "critical", rc=1)
    res, _ = audit(d, "--only", "env", "--fail-on", "critical", rc=0)
    assert ids(res) and all(i.startswith("env.") for i in ids(res))
    res, _ = audit(d, "--only", "env", "--fail-on", "high", rc=1)
    res, _ = audit(d, "--only", "pg.hba_trust", "pg.md5_verifier", rc=0)
    assert ids(res) == {"pg.hba_trust", "pg.md5_verifier"}
    rc, out, err = d.cli("audit", "--only", "pg.nosuch")
    assert rc == 1 and "unknown check 'pg.nosuch'" in err, (rc, out, err)
    rc, out, err = d.cli("audit", "--fail-on", "severe")
    assert rc == 2 and "--fail-on" in err
    # the listing is limited per check; counts and the gate are not
    res, _ = audit(d, "--only", "pg.fk_without_index", "--limit", "1",
                   "--fail-on", "low", rc=1)
    assert res["counts"]["low"] >= 2, res
    more = [f for f in res["findings"] if f["where"] == "(more)"]
    assert len(more) == 1 and "not listed" in more[0]["what"], res
    # the text form exits the same way
    rc, out, err = d.cli("audit", "--fail-on", "critical")
    assert rc == 1 and "critical" in out


def test_hardened_setup_has_nothing_high(bk_daemons, good_pg, tmp_path):
    value = secrets.token_urlsafe(32)
    sec = write(tmp_path / "db.pass", value, 0o600)
    env = write(tmp_path / ".env.prod", "DB_HOST=db\nDB_PASSWORD_FILE="
                f"{sec}\n", 0o600)
    sample = write(tmp_path / ".env.example", "DB_PASSWORD=\n"
                   "API_TOKEN=your-token-here\n", 0o644)
    body = (good_pg.conf_sections(good_pg.db) +
            f"[audit]\nsecret_files = {sec}\nenv_files = {env}\n"
            f"env_files = {sample}\n")
    d = bk_daemons(body)
    res, _ = audit(d, "--fail-on", "high", rc=0)
    assert not ids(res, "high"), json.dumps(res, indent=1)
    assert not ids(res, "medium"), json.dumps(res, indent=1)
    # the checks ran: nothing of the database was left unchecked
    assert not [u for u in res["unchecked"] if u["id"].startswith("pg.")
                and u["id"] != "pg.unused_index"], res["unchecked"]
    # a fresh database's statistics hold the unused-index check back
    assert not find(res, "pg.unused_index")
    # an empty value and a placeholder in a sample are not findings
    assert not [f for f in res["findings"] if ".env.example" in f["where"]]
    assert value not in json.dumps(res) and value not in d.log()


def test_could_not_check_is_not_a_finding(bk_daemons, bad_pg, tmp_path):
    sec = write(tmp_path / "s", "x" * 40, 0o600)
    body = (bad_pg.conf_sections(bad_pg.db, admin=False) +
            "[database gone]\nconninfo = host=127.0.0.1 "
            f"port={free_port()} user=backup dbname=postgres "
            "connect_timeout=2\n\n"
            f"[audit]\nsecret_files = {sec}\ntimeout = 3s\n")
    d = bk_daemons(body)
    res, _ = audit(d)
    un = {(u["id"], u["where"]) for u in res["unchecked"]}
    # the ordinary role may not read pg_authid or pg_hba_file_rules
    assert ("pg.md5_verifier", "database main") in un
    assert ("pg.hba_trust", "database main") in un
    assert not find(res, "pg.hba_trust")
    # its own checks still ran
    assert "pg.fk_without_index" in ids(res)
    # a server that is not there: every pg check of it unchecked
    gone = [u for u in res["unchecked"] if u["where"] == "database gone"]
    assert gone and all("cannot connect" in u["what"] for u in gone)
    assert not [f for f in res["findings"] if "database gone" in
                f["where"]]


def test_managed_secret_mode_bit_by_bit(bk_daemons, tmp_path):
    """A [secret] of mode 0640 may be read by its group; 0604 is another
    problem (others read) that a numeric comparison misses."""
    path = tmp_path / "app.key"
    body = (f"[secret app]\nkind = random\npath = {path}\nmode = 0640\n"
            "bytes = 32\n")
    d = bk_daemons(body)
    wait_for(path.exists, 10, "the secret's file")
    d.wait_event("secret.created")      # its first version is in place
    res, _ = audit(d, "--only", "secret")
    assert not ids(res), res
    os.chmod(path, 0o604)
    res, _ = audit(d, "--only", "secret")
    assert ids(res) == {"secret.world_readable"}, res
    os.chmod(path, 0o660)
    res, _ = audit(d, "--only", "secret")
    assert ids(res) == {"secret.group_access"}, res
    os.chmod(path, 0o600)
    old = time.time() - 400 * 86400
    os.utime(path, (old, old))
    res, _ = audit(d, "--only", "secret")
    assert ids(res) == {"secret.age"}, res


def test_schedule_alerts_on_new_findings_only(bk_daemons, tmp_path):
    hook = Webhook()
    hook.up()
    try:
        schedule_alerts(bk_daemons, tmp_path, hook)
    finally:
        hook.down()


def schedule_alerts(bk_daemons, tmp_path, hook):
    a = write(tmp_path / "a.pass", secrets.token_urlsafe(32), 0o644)
    b = write(tmp_path / "b.pass", secrets.token_urlsafe(32), 0o600)
    body = (f"[alert ops]\ntype = webhook\nurl = {hook.url}\n\n"
            f"[audit]\nsecret_files = {a}\nsecret_files = {b}\n"
            "schedule = every 1s\nalert = ops\n")
    d = bk_daemons(body)
    d.wait_event("audit.new_findings", timeout=10)
    (post,) = hook.wait(lambda p: (p["json"] or {}).get("status") ==
                        "firing")
    assert str(a) in json.dumps(post["json"]), post["json"]
    wait_for(lambda: len(d.events("audit.finished")) >= 4, 15,
             "four scheduled runs")
    news = d.events("audit.new_findings")
    assert len(news) == 1, news
    assert news[0]["count"] == "1" and str(a) in news[0]["finding_1"]
    os.chmod(b, 0o644)
    d.wait_event("audit.new_findings", timeout=10,
                 pred=lambda e: str(b) in e.get("finding_1", ""))
    assert len(d.events("audit.new_findings")) == 2
    os.chmod(a, 0o600)
    os.chmod(b, 0o600)
    d.wait_event("audit.resolved", timeout=10)
    hook.wait(lambda p: (p["json"] or {}).get("status") == "resolved")
    # one firing message per new finding set, not one per run
    assert len(hook.received(lambda p: (p["json"] or {}).get("status") ==
                             "firing")) == 2, hook.received()
    # the known set survives a restart: no alert for what was known
    d.stop()
    os.chmod(a, 0o644)
    d.start()
    d.wait_event("audit.new_findings", timeout=10, since_start=True)
    n = len(d.events("audit.finished", since_start=True))
    wait_for(lambda: len(d.events("audit.finished", since_start=True)) >=
             n + 2, 10, "two more runs")
    assert len(d.events("audit.new_findings", since_start=True)) == 1


def test_metrics(bk_daemons, tmp_path):
    a = write(tmp_path / "a.pass", "short", 0o600)
    port = free_port()
    d = bk_daemons(f"[audit]\nsecret_files = {a}\n")
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "metrics_listen = off", f"metrics_listen = 127.0.0.1:{port}"))
    d.stop()
    d.start()
    import urllib.request
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=5).read().decode()
    assert "opsd_audit_findings" not in page
    audit(d)
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=5).read().decode()
    assert 'opsd_audit_findings{severity="high"} 1' in page, page
    assert "opsd_audit_last_run_timestamp_seconds" in page


def test_config_errors(bk_daemons, tmp_path):
    d = bk_daemons("[audit]\nenv_files = relative/.env\n", start=False)
    p = subprocess.run([str(OPSD), "--check-config", "-c",
                        str(d.conf_path)], capture_output=True, text=True)
    assert p.returncode != 0
    assert re.search(r"\.conf:\d+: .*not an absolute path", p.stderr), \
        p.stderr
    d.write("[audit]\nalert = ops\n")
    p = subprocess.run([p.args[0], "--check-config", "-c", str(d.conf_path)],
                       capture_output=True, text=True)
    assert re.search(r"\.conf:\d+: alert is for scheduled runs, and there "
                     "is no schedule", p.stderr), p.stderr
    d.write("[audit]\ndatabases = nosuch\n")
    p = subprocess.run([p.args[0], "--check-config", "-c", str(d.conf_path)],
                       capture_output=True, text=True)
    assert re.search(r"\.conf:\d+: unknown database 'nosuch'", p.stderr), \
        p.stderr


def test_man_page_lists_exactly_the_checks(bk_daemons):
    d = bk_daemons("")
    table = {c["id"]: c["severity"] for c in
             d.rpc("audit.checks")["checks"]}
    text = (REPO / "docs" / "opsd.conf.5.scd").read_text()
    m = re.search(r"^# AUDIT CHECKS\n(.*?)(?=^# )", text, re.M | re.S)
    assert m, "opsd.conf(5) has no AUDIT CHECKS section"
    documented = {k.replace("\\_", "_"): v for k, v in re.findall(
        r"^\*([a-z\\_]+\.[a-z\\_0-9]+)\* \(([a-z]+)\)$", m.group(1), re.M)}
    missing = sorted(set(table) - set(documented))
    extra = sorted(set(documented) - set(table))
    assert not missing and not extra, \
        f"AUDIT CHECKS: undocumented {missing}, documented but not in " \
        f"the table {extra}"
    wrong = {k: (documented[k], v) for k, v in table.items()
             if documented[k] != v}
    assert not wrong, f"severities differ (doc, table): {wrong}"


def test_tls_endpoints_through_the_grader(bk_daemons, good_pg, bad_pg):
    """[audit] tls: PostgreSQL's STARTTLS endpoint graded by the same
    grader as tls check; a server without TLS is not checked, not
    failed."""
    crt = good_pg.data / "server.crt"
    ca = good_pg.files / "ca.crt"
    shutil.copy(crt, ca)
    body = (f"[audit]\ntls = postgres://127.0.0.1:{good_pg.port}\n"
            f"tls = postgres://127.0.0.1:{bad_pg.port}\n"
            f"tls_ca_file = {ca}\ntimeout = 5s\n")
    d = bk_daemons(body)
    res, _ = audit(d, "--only", "tls")
    good = f"postgres://127.0.0.1:{good_pg.port}"
    bad = f"postgres://127.0.0.1:{bad_pg.port}"
    assert not [u for u in res["unchecked"] if u["where"] == good], res
    assert {u["id"] for u in res["unchecked"] if u["where"] == bad} == \
        {"tls.grade", "tls.issue"}, res
    assert not [f for f in res["findings"] if f["where"] == bad]
    # a self-signed certificate for another name: the grader's findings
    issues = {f["what"].split(":")[0] for f in find(res, "tls.issue")
              if f["where"] == good and f["severity"] == "high"}
    assert {"self_signed", "name_mismatch"} <= issues, res
    (grade,) = [f for f in find(res, "tls.grade") if f["where"] == good]
    assert grade["what"].startswith("grade ") and grade["fix"], grade


def test_host_checks(bk_daemons, tmp_path):
    unit = BUILD / "units" / "opsd.service"     # the shipped unit, built
    d = bk_daemons(f"[audit]\nunit_file = {unit}\n")
    res, _ = audit(d, "--only", "host")
    assert not res["findings"] and not res["unchecked"], res
    weak = tmp_path / "opsd.service"
    weak.write_text("".join(l for l in unit.read_text().splitlines(True)
                            if not l.startswith("PrivateTmp=")) +
                    "ProtectSystem=s\n")
    d.write(f"[audit]\nunit_file = {weak}\n")
    assert d.cli("reload")[0] == 0
    os.chmod(d.state_dir, 0o757)
    os.chmod(d.conf_path, 0o666)
    try:
        res, _ = audit(d, "--only", "host")
    finally:
        os.chmod(d.state_dir, 0o700)
        os.chmod(d.conf_path, 0o644)
    got = {(f["id"], f["severity"]) for f in res["findings"]}
    assert got == {("host.unit", "low"), ("host.state_dir", "high"),
                   ("host.config", "high")}, res
    (u,) = find(res, "host.unit")
    assert u["what"].startswith("PrivateTmp ") and \
        "PrivateTmp=yes" in u["fix"], u


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="no systemd-analyze")
def test_unit_exposure_through_systemd_analyze(bk_daemons, tmp_path):
    bare = tmp_path / "api.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    unit = BUILD / "units" / "opsd.service"
    d = bk_daemons(f"[audit]\nunit_file = {unit}\nunits = {bare}\n"
                   "units = nosuch.service\n")
    res, _ = audit(d, "--only", "host.unit_exposure")
    (f,) = res["findings"]
    assert f["where"] == str(bare) and f["severity"] == "high" and \
        "UNSAFE" in f["what"], res
    assert "systemd-analyze security --offline=yes" in f["fix"]
    # opsd's own unit is sandboxed: no finding; a unit name needs systemd
    un = {u["where"]: u["what"] for u in res["unchecked"]}
    if not os.path.isdir("/run/systemd/system"):
        assert "systemd does not run here" in un["nosuch.service"], res
    assert str(unit) not in un, res


def test_previous_values_and_rendered_env_files(bk_daemons, tmp_path):
    """The files opsd writes that hold values besides a [secret]'s path:
    its previous values (keep_previous) and the [env_file]s it renders."""
    path = tmp_path / "jwt.key"
    tpl = write(tmp_path / "app.env.tpl", "JWT_SECRET={{secret:jwt}}\n",
                0o644)
    out = tmp_path / "app.env"
    body = (f"[secret jwt]\nkind = random\npath = {path}\nkeep_previous = 1\n"
            f"bytes = 32\n\n[env_file app]\ntemplate = {tpl}\n"
            f"path = {out}\n")
    d = bk_daemons(body)
    wait_for(out.exists, 10, "the rendered env file")
    # the creation is a rotation of its own: the next one once it ended
    rot = wait_for(lambda: (lambda x: x if "result" in x else None)(
        d.rpc_raw("secret.rotate", {"name": "jwt"})), 20,
        "the creation's rotation to end")
    op = rot["result"]["op"]
    wait_for(lambda: d.rpc("op.show", {"id": op}).get("state") == "ok", 20,
             "the rotation")
    prev = Path(f"{path}.previous")
    assert prev.exists()
    res, _ = audit(d, "--only", "secret")
    assert not res["findings"], res
    os.chmod(prev, 0o644)
    os.chmod(out, 0o644)
    res, _ = audit(d, "--only", "secret")
    got = {(f["id"], f["where"]) for f in res["findings"]}
    assert ("secret.world_readable", str(prev)) in got, res
    assert ("secret.world_readable", str(out)) in got, res
    values = [prev.read_text(), path.read_text()]
    for v in values:
        assert v.strip() not in json.dumps(res)
