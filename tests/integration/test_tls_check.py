"""
opsd-cli tls check against a real nginx configured well (TLS 1.2 and
1.3, Mozilla's intermediate suites, HSTS for two years, the security
headers, a redirect on the HTTP port) and then badly, one thing at a
time, each with the grade and the finding the rating guide gives it; and
against PostgreSQL through its SSLRequest.
"""
import json
import subprocess
from pathlib import Path

import pytest

from svc import NGINX, free_port, must, port_open, wait_for  # noqa: E402
from test_cert import SslPostgres  # noqa: E402

pytest_plugins = ["svc"]

MOZILLA = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
HEADERS = {
    "Strict-Transport-Security": '"max-age=63072000; includeSubDomains"',
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "\"default-src 'self'\"",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": '"camera=(), microphone=()"',
}


class Chain:
    """root -> intermediate -> leaves, made with the openssl tool."""

    def __init__(self, d):
        self.d = Path(d)
        self.d.mkdir()
        self.root = self.d / "root.crt"
        self._ec(self.d / "root.key")
        must(["openssl", "req", "-x509", "-new", "-key", self.d / "root.key",
              "-out", self.root, "-days", "3650", "-subj",
              "/CN=opsd grader test root"])
        self._ec(self.d / "int.key")
        (self.d / "int.ext").write_text(
            "basicConstraints = critical, CA:TRUE, pathlen:0\n"
            "keyUsage = critical, keyCertSign, cRLSign\n")
        must(["openssl", "req", "-new", "-key", self.d / "int.key", "-out",
              self.d / "int.csr", "-subj", "/CN=opsd grader test int"])
        self.inter = self.d / "int.crt"
        must(["openssl", "x509", "-req", "-in", self.d / "int.csr", "-CA",
              self.root, "-CAkey", self.d / "root.key", "-set_serial", "2",
              "-days", "3650", "-extfile", self.d / "int.ext", "-out",
              self.inter])

    @staticmethod
    def _ec(path):
        must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-out", path])

    def leaf(self, tag, days=90, rsa_bits=None):
        """(fullchain, leaf only, key)"""
        key = self.d / f"{tag}.key"
        if rsa_bits:
            must(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                  f"rsa_keygen_bits:{rsa_bits}", "-out", key])
        else:
            self._ec(key)
        ext = self.d / f"{tag}.ext"
        ext.write_text("basicConstraints = critical, CA:FALSE\n"
                       "extendedKeyUsage = serverAuth\n"
                       "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
                       "authorityInfoAccess = caIssuers;"
                       "URI:http://127.0.0.1/int.crt\n")
        csr = self.d / f"{tag}.csr"
        must(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj",
              "/CN=localhost"])
        leaf = self.d / f"{tag}.crt"
        must(["openssl", "x509", "-req", "-in", csr, "-CA", self.inter,
              "-CAkey", self.d / "int.key", "-set_serial", "77", "-days",
              str(days), "-extfile", ext, "-out", leaf])
        full = self.d / f"{tag}.full.crt"
        full.write_bytes(leaf.read_bytes() + self.inter.read_bytes())
        return full, leaf, key


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return Chain(tmp_path_factory.mktemp("grader") / "pki")


