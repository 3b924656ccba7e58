"""
The status page: GET /status.json and GET / on the metrics listener of a
real opsd with probes up and down, a stale backup, a secret, an expiring
certificate and open alerts. The JSON is checked against opsd's own view
(probe.list, probe.history, backup.list) and the page against the JSON:
every string the page shows from the outside (a probe's reason here) is
escaped, times are in the daemon's zone with the zone named, and the
security headers are there. Also: status_page = no, basic auth, TLS.
"""
import base64
import datetime
import html
import html.parser
import http.client
import os
import re
import ssl

import pytest

pytest.register_assert_rewrite("svc", "status_svc")
from status_svc import (HOSTILE, get, items, stack_body,  # noqa: E402
                        status_json, wait_settled)
from svc import Webhook, must, wait_for  # noqa: E402

pytest_plugins = ["svc"]

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ZONE = "Asia/Kolkata"       # +05:30 all year: a conversion cannot hide


@pytest.fixture
def hook():
    w = Webhook()
    w.up()
    yield w
    w.down()


@pytest.fixture
def stack(opsd_launcher, tmp_path, hook, tls_certs, monkeypatch):
    monkeypatch.setenv("TZ", ZONE)
    d = opsd_launcher(stack_body(tmp_path, hook.url, tls_certs))
    d.doc = wait_settled(d)
    return d


