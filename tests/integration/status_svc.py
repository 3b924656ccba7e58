"""
The daemon the status page tests look at (test_status.py, the Chromium
test in test_status_browser.py, bench/status): probes up and down, one of
them failing with a reason full of HTML, a backup that turns stale (no
PostgreSQL is needed for that: it is configured, never runs, and its
max_age passes), a secret, a certificate that is about to expire, and an
alert route that receives what fires.
"""
import json
import os
import urllib.error
import urllib.request

from svc import closed_port, wait_for

# What the failing probe's command prints: its reason, shown on the page.
HOSTILE = ("<script>alert('x')</script><img src=x onerror=alert(1)> "
           "& \"quoted\" 'single' </td></tr></table>")


def stack_body(tmp_path, hook_url, certs, nprobes_extra=0):
    """The config body of the stack (after [opsd])."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nprintf '%s\\n' " +
                   "'" + HOSTILE.replace("'", "'\\''") + "'\nexit 1\n")
    bad.chmod(0o755)
    pw = tmp_path / "db.pw"
    pw.write_text("unused\n")
    pw.chmod(0o600)
    body = (
        f"[alert hook]\ntype = webhook\nurl = {hook_url}\nrepeat = 2s\n\n"
        "[probe web]\nkind = exec\ncommand = true\ninterval = 300ms\n"
        "rise = 1\nfall = 1\n\n"
        f"[probe gone]\nkind = tcp\naddress = 127.0.0.1:{closed_port()}\n"
        "interval = 300ms\nrise = 1\nfall = 1\nalert = hook\n\n"
        f"[probe hostile]\nkind = exec\ncommand = {bad}\ninterval = 300ms\n"
        "rise = 1\nfall = 1\n\n"
        "[database main]\n"
        f"conninfo = host=127.0.0.1 port={closed_port()} user=backup "
        "dbname=app connect_timeout=2\n"
        f"password_file = {pw}\n\n"
        f"[backup nightly]\ndatabase = main\ndir = {tmp_path / 'bk'}\n"
        "schedule = 0 3 * * *\npg_bin_dir = /usr/lib/postgresql/15/bin\n"
        "persistent = no\nmax_age = 2s\nverify = never\nalert = hook\n\n"
        f"[secret api_token]\nkind = random\npath = {tmp_path / 'token'}\n\n"
        f"[cert site]\npath = {certs.short_crt}\nkey = {certs.short_key}\n"
        f"ca_file = {certs.ca}\n\n")
    for i in range(nprobes_extra):
        body += (f"[probe extra{i}]\nkind = exec\ncommand = true\n"
                 "interval = 1s\n\n")
    return body


def get(d, path, headers=None, timeout=10):
    """(status, headers, body) of GET path on d's metrics listener."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{d.metrics_port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def status_json(d):
    st, _, body = get(d, "/status.json")
    assert st == 200, f"/status.json answered {st}: {body[:300]}"
    return json.loads(body)


def items(doc, section):
    return {i.get("name") or i.get("id"): i
            for i in doc["sections"][section]["items"]}


def wait_settled(d):
    """Until the probes have their states and the backup is stale."""
    for name, state in (("web", "up"), ("gone", "down"),
                        ("hostile", "down")):
        d.wait_state(name, state)

    def stale():
        doc = status_json(d)
        b = items(doc, "backup").get("nightly")
        return doc if b and b["stale"] else None
    return wait_for(stale, 15, "backup nightly to be stale on /status.json",
                    interval=0.2)


def artifact_dir():
    """Where screenshots are kept: $OPSD_ARTIFACTS, or build/artifacts."""
    from svc import BUILD
    d = os.environ.get("OPSD_ARTIFACTS") or str(BUILD / "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d