class Web:
    def __init__(self, d):
        self.p = Path(d) / "nginx"
        self.p.mkdir()
        self.https = free_port()
        self.http = free_port()
        self.proc = None

    def start(self, crt, key, protocols="TLSv1.2 TLSv1.3", ciphers=MOZILLA,
              headers=HEADERS, redirect=True):
        p = self.p
        temps = "".join(f"    {t}_temp_path {p}/{t}_temp;\n" for t in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        adds = "".join(f"        add_header {k} {v} always;\n"
                       for k, v in headers.items())
        plain = (f"return 301 https://localhost:{self.https}$request_uri;"
                 if redirect else 'return 200 "plain\\n";')
        (p / "nginx.conf").write_text(
            f"pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            "http {\n    access_log off;\n    server_tokens off;\n" + temps +
            "    server {\n"
            f"        listen 127.0.0.1:{self.https} ssl;\n"
            f"        ssl_certificate {crt};\n"
            f"        ssl_certificate_key {key};\n"
            f"        ssl_protocols {protocols};\n"
            f"        ssl_ciphers '{ciphers}';\n"
            "        ssl_prefer_server_ciphers off;\n" + adds +
            "        location / { return 200 \"ok\\n\"; }\n"
            "    }\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.http};\n"
            f"        location / {{ {plain} }}\n"
            "    }\n}\n")
        argv = [NGINX, "-p", p, "-e", p / "error.log", "-c", p / "nginx.conf"]
        must(argv + ["-t", "-q"], "nginx -t")
        self.proc = subprocess.Popen(
            [str(a) for a in argv] + ["-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(p / "stderr", "wb"))
        wait_for(lambda: self.proc.poll() is None and port_open(self.https)
                 and port_open(self.http), 10, "nginx",
                 detail=lambda: (p / "error.log").read_text())
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def web(tmp_path):
    w = Web(tmp_path)
    yield w
    w.stop()


@pytest.fixture
def grader(opsd_launcher):
    return opsd_launcher("")


def check(d, web, chain, servername="localhost", *extra, ok=(0, 1)):
    rc, out, err = d.cli("--json", "tls", "check", f"127.0.0.1:{web.https}",
                         "--servername", servername, "--ca", str(chain.root),
                         "--http-port", str(web.http), *extra, timeout=60)
    assert rc in ok, (rc, out, err)
    return json.loads(out)


def ids(r):
    return {f["id"] for f in r["findings"] if f["severity"] != "info"}


def test_tls_check_good_nginx_is_a_plus(grader, web, chain):
    full, _, key = chain.leaf("good")
    web.start(full, key)
    r = check(grader, web, chain)
    assert r["grade"] == "A+", json.dumps(r, indent=1)
    assert r["protocols"]["TLSv1.2"] == "yes"
    assert r["protocols"]["TLSv1.3"] == "yes"
    assert r["protocols"]["TLSv1.0"] == "no"
    assert r["protocols"]["TLSv1.1"] == "no"
    assert r["protocols"]["SSLv3"] in ("no", "could not test")
    names = {c["name"] for c in r["ciphers"]}
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in names, names
    assert "TLS_AES_256_GCM_SHA384" in names, names
    # an EC key: no RSA suite is chosen, every suite has FS and AEAD
    assert all(c["forward_secrecy"] and c["aead"] for c in r["ciphers"])
    assert r["certificate"]["trusted"] and r["certificate"]["name_matches"]
    assert r["http"]["hsts_max_age"] == 63072000
    assert r["http"]["hsts_on_error"] and r["http"]["redirect_ok"], r["http"]
    assert not ids(r), r["findings"]
    # the human form and the gate
    rc, out, err = grader.cli("tls", "check", f"127.0.0.1:{web.https}",
                              "--servername", "localhost", "--ca",
                              str(chain.root), "--http-port", str(web.http),
                              "--min-grade", "A+", timeout=60)
    assert rc == 0 and "grade A+" in out, (out, err)


@pytest.mark.parametrize("case,grade,finding", [
    ("tls10", "B", "tls10_11"),
    ("no_hsts", "A-", "no_hsts"),
    ("hsts_1day", "A", "hsts_short"),
    ("rsa1024", "B", "key_size"),
    ("expired", "T", "expired"),
    ("wrong_name", "M", "name_mismatch"),
    ("no_intermediate", "B", "incomplete_chain"),
    ("no_redirect", "A", "no_redirect"),
    ("no_headers", "A", "x_frame_options"),
])
def test_tls_check_bad_nginx(grader, web, chain, case, grade, finding):
    full, leaf, key = chain.leaf("bad")
    kw = {}
    servername = "localhost"
    if case == "tls10":
        kw = dict(protocols="TLSv1 TLSv1.2 TLSv1.3",
                  ciphers=MOZILLA + ":ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    elif case == "no_hsts":
        kw = dict(headers={k: v for k, v in HEADERS.items()
                           if k != "Strict-Transport-Security"})
    elif case == "hsts_1day":
        kw = dict(headers=dict(HEADERS, **{
            "Strict-Transport-Security": '"max-age=86400"'}))
    elif case == "rsa1024":
        full, leaf, key = chain.leaf("rsa", rsa_bits=1024)
        kw = dict(ciphers=MOZILLA + ":@SECLEVEL=0")
    elif case == "expired":
        full, leaf, key = chain.leaf("old", days=-1)
    elif case == "wrong_name":
        servername = "other.example"
    elif case == "no_intermediate":
        full = leaf
    elif case == "no_redirect":
        kw = dict(redirect=False)
    elif case == "no_headers":
        kw = dict(headers={"Strict-Transport-Security":
                           HEADERS["Strict-Transport-Security"]})
    web.start(full, key, **kw)
    r = check(grader, web, chain, servername)
    assert r["grade"] == grade, (case, r["grade"], r["findings"])
    assert finding in ids(r), (case, r["findings"])
    f = [x for x in r["findings"] if x["id"] == finding][0]
    assert f["text"], f
    if case == "tls10":
        assert r["protocols"]["TLSv1.0"] == "yes", r["protocols"]
        assert f["fix"].startswith("nginx: ssl_protocols"), f
    # below the gate: exit 1
    rc, out, err = grader.cli("tls", "check", f"127.0.0.1:{web.https}",
                              "--servername", servername, "--ca",
                              str(chain.root), "--http-port", str(web.http),
                              "--min-grade", "A+", timeout=60)
    assert rc == 1, (case, out, err)


def test_tls_check_postgres_starttls(grader, tmp_path):
    from test_cert import Pki
    pg = SslPostgres(Pki(tmp_path / "pki")).setup()
    try:
        rc, out, err = grader.cli("--json", "tls", "check",
                                  f"127.0.0.1:{pg.pg.port}", "--starttls",
                                  "postgres", "--servername", "localhost",
                                  "--ca", str(pg.pki.ca), timeout=60)
        assert rc == 0, (out, err)
        r = json.loads(out)
        # PostgreSQL 15's default ssl_min_protocol_version is TLSv1.2
        assert r["protocols"]["TLSv1.2"] == "yes", r
        assert r["protocols"]["TLSv1.0"] in ("no", "could not test"), r
        assert r["http"] is None, r
        assert r["certificate"]["trusted"], r["certificate"]
        assert r["grade"] in ("A", "A-", "A+"), r["findings"]
    finally:
        pg.pg.cleanup()


def test_tls_check_errors(grader):
    port = free_port()
    rc, out, err = grader.cli("--json", "tls", "check", f"127.0.0.1:{port}",
                              "--http-port", "0", timeout=60)
    assert rc == 0, (out, err)
    r = json.loads(out)
    assert r["grade"] == "F" and "no_tls" in ids(r), r
    rc, out, err = grader.cli("tls", "check", "nohost")
    assert rc == 1 and "no port" in err, err
    rc, out, err = grader.cli("tls", "check", "127.0.0.1:1", "--min-grade",
                              "Z")
    assert rc == 2, err


def test_tls_grade_probe_alerts_when_the_grade_drops(opsd_launcher, web,
                                                     chain):
    full, _, key = chain.leaf("probe")
    web.start(full, key, headers={k: v for k, v in HEADERS.items()
                                  if k != "Strict-Transport-Security"})
    d = opsd_launcher(
        f"[probe grade]\nkind = tls-grade\naddress = 127.0.0.1:{web.https}\n"
        f"servername = localhost\nca_file = {chain.root}\n"
        "min_grade = A\ninterval = 1h\nfall = 1\nrise = 1\n")
    rc, r = d.run_probe("grade")
    assert r["ok"] is False, r
    assert "grade A-, below A" in r["reason"], r
    assert "Strict-Transport-Security" in r["reason"], r
    d.wait_state("grade", "down", timeout=30)


def test_tls_grade_probe_config(tmp_path):
    from svc import check_config
    base = (f"[opsd]\nsocket = {tmp_path}/s\nstate_dir = {tmp_path}/st\n\n"
            "[probe g]\nkind = tls-grade\n")
    rc, out, err, _ = check_config(base + "address = h:443\n"
                                   "min_grade = Z\n", tmp_path)
    assert rc != 0 and "one of A+ A A- B C D E F" in err, err
    rc, out, err, _ = check_config(base + "address = nohost\n", tmp_path)
    assert rc != 0 and "is not host:port" in err, err
    rc, out, err, _ = check_config(base + "address = db:5432\n"
                                   "starttls = postgres\n", tmp_path)
    assert rc == 0, err
