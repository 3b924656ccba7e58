"""
[cert NAME]: the expiry watch and the renewal op against a real nginx
serving certificates the tests make with the openssl tool (a CA, leaves
of a few days, renewed leaves), a renew command of the test suite that
installs the renewed leaf, and on_renew = nginx -s reload. What a user
sees: events, alerts' states, metrics, cert list/show/check/renew, the op
journal, and the files left after a failure (the old certificate kept).
"""
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from svc import (NGINX, check_config, free_port, metric_value, must,  # noqa
                 parse_metrics, port_open, wait_for)

pytest_plugins = ["svc"]


# --- certificates --------------------------------------------------------------

class Pki:
    """A test CA and leaves signed by it, all under d."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.crt"
        self._key(self.dir / "ca.key")
        must(["openssl", "req", "-x509", "-new", "-key", self.dir / "ca.key",
              "-out", self.ca, "-days", "3650", "-subj",
              "/O=opsd tests/CN=opsd cert test CA"])
        self.n = 0

    @staticmethod
    def _key(path):
        must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", path])

    def leaf(self, tag, days, sans="DNS:localhost, IP:127.0.0.1", key=None):
        """(crt, key) of a new leaf valid for days."""
        self.n += 1
        crt = self.dir / f"{tag}.crt"
        if key is None:
            key = self.dir / f"{tag}.key"
            self._key(key)
        ext = self.dir / f"{tag}.ext"
        ext.write_text("basicConstraints = critical, CA:FALSE\n"
                       "keyUsage = critical, digitalSignature\n"
                       "extendedKeyUsage = serverAuth\n"
                       f"subjectAltName = {sans}\n")
        csr = self.dir / f"{tag}.csr"
        must(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj",
              "/CN=localhost"])
        must(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca,
              "-CAkey", self.dir / "ca.key", "-set_serial",
              str(1000 + self.n), "-out", crt, "-days", str(days),
              "-extfile", ext])
        return crt, key


def sha256_of(crt):
    out = must(["openssl", "x509", "-in", crt, "-noout", "-fingerprint",
                "-sha256"])
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def served_sha256(port):
    p = subprocess.run(["openssl", "s_client", "-connect",
                        f"127.0.0.1:{port}", "-servername", "localhost"],
                       input=b"", capture_output=True, timeout=20)
    pem = p.stdout.decode(errors="replace")
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----") + 25
    q = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                        "-sha256"], input=pem[begin:end].encode(),
                       capture_output=True, timeout=20)
    return q.stdout.decode().strip().split("=", 1)[1].replace(":", "").lower()


# --- nginx -----------------------------------------------------------------------

class Site:
    """nginx of its own serving live/cert.pem and live/key.pem on a free
    port; reload() is what on_renew runs."""

    def __init__(self, d):
        self.prefix = Path(d) / "nginx"
        self.prefix.mkdir(parents=True)
        self.live = Path(d) / "live"
        self.live.mkdir()
        self.crt = self.live / "cert.pem"
        self.key = self.live / "key.pem"
        self.port = free_port()
        self.proc = None

    def install(self, crt, key):
        self.crt.write_bytes(Path(crt).read_bytes())
        self.key.write_bytes(Path(key).read_bytes())
        os.chmod(self.key, 0o600)

    def argv(self):
        p = self.prefix
        return [NGINX, "-p", p, "-e", p / "error.log", "-c", p / "nginx.conf"]

    def reload_cmd(self):
        return " ".join(shlex.quote(str(a)) for a in self.argv()) + \
            " -s reload"

    def start(self):
        p = self.prefix
        temps = "".join(f"    {t}_temp_path {p}/{t}_temp;\n" for t in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (p / "nginx.conf").write_text(
            f"pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n"
            "worker_processes 1;\nevents { worker_connections 64; }\n"
            "http {\n    access_log off;\n" + temps +
            "    server {\n"
            f"        listen 127.0.0.1:{self.port} ssl;\n"
            f"        ssl_certificate {self.crt};\n"
            f"        ssl_certificate_key {self.key};\n"
            "        location / { return 200 \"ok\\n\"; }\n"
            "    }\n}\n")
        must(self.argv() + ["-t", "-q"], "nginx -t")
        self.proc = subprocess.Popen(
            [str(a) for a in self.argv()] + ["-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(p / "stderr", "wb"))
        wait_for(lambda: self.proc.poll() is None and port_open(self.port),
                 10, "nginx", detail=lambda: (p / "error.log").read_text())
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


@pytest.fixture
def site(tmp_path, pki):
    s = Site(tmp_path)
    crt, key = pki.leaf("old", 5)
    s.install(crt, key)
    s.start()
    yield s
    s.stop()


def renew_script(tmp_path, crt, key, name="renew.sh", extra=""):
    """A renew command: installs crt/key as the live files."""
    script = tmp_path / name
    script.write_text("#!/bin/sh\nset -e\n"
                      f"cp {crt} \"$OPSD_CERT_PATH\"\n"
                      f"cp {key} \"$OPSD_CERT_KEY\"\n" + extra)
    script.chmod(0o755)
    return script


def cert_conf(site, pki, renew=None, on_renew=None, extra="",
              confirm="30s"):
    """A reload confirms as soon as nginx serves the new certificate;
    confirm_timeout only bounds a reload that never comes."""
    body = ("[cert web]\n"
            f"path = {site.crt}\n"
            f"key = {site.key}\n"
            f"ca_file = {pki.ca}\n"
            f"served_at = 127.0.0.1:{site.port}\n"
            "servername = localhost\n"
            f"confirm_timeout = {confirm}\n")
    if renew is not None:
        body += f"renew = {renew}\n"
    if on_renew is not None:
        body += f"on_renew = {on_renew}\n"
    return body + extra


def op_done(d, kind="cert.renew", timeout=30):
    def done():
        ops = d.rpc("op.list", {"kind": kind})["ops"]
        fin = [o for o in ops if o["state"] != "running"]
        return fin[0] if fin else None
    return wait_for(done, timeout, f"a finished {kind} op",
                    detail=lambda: d.log()[-4000:])


# --- the watch ---------------------------------------------------------------------

def test_cert_watch_expiry_served_and_metrics(opsd_launcher, site, pki):
    d = opsd_launcher(cert_conf(site, pki))
    ev = d.wait_event("cert.expiring")[0]
    assert ev["cert"] == "web" and ev["sha256"] == sha256_of(site.crt), ev
    show = wait_for(lambda: (lambda s: s if s["checked_at"] else None)(
        d.rpc("cert.show", {"name": "web"})), 10, "the first check")
    assert show["state"] == "expiring", show
    assert show["served_matches"] is True, show
    assert show["served"][0]["matches"] is True, show
    assert show["served"][0]["sha256"] == sha256_of(site.crt)
    assert "localhost" in show["names"] and "127.0.0.1" in show["names"]
    assert show["key_type"] == "EC" and show["key_bits"] == 256
    assert 4.5 < show["days_left"] <= 5.0, show
    assert show["next_renewal"] is None  # no renew command

    m = parse_metrics(d.metrics())
    nb = must(["openssl", "x509", "-in", site.crt, "-noout", "-enddate"])
    assert metric_value(m, "opsd_cert_expiry_timestamp_seconds",
                        cert="web") == show["not_after_unix"], nb
    assert metric_value(m, "opsd_cert_served_matches", cert="web",
                        endpoint=f"127.0.0.1:{site.port}") == 1
    assert metric_value(m, "opsd_cert_renewals_total", cert="web",
                        result="ok") == 0

    rc, out, err = d.cli("cert", "list")
    assert rc == 0, err
    assert "web" in out and "yes" in out and "expiring" in out, out
    rc, out, err = d.cli("cert", "show", "web")
    assert rc == 0 and f"127.0.0.1:{site.port}" in out, out
    # check: the verdict is the exit code (expiring is not ok)
    rc, out, err = d.cli("cert", "check", "web")
    assert rc == 1 and "expiring" in out, (rc, out, err)
    h = d.rpc("opsd.health")
    assert any("cert web expiring" in p for p in h["problems"]), h


def test_cert_served_differs_without_renewal(opsd_launcher, site, pki,
                                             tmp_path):
    """Someone replaced the file and forgot the reload: the check says
    so, and a reload of nginx makes it go away."""
    crt, key = pki.leaf("other", 60)
    d = opsd_launcher(cert_conf(site, pki))
    d.wait_event("cert.expiring")
    site.install(crt, key)
    r = d.rpc("cert.check", {"name": "web"})
    assert r["served_matches"] is False and r["state"] == "differs", r
    assert "serves" in r["served"][0]["error"], r
    ev = d.wait_event("cert.served_differs")[0]
    assert "DIFFERS" in ev["msg"], ev
    must(site.reload_cmd().split())  # nginx -s reload

    def matches():
        r = d.rpc("cert.check", {"name": "web"})
        return r if r["served_matches"] else None
    r = wait_for(matches, 10, "nginx to serve the new certificate")
    assert r["state"] == "ok", r
    assert len(d.events("cert.served_differs")) == 2
    m = parse_metrics(d.metrics())
    assert metric_value(m, "opsd_cert_served_matches", cert="web",
                        endpoint=f"127.0.0.1:{site.port}") == 1


def test_cert_unreadable_file(opsd_launcher, tmp_path, site, pki):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n"
                   "-----END CERTIFICATE-----\n")
    d = opsd_launcher(f"[cert bad]\npath = {bad}\n")
    ev = d.wait_event("cert.unreadable")[0]
    assert "UNUSABLE" in ev["msg"], ev
    r = d.rpc("cert.show", {"name": "bad"})
    assert r["state"] == "unreadable" and "file_error" in r, r
    # a key that is not the certificate's
    _, otherkey = pki.leaf("k", 30)
    d2 = opsd_launcher(f"[cert wrongkey]\npath = {site.crt}\n"
                       f"key = {otherkey}\n")
    d2.wait_event("cert.unreadable")
    r = d2.rpc("cert.show", {"name": "wrongkey"})
    assert "does not belong" in r["file_error"], r


# --- renewal -----------------------------------------------------------------------

def test_cert_renewal_reloads_and_confirms(opsd_launcher, site, pki,
                                           tmp_path):
    new_crt, new_key = pki.leaf("new", 90)
    script = renew_script(tmp_path, new_crt, new_key)
    # renew_days 30: the 5-day leaf is due at the first check
    d = opsd_launcher(cert_conf(site, pki, renew=script,
                                on_renew=site.reload_cmd(),
                                extra="renew_days = 30\n"))
    op = op_done(d)
    assert op["state"] == "ok", op
    steps = [s["name"] for s in d.rpc("op.show", {"id": op["id"]})["steps"]]
    assert steps == ["backup", "renew", "validate", "on_renew", "confirm"], \
        steps
    ev = d.wait_event("cert.renewed")[0]
    assert ev["sha256"] == sha256_of(new_crt), ev
    assert served_sha256(site.port) == sha256_of(new_crt)
    show = d.rpc("cert.show", {"name": "web"})
    assert show["served_matches"] is True and show["state"] == "ok", show
    assert show["renewals"]["ok"] == 1 and show["last_result"]["result"] \
        == "ok", show
    m = parse_metrics(d.metrics())
    assert metric_value(m, "opsd_cert_renewals_total", cert="web",
                        result="ok") == 1
    # the saved copies are gone once the renewal is done
    assert not list((d.state_dir / "certs").glob("*.prev"))
    assert not d.events("cert.served_differs")


def test_cert_renew_follow_manual(opsd_launcher, site, pki, tmp_path):
    new_crt, new_key = pki.leaf("new", 90)
    script = renew_script(tmp_path, new_crt, new_key)
    # not due (renew_days 1 of a 5-day leaf): only by hand
    d = opsd_launcher(cert_conf(site, pki, renew=script,
                                on_renew=site.reload_cmd(),
                                extra="renew_days = 1\n"))
    d.wait_event("cert.expiring")
    rc, out, err = d.cli("cert", "renew", "web", "--follow")
    assert rc == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith("renewal of web started: op "), out
    assert [ln.split()[1] for ln in lines[1:-1]] == [
        "backup", "renew", "validate", "on_renew", "confirm"], out
    assert lines[-1] == "web: ok", out


def test_cert_forgotten_reload_alerts(opsd_launcher, site, pki, tmp_path,
                                      webhook_rx):
    """on_renew that does not reload: the file is new, nginx serves the
    old one, and the confirm step says so."""
    new_crt, new_key = pki.leaf("new", 90)
    script = renew_script(tmp_path, new_crt, new_key)
    d = opsd_launcher(
        f"[alert ops]\ntype = webhook\nurl = {webhook_rx.url}\n\n" +
        cert_conf(site, pki, renew=script, on_renew="true",
                  extra="renew_days = 30\nalert = ops\n", confirm="2s"))
    op = op_done(d)
    assert op["state"] == "failed", op
    assert "served certificate differs from the file" in op["error"], op
    ev = d.wait_event("cert.served_differs")[0]
    assert "DIFFERS" in ev["msg"], ev
    ev = d.wait_event("cert.renewal_failed")[0]
    assert "confirm" in ev["msg"], ev
    # the new certificate stays in the file: it is valid
    assert sha256_of(site.crt) == sha256_of(new_crt)
    assert served_sha256(site.port) != sha256_of(new_crt)
    rc, out, err = d.cli("cert", "list")
    assert "NO" in out and "differs" in out, out
    webhook_rx.wait(lambda p: "cert.served" in json.dumps(p.get("json")))
    m = parse_metrics(d.metrics())
    assert metric_value(m, "opsd_cert_served_matches", cert="web",
                        endpoint=f"127.0.0.1:{site.port}") == 0
    assert metric_value(m, "opsd_cert_renewals_total", cert="web",
                        result="failed") == 1


@pytest.mark.parametrize("case", ["garbage", "wrong_key", "names",
                                  "untrusted"])
def test_cert_bad_renewal_keeps_old(opsd_launcher, site, pki, tmp_path,
                                    case):
    """A renew command that writes something unusable: validate fails,
    the old files are put back and nginx keeps the old certificate."""
    old_crt = site.crt.read_bytes()
    old_key = site.key.read_bytes()
    if case == "garbage":
        g = tmp_path / "garbage.pem"
        g.write_text("this is not a certificate\n")
        script = renew_script(tmp_path, g, site.key.with_name("x"),
                              extra="")
        script.write_text(f"#!/bin/sh\ncp {g} \"$OPSD_CERT_PATH\"\n")
        want = "unusable"
    elif case == "wrong_key":
        crt, _ = pki.leaf("new", 90)
        _, other = pki.leaf("other", 90)
        script = renew_script(tmp_path, crt, other)
        want = "does not belong"
    elif case == "names":
        crt, key = pki.leaf("new", 90, sans="DNS:elsewhere.example")
        script = renew_script(tmp_path, crt, key)
        want = "does not cover the name"
    else:
        stranger = Pki(tmp_path / "stranger")
        crt, key = stranger.leaf("new", 90)
        script = renew_script(tmp_path, crt, key)
        want = "does not verify"
    d = opsd_launcher(cert_conf(site, pki, renew=script,
                                on_renew=site.reload_cmd(),
                                extra="renew_days = 30\n"))
    op = op_done(d)
    assert op["state"] == "rolled_back", op
    assert want in op["error"], op
    assert site.crt.read_bytes() == old_crt
    assert site.key.read_bytes() == old_key
    ev = d.wait_event("cert.renewal_failed")[0]
    assert "rolled back" in ev["msg"] and want in ev["error"], ev
    show = d.rpc("cert.show", {"name": "web"})
    assert show["renewals"]["rolled_back"] == 1, show
    assert show["sha256"] == sha256_of(site.crt)


def test_cert_renew_command_fails(opsd_launcher, site, pki, tmp_path):
    d = opsd_launcher(cert_conf(site, pki, renew="echo no ACME >&2; exit 3",
                                extra="renew_days = 30\n"))
    op = op_done(d)
    assert op["state"] == "failed", op
    assert "exited with status 3" in op["error"] and "no ACME" in \
        op["error"], op
    ev = d.wait_event("cert.renewal_failed")[0]
    assert "nothing changed" in ev["msg"], ev
    rc, out, err = d.cli("cert", "renew", "web", "--follow")
    assert rc == 1 and "web: failed at renew" in out, out


def test_cert_renew_unchanged_file_fails(opsd_launcher, site, pki):
    d = opsd_launcher(cert_conf(site, pki, renew="true",
                                extra="renew_days = 30\n"))
    op = op_done(d)
    assert op["state"] == "failed" and "unchanged" in op["error"], op


def test_cert_renew_errors(opsd_launcher, site, pki):
    d = opsd_launcher(cert_conf(site, pki))
    rc, out, err = d.cli("cert", "renew", "web")
    assert rc == 1 and "no renew command" in err, (out, err)
    rc, out, err = d.cli("cert", "show", "nope")
    assert rc == 1 and "no cert named 'nope'" in err, err


# --- config --------------------------------------------------------------------------

@pytest.mark.parametrize("line,message", [
    ("served_at = localhost", "has no port"),
    ("served_at = ftp://x:21", "only https:// and postgres://"),
    ("served_at = 127.0.0.1:99999", "bad port"),
    ("on_renew = true", "there is no renew command"),
    ("alert = nowhere", "unknown alert route 'nowhere'"),
    ("schedule = 61 * * * *", "schedule"),
])
def test_cert_config_errors(tmp_path, line, message):
    crt = tmp_path / "c.pem"
    crt.write_text("")
    rc, out, err, _ = check_config(
        f"[opsd]\nsocket = {tmp_path}/s\nstate_dir = {tmp_path}/st\n\n"
        f"[cert x]\npath = {crt}\n{line}\n", tmp_path)
    assert rc != 0 and message in err, err


def test_cert_config_endpoints_accepted(tmp_path):
    crt = tmp_path / "c.pem"
    crt.write_text("")
    rc, out, err, _ = check_config(
        f"[opsd]\nsocket = {tmp_path}/s\nstate_dir = {tmp_path}/st\n\n"
        f"[cert x]\npath = {crt}\nserved_at = 127.0.0.1:443\n"
        "served_at = [::1]:8443\nserved_at = https://example.org/health\n"
        "served_at = postgres://db.internal\n", tmp_path)
    assert rc == 0, err


# --- a crash at every step ----------------------------------------------------------

STEPS = ["backup", "renew", "validate", "on_renew", "confirm"]
CASES = [(s, a) for s in STEPS for a in (False, True)]


def expect_after_crash(step, after):
    """(op state, the new certificate in place) after the restart."""
    if step == "backup":
        return "rolled_back", False       # the renew command never ran
    if step == "renew" and not after:
        return "failed", False            # it never ran: file unchanged
    return "ok", True                     # validated again, reloaded again


@pytest.mark.parametrize("step,after", CASES,
                         ids=[f"{s}{':after' if a else ''}" for s, a in CASES])
def test_cert_renew_crash_at_every_step(opsd_launcher, site, pki, tmp_path,
                                        monkeypatch, step, after):
    old = site.crt.read_bytes()
    new_crt, new_key = pki.leaf("new", 90)
    script = renew_script(tmp_path, new_crt, new_key)
    fault = f"cert.renew:{step}" + (":after" if after else "")
    # renew_days 1: not due on its own, before or after the crash
    d = opsd_launcher(cert_conf(site, pki, renew=script,
                                on_renew=site.reload_cmd(),
                                extra="renew_days = 1\n"), start=False)
    monkeypatch.setenv("OPSD_FAULT", fault)
    d.start()
    monkeypatch.delenv("OPSD_FAULT")
    d.wait_event("cert.expiring")
    d.cli("cert", "renew", "web")
    try:
        rc = d.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opsd did not exit at {fault}:\n"
                             f"{d.log()[-4000:]}")
    d.stop()
    assert rc == 77, d.log()[-3000:]
    left = sorted(d.state_dir.glob("op-*.json"))
    assert len(left) == 1, left
    op_id = json.loads(left[0].read_text())["id"]

    d.start()
    state, renewed = expect_after_crash(step, after)

    def done():
        for o in d.rpc("op.list", {"kind": "cert.renew"})["ops"]:
            if o["id"] == op_id and o["state"] != "running":
                return o
        return None
    o = wait_for(done, 30, f"op {op_id} to finish",
                 detail=lambda: d.log()[-4000:])
    assert o["state"] == state, (fault, o)
    assert o.get("recovered") is True, o
    assert d.wait_event("cert.recovered")
    assert not list(d.state_dir.glob("op-*.json"))
    if renewed:
        assert sha256_of(site.crt) == sha256_of(new_crt)
        assert served_sha256(site.port) == sha256_of(new_crt)
        show = d.rpc("cert.check", {"name": "web"})
        assert show["served_matches"] is True, show
    else:
        assert site.crt.read_bytes() == old
    # the next renewal works
    newer_crt, newer_key = pki.leaf("newer", 90)
    renew_script(tmp_path, newer_crt, newer_key)
    rc, out, err = d.cli("cert", "renew", "web", "--follow")
    assert rc == 0, (out, err)
    assert sha256_of(site.crt) == sha256_of(newer_crt)


# --- PostgreSQL: STARTTLS --------------------------------------------------------------

class SslPostgres:
    """A PostgreSQL of its own with ssl = on, its certificate and key in
    the data directory (owned by postgres, as the server requires)."""

    def __init__(self, pki):
        from svc import Postgres
        self.pg = Postgres()
        self.pki = pki

    def setup(self):
        import shutil
        pg = self.pg
        crt, key = self.pki.leaf("pg", 5)
        shutil.chown(pg.dir, "postgres", "postgres")
        os.chmod(pg.dir, 0o700)
        pg._as_pg(f"{_pgbin()}/initdb -D {pg.data} -U postgres "
                  "--auth-local=peer --auth-host=scram-sha-256 -E UTF8 "
                  "--locale=C.UTF-8 -N >/dev/null")
        self.crt = pg.data / "server.crt"
        self.key = pg.data / "server.key"
        self.install(crt, key)
        with open(pg.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {pg.port}\n"
                    f"unix_socket_directories = '{pg.dir}'\nfsync = off\n"
                    "ssl = on\nssl_cert_file = 'server.crt'\n"
                    "ssl_key_file = 'server.key'\nmax_connections = 20\n"
                    "shared_buffers = 16MB\n")
        pg.start()
        return self

    def install(self, crt, key):
        import shutil
        for src, dst in ((crt, self.crt), (key, self.key)):
            dst.write_bytes(Path(src).read_bytes())
            shutil.chown(dst, "postgres", "postgres")
            os.chmod(dst, 0o600)

    def reload_cmd(self):
        return (f"su postgres -s /bin/sh -c '{_pgbin()}/pg_ctl -D "
                f"{self.pg.data} reload'")


def _pgbin():
    from svc import PGBIN
    return PGBIN


@pytest.fixture
def ssl_pg(pki):
    s = SslPostgres(pki)
    try:
        yield s.setup()
    finally:
        s.pg.cleanup()


def test_cert_postgres_starttls_renewal(opsd_launcher, ssl_pg, pki,
                                        tmp_path):
    new_crt, new_key = pki.leaf("pgnew", 90)
    script = tmp_path / "renew-pg.sh"
    # the server wants its files owned by postgres
    script.write_text("#!/bin/sh\nset -e\n"
                      f"cp {new_crt} \"$OPSD_CERT_PATH\"\n"
                      f"cp {new_key} \"$OPSD_CERT_KEY\"\n"
                      "chown postgres:postgres \"$OPSD_CERT_PATH\" "
                      "\"$OPSD_CERT_KEY\"\n")
    script.chmod(0o755)
    ep = f"postgres://127.0.0.1:{ssl_pg.pg.port}"
    d = opsd_launcher(f"[cert pg]\npath = {ssl_pg.crt}\nkey = {ssl_pg.key}\n"
                      f"ca_file = {pki.ca}\nserved_at = {ep}\n"
                      f"renew = {script}\non_renew = {ssl_pg.reload_cmd()}\n"
                      "renew_days = 1\nconfirm_timeout = 10s\n")
    r = d.rpc("cert.check", {"name": "pg"})
    assert r["served_matches"] is True, r
    assert r["served"][0]["sha256"] == sha256_of(ssl_pg.crt), r
    rc, out, err = d.cli("cert", "renew", "pg", "--follow")
    assert rc == 0 and out.splitlines()[-1] == "pg: ok", (out, err)
    r = d.rpc("cert.show", {"name": "pg"})
    assert r["served"][0]["sha256"] == sha256_of(new_crt), r
    assert r["served_matches"] is True, r


def test_cert_postgres_without_ssl(opsd_launcher, pg_up, site, tmp_path):
    d = opsd_launcher(f"[cert pg]\npath = {site.crt}\n"
                      f"served_at = postgres://127.0.0.1:{pg_up.port}\n")
    r = d.rpc("cert.check", {"name": "pg"})
    assert r["served_matches"] is False, r
    assert "does not offer TLS" in r["served"][0]["error"], r
    # a port where nothing listens: an error, not a hang
    port = free_port()
    d2 = opsd_launcher(f"[cert x]\npath = {site.crt}\n"
                       f"served_at = 127.0.0.1:{port}\ntimeout = 2s\n"
                       "warn_days = 1\n")
    r = d2.rpc("cert.check", {"name": "x"})
    # could not check is not "differs": unknown, no alert
    assert r["served_matches"] is None and "connect" in \
        r["served"][0]["error"], r
    assert r["served"][0]["matches"] is None, r
    assert r["served"][0]["answered"] is False, r
    assert r["state"] == "unreachable", r
    ev = d2.wait_event("cert.served_unchecked")[0]
    assert "could NOT BE CHECKED" in ev["msg"] and "connect" in \
        ev["error"], ev
    assert not d2.events("cert.served_differs")
    m = parse_metrics(d2.metrics())
    assert metric_value(m, "opsd_cert_served_answered", cert="x",
                        endpoint=f"127.0.0.1:{port}") == 0, m
    assert metric_value(m, "opsd_cert_served_matches", cert="x",
                        endpoint=f"127.0.0.1:{port}") is None, m
    h = d2.rpc("opsd.health")
    assert any("could not be checked" in p for p in h["problems"]), h


def test_cert_overdue_without_renew_command(opsd_launcher, site, pki):
    """Renewed outside opsd (a certbot timer): when the certificate is
    still the old one two days after it was due, that timer stopped."""
    d = opsd_launcher(cert_conf(site, pki, extra="renew_days = 30\n"))
    ev = d.wait_event("cert.overdue")[0]
    assert "OVERDUE" in ev["msg"], ev
    r = d.rpc("cert.check", {"name": "web"})
    # expiring comes before overdue in the state word
    assert r["state"] == "expiring", r
    h = d.rpc("opsd.health")
    assert any("cert web" in p for p in h["problems"]), h