class Text(html.parser.HTMLParser):
    """The page's text, its tags and their attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = []
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(body):
    p = Text()
    p.feed(body)
    p.close()
    return p


# --- /status.json -----------------------------------------------------------

def test_status_json_tells_what_opsd_knows(stack, tmp_path):
    doc = status_json(stack)
    assert doc["status"] == "critical", doc["status"]
    assert "probe gone down" in doc["problems"]
    assert "probe hostile down" in doc["problems"]
    assert any(p.startswith("backup nightly stale") for p in doc["problems"])
    # the same problems, in the same words, as opsd.health
    def agree():
        a = set(status_json(stack)["problems"])
        b = set(stack.rpc("opsd.health")["problems"])
        return (a, b) if a == b else None
    wait_for(agree, 5, "the page's problems to be opsd.health's",
             detail=lambda: (status_json(stack)["problems"],
                             stack.rpc("opsd.health")["problems"]))
    assert doc["counts"]["probe"] == {"ok": 1, "critical": 2, "warning": 0,
                                      "unknown": 0}, doc["counts"]
    assert doc["timezone"] == "IST" and doc["utc_offset"] == "+0530", doc
    assert ISO.match(doc["generated"])
    assert list(doc["sections"]) == ["alert", "probe", "secret", "backup",
                                     "cert", "operations"]

    probes = items(doc, "probe")
    view = stack.probes()
    for name in ("web", "gone", "hostile"):
        p = probes[name]
        assert p["state"] == view[name]["state"], (p, view[name])
        assert p["level"] == {"up": "ok", "down": "critical"}[p["state"]]
        assert ISO.match(p["since"]) and ISO.match(p["last_run"]), p
        assert isinstance(p["latency_ms"], (int, float))
        # the sparkline is the history ring (32 runs), oldest first
        assert 1 <= len(p["history"]) <= 32, p
    # one character a run: '+' passed, '-' failed
    assert set(probes["web"]["history"]) == {"+"}
    assert set(probes["gone"]["history"]) == {"-"}
    # the newest run is the last character
    newest = stack.history("hostile")[0]
    assert newest["ok"] is False and probes["hostile"]["history"][-1] == "-"
    assert probes["hostile"]["reason"] == HOSTILE + " (exited with status 1)"
    assert "refused" in probes["gone"]["reason"].lower(), probes["gone"]

    b = items(doc, "backup")["nightly"]
    assert b["stale"] is True and b["level"] == "critical", b
    assert b["newest_good"] == "-" and b["age"] == "no good backup yet"
    assert ISO.match(b["next_run"]) and b["uploaded"] == "off", b
    lst = stack.rpc("backup.list")["backups"][0]
    assert lst["next_run"] == b["next_run"]

    s = items(doc, "secret")["api_token"]
    assert s["version"] == 1 and s["state"] == "ok" and s["age"], s
    value = (tmp_path / "token").read_text().strip()
    assert len(value) >= 16
    assert value not in str(doc), "a secret value is on the status page"

    c = items(doc, "cert")["site"]
    assert c["state"] == "expiring" and c["level"] == "warning", c
    assert 4 < c["days_left"] < 5.1, c
    assert ISO.match(c["not_after"])

    alerts = doc["sections"]["alert"]["items"]
    fired = {(a["source"], a["object"]) for a in alerts}
    assert ("probe", "gone") in fired and ("backup.stale", "nightly") in \
        fired, alerts
    # the secret's first value was made by an op
    ops = doc["sections"]["operations"]["items"]
    assert [(o["kind"], o["object"], o["state"], o["level"]) for o in ops] \
        == [("secret.rotate", "api_token", "ok", "ok")], ops


# --- the HTML page ----------------------------------------------------------

def test_status_page_shows_the_json(stack):
    st, hdr, body = get(stack, "/")
    assert st == 200
    assert hdr["Content-Type"] == "text/html; charset=utf-8"
    doc = status_json(stack)
    page = parse(body)
    text = " ".join(page.text)
    # nothing but markup of the page's own: no script, no handler
    assert not [t for t, _ in page.tags if t in ("script", "img", "iframe",
                                                  "object", "form")], \
        [t for t, _ in page.tags]
    assert not [a for _, attrs in page.tags for a in attrs
                if a.startswith("on")]
    assert HOSTILE not in body
    assert html.escape(HOSTILE).replace("&#x27;", "&#39;") in body
    assert HOSTILE + " (exited with status 1)" in text, \
        "the reason, once unescaped, is not the reason"
    # summary first, then the sections in the JSON's order
    assert body.index("probe gone down") < body.index('id="probe"')
    ids = [a["id"] for t, a in page.tags if t == "section"]
    assert ids == ["summary"] + list(doc["sections"]), ids
    for p in doc["problems"]:
        assert p in text, p
    for name in ("web", "gone", "hostile", "nightly", "api_token", "site"):
        assert name in text, name
    # times in the host's zone (TZ here), the zone named
    assert "times in IST (UTC+0530)" in text, text[:300]
    since = items(doc, "probe")["gone"]["since"]
    local = (datetime.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ") +
             datetime.timedelta(hours=5, minutes=30))
    assert local.strftime("%Y-%m-%d %H:%M:%S IST") in text
    assert f'datetime="{since}"' in body
    # the sparkline: one glyph a result, failures apart
    spark = re.findall(r'<span class="spark"[^>]*>(.*?)</span></td>', body)
    assert len(spark) == 3, spark
    assert "s-bad" not in spark[0] and "s-ok" not in spark[1], spark
    assert "stale" in text and "expiring" in text


def test_status_security_headers(stack):
    for path in ("/", "/status.json"):
        st, h, _ = get(stack, path)
        assert st == 200
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and \
            "frame-ancestors 'none'" in csp, csp
        assert "unsafe-inline" not in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Cache-Control"] == "no-store"
        assert h["Strict-Transport-Security"] is None, "HSTS over http"
    # the stylesheets' hashes are what the CSP allows, and nothing else
    _, h, body = get(stack, "/")
    sheets = re.findall(r"<style>(.*?)</style>", body, re.S)
    assert len(sheets) == 2, len(sheets)
    import hashlib
    want = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest())
        .decode() + "'" for css in sheets)
    assert f"style-src {want};" in h["Content-Security-Policy"], \
        h["Content-Security-Policy"]
    # the narrow layout's labels come from the columns
    assert '#probe td:nth-child(1)::before{content:"name: "}' in sheets[1]
    # read-only: nothing but GET and HEAD
    for method in ("POST", "PUT", "DELETE"):
        c = http.client.HTTPConnection("127.0.0.1", stack.metrics_port,
                                       timeout=5)
        c.request(method, "/", body=b"x")
        assert c.getresponse().status == 405
        c.close()


def test_status_page_off(opsd_launcher):
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "[opsd]\n", "[opsd]\nstatus_page = no\n", 1))
    d.start()
    assert get(d, "/")[0] == 404
    assert get(d, "/status.json")[0] == 404
    assert get(d, "/metrics")[0] == 200
    assert get(d, "/healthz")[0] == 200


def test_status_page_behind_basic_auth(opsd_launcher, tmp_path):
    pw = "pw-" + os.urandom(8).hex()
    auth = tmp_path / "metrics.auth"
    auth.write_text(f"ops:{pw}\n")
    auth.chmod(0o600)
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "[opsd]\n", f"[opsd]\nmetrics_auth_file = {auth}\n", 1))
    d.start()
    good = {"Authorization": "Basic " +
            base64.b64encode(f"ops:{pw}".encode()).decode()}
    for path in ("/", "/status.json"):
        st, h, _ = get(d, path)
        assert st == 401 and h["WWW-Authenticate"] == 'Basic realm="opsd"'
        assert get(d, path, good)[0] == 200
    assert pw not in d.log()


def test_status_page_over_tls_grades_clean(opsd_launcher, tls_certs):
    """Served over TLS (the suite's CA-signed certificate), the page has
    HSTS, and opsd's own grader (tls.check, which also fetches a path that
    does not exist) finds nothing above information."""
    d = opsd_launcher(start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "[opsd]\n", f"[opsd]\nmetrics_tls_cert = {tls_certs.server_crt}\n"
        f"metrics_tls_key = {tls_certs.server_key}\n", 1))
    d.start()
    ctx = ssl.create_default_context(cafile=str(tls_certs.ca))
    for path in ("/", "/nothing-here"):
        c = http.client.HTTPSConnection("127.0.0.1", d.metrics_port,
                                        context=ctx, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        assert r.status == (200 if path == "/" else 404), (path, r.status)
        assert r.getheader("Strict-Transport-Security") == \
            "max-age=31536000", path
    assert "<h1>opsd on" in get_body(d, ctx)
    g = d.cli_json("tls", "check", f"127.0.0.1:{d.metrics_port}", "--ca",
                   str(tls_certs.ca))
    bad = [f for f in g["findings"] if f["severity"] != "info"]
    assert not bad, bad
    assert g["grade"].startswith("A"), g["grade"]
    h = g["http"]
    assert h["hsts"] and h["hsts_on_error"] and h["nosniff"] and \
        h["frame_protection"] and h["csp"] and h["permissions_policy"], h


def get_body(d, ctx):
    c = http.client.HTTPSConnection("127.0.0.1", d.metrics_port,
                                    context=ctx, timeout=5)
    c.request("GET", "/")
    body = c.getresponse().read().decode()
    c.close()
    return body


def test_status_page_without_subsystems(opsd_launcher):
    """An opsd with nothing configured: a summary and no operations."""
    d = opsd_launcher()
    doc = status_json(d)
    assert doc["status"] == "ok" and doc["problems"] == []
    assert list(doc["sections"]) == ["operations"]
    st, _, body = get(d, "/")
    assert st == 200 and "Nothing is down, stale or overdue." in body
    wait_for(lambda: get(d, "/")[0] == 200, 2, "a second page")
