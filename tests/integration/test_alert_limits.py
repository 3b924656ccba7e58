"""Alerts against text and receivers opsd does not control: a reason that
is not valid UTF-8, a reason that tries to add a mail header, and a
webhook that never answers while probes flap."""
import email.header
import os
import re
import socket
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import wait_for  # noqa: E402

pytest_plugins = ["svc"]

MULTI = "\u00e9\u20ac\U0001F600"        # 2, 3 and 4 bytes in UTF-8


def route(name, **keys):
    lines = [f"[alert {name}]"]
    for k, v in keys.items():
        for item in (v if isinstance(v, list) else [v]):
            lines.append(f"{k} = {item}")
    return "\n".join(lines) + "\n\n"


def script_probe(name, script, routes, **keys):
    keys.setdefault("interval", "200ms")
    keys.setdefault("rise", 1)
    keys.setdefault("fall", 1)
    lines = [f"[probe {name}]", "kind = exec", f"command = /bin/sh {script}",
             f"alert = {routes}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def write_script(path, body):
    path.write_bytes(body.encode())
    return path


def octal(text):
    """text as printf octal escapes: the script stays plain ASCII."""
    return "".join(f"\\{b:03o}" for b in text.encode())


def alive(d):
    assert d.proc.poll() is None, \
        f"opsd exited with {d.proc.returncode}:\n{d.log()[-3000:]}"
    assert d.rpc("opsd.status") is not None


def mail_route(smtp_sink, **keys):
    return route("mail", type="email", url=f"smtp://127.0.0.1:{smtp_sink.port}",
                 **{"from": "opsd@example.org", "to": "ops@example.org"},
                 **keys)


def decoded(part, charset):
    if isinstance(part, str):
        return part
    if charset in (None, "unknown-8bit"):     # raw bytes in the header
        charset = "utf-8"
    return part.decode(charset, "replace")


def mails_about(smtp_sink, name):
    out = []
    for m in smtp_sink.mails():
        subj = m["Subject"] or ""
        text = "".join(decoded(p, c)
                       for p, c in email.header.decode_header(subj))
        if name in text:
            out.append((m, text))
    return out


# --- 1: text that is not UTF-8 -----------------------------------------------

def test_reason_cut_inside_a_character(opsd_launcher, webhook_rx, smtp_sink,
                                       tmp_path):
    """The first line of an exec probe's output is cut at 199 bytes; 198
    ASCII bytes and then multi-byte characters put the cut inside one.
    Every route must still get a message, in valid UTF-8."""
    name = "utf8-" + os.urandom(3).hex()
    script = write_script(tmp_path / "out.sh",
                          "printf '%s'\n" % ("a" * 198) +
                          "i=0; while [ $i -lt 30 ]; do printf '%s'; "
                          "i=$((i+1)); done\nprintf '\\n'\nexit 1\n"
                          % octal(MULTI))
    base = f"http://127.0.0.1:{webhook_rx.port}"
    d = opsd_launcher(route("chat", type="webhook", url=f"{base}/slack",
                            format="slack") +
                      route("hook", type="webhook", url=f"{base}/json") +
                      mail_route(smtp_sink) +
                      script_probe(name, script, "chat\nalert = hook\n"
                                   "alert = mail"))
    slack = webhook_rx.wait(lambda p: p["path"] == "/slack", timeout=8)[0]
    hook = webhook_rx.wait(lambda p: p["path"] == "/json", timeout=8)[0]
    for post in (slack, hook):
        post["body"].decode("utf-8")        # strict: raises if not UTF-8
        assert post["json"] is not None, post["body"][:300]
    assert list(slack["json"]) == ["text"], slack["json"]
    assert name in slack["json"]["text"], slack["json"]
    doc = hook["json"]
    assert doc["name"] == name and doc["status"] == "firing", doc
    assert name in doc["message"], doc
    assert doc["reason"].startswith("a" * 198), doc["reason"]
    # the cut character is gone or replaced, never half there
    assert "\ufffd" not in doc["reason"][:198], doc["reason"]
    m, subject = wait_for(lambda: mails_about(smtp_sink, name), 8,
                          "the mail", detail=lambda: d.log()[-2000:])[0]
    assert "(null)" not in subject, subject
    body = m.get_payload(decode=True)
    body.decode("utf-8")
    assert ("a" * 198).encode() in body, body[:400]
    alive(d)
    assert d.events("alert.failed") == [], d.events("alert.failed")


# --- 2: e-mail headers ---------------------------------------------------------

OUR_HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version",
               "Content-Type", "Content-Transfer-Encoding", "X-Opsd-Status"]
SINK_HEADERS = ["X-Peer", "X-MailFrom", "X-RcptTo"]     # aiosmtpd's Mailbox


def test_mail_header_injection(opsd_launcher, smtp_sink, tmp_path):
    """A reason with CR, LF and a Bcc line (a server's reply quoted in
    it) stays inside the Subject; the non-ASCII Subject is RFC 2047."""
    name = "inject-" + os.urandom(3).hex()
    text = ("disk full on caf\u00e9 \u20ac\rBcc: x@example.com\t\x01"
            "\r\nBcc: y@example.com\n")
    script = write_script(tmp_path / "inj.sh",
                          f"printf '{octal(text)}'\nexit 3\n")
    d = opsd_launcher(mail_route(smtp_sink) +
                      script_probe(name, script, "mail"))
    m, subject = wait_for(lambda: mails_about(smtp_sink, name), 8,
                          "the mail", detail=lambda: d.log()[-2000:])[0]
    assert m.keys() == OUR_HEADERS + SINK_HEADERS, m.items()
    assert m.get_all("Bcc") is None, m.items()
    reason = d.probe(name)["last"]["reason"]
    host = socket.gethostname()
    want = f"[opsd] {host}: probe {name} is down: {reason}"
    want = re.sub(r"[\x00-\x1f\x7f]+", " ", want)
    assert subject == want, (subject, want)
    assert "caf\u00e9 \u20ac Bcc: x@example.com" in subject, subject
    raw = str(m["Subject"])
    assert "=?UTF-8?B?" in raw, raw
    words = re.findall(r"=\?[^?]+\?[BbQq]\?[^?]*\?=", raw)
    assert words and all(len(w) <= 75 for w in words), words
    assert all(ord(c) < 128 for c in raw), raw
    assert m["X-Opsd-Status"] == "firing", m.items()
    alive(d)


def test_mail_long_subject_is_folded(opsd_launcher, smtp_sink, tmp_path):
    """A long non-ASCII subject becomes several encoded words, each at
    most 75 characters, none splitting a character."""
    name = "fold-" + os.urandom(3).hex()
    text = MULTI * 20 + "\n"
    script = write_script(tmp_path / "long.sh",
                          f"printf '{octal(text)}'\nexit 1\n")
    d = opsd_launcher(mail_route(smtp_sink) +
                      script_probe(name, script, "mail"))
    m, subject = wait_for(lambda: mails_about(smtp_sink, name), 8,
                          "the mail", detail=lambda: d.log()[-2000:])[0]
    raw = str(m["Subject"])
    words = re.findall(r"=\?[^?]+\?[BbQq]\?[^?]*\?=", raw)
    assert len(words) > 1, raw
    assert all(len(w) <= 75 for w in words), words
    assert MULTI * 20 in subject, subject
    assert "\ufffd" not in subject, subject
    alive(d)


# --- 3: deliveries in flight -----------------------------------------------------

def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def flapping(name, counter):
    """Fails and passes by turns: each run flips the state."""
    return "\n".join([
        f"[probe {name}]", "kind = exec",
        f"command = c=$(cat {counter} 2>/dev/null || echo 0); "
        f"echo $((c + 1)) > {counter}; [ $((c % 2)) -eq 0 ]",
        "interval = 200ms", "rise = 1", "fall = 1", "alert = hook",
        "", ""])


def test_deliveries_bounded_when_webhook_hangs(opsd_launcher, silent_server,
                                               webhook_rx, tmp_path):
    hang = f"http://127.0.0.1:{silent_server.port}/hook"
    probes = "".join(flapping(f"flap{i}", tmp_path / f"c{i}")
                     for i in range(10))

    def config(url):
        return route("hook", type="webhook", url=url, timeout="2s",
                     retries=1, retry_delay="100ms") + probes
    d = opsd_launcher(config(hang))
    start = open_fds(d.pid)
    most = start
    t_end = time.monotonic() + 20
    while time.monotonic() < t_end:
        most = max(most, open_fds(d.pid))
        assert most < 60, f"{most} fds open (at the start: {start})"
        alive(d)
        time.sleep(0.25)
    dropped = d.events("alert.dropped")
    assert dropped, d.log()[-3000:]
    assert all(e.get("message_id") and e.get("route") == "hook"
               for e in dropped), dropped[:3]

    d.write(config(webhook_rx.url))
    rc, out, err = d.cli("reload")
    assert rc == 0, (rc, out, err)
    webhook_rx.wait(lambda p: (p["json"] or {}).get("name", "")
                    .startswith("flap"), count=10, timeout=10)
    alive(d)
