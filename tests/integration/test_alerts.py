"""Alert routes end to end: a probe changes state, opsd delivers to a real
webhook receiver (a Python HTTP server) or a real SMTP server (aiosmtpd),
with repeats, retries, the failure event and counters, and `opsd-cli alert
test`."""
import json
import secrets
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import (check_config, closed_port, metric_value,  # noqa: E402
                 parse_metrics, wait_for)

pytest_plugins = ["svc"]


def flag_probe(name, flag, routes, **keys):
    """An exec probe that is up while flag exists."""
    keys.setdefault("interval", "200ms")
    keys.setdefault("rise", 1)
    keys.setdefault("fall", 1)
    lines = [f"[probe {name}]", "kind = exec", f"command = test -e {flag}",
             f"alert = {routes}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def route(name, **keys):
    lines = [f"[alert {name}]"]
    for k, v in keys.items():
        for item in (v if isinstance(v, list) else [v]):
            lines.append(f"{k} = {item}")
    return "\n".join(lines) + "\n\n"


def unique(prefix):
    return f"{prefix}-{secrets.token_hex(3)}"


def firing(name):
    return lambda p: (p["json"] or {}).get("status") == "firing" and \
        p["json"].get("name") == name


def resolved(name):
    return lambda p: (p["json"] or {}).get("status") == "resolved" and \
        p["json"].get("name") == name


# --- webhooks ----------------------------------------------------------------

def test_webhook_firing_then_resolved(opsd_launcher, webhook_rx, tmp_path):
    flag = tmp_path / "ok"
    flag.touch()
    name = unique("api")
    d = opsd_launcher(route("hook", type="webhook", url=webhook_rx.url) +
                      flag_probe(name, flag, "hook"))
    d.wait_state(name, "up")
    time.sleep(0.3)
    assert webhook_rx.received() == [], \
        f"unknown -> up must not alert: {webhook_rx.received()}"

    flag.unlink()
    post = webhook_rx.wait(firing(name))[0]
    doc = post["json"]
    assert post["headers"].get("content-type") == "application/json", post
    assert doc["status"] == "firing" and doc["name"] == name, doc
    assert doc["type"] == "probe" and doc["event"] == "probe.state", doc
    assert doc["kind"] == "exec", doc
    assert doc["reason"], doc
    assert doc["state"] == "down" and doc["prev_state"] == "up", doc
    assert name in doc["message"] and doc["test"] is False, doc

    flag.touch()
    post = webhook_rx.wait(resolved(name))[0]
    doc = post["json"]
    assert doc["state"] == "up" and doc["prev_state"] == "down", doc
    assert doc["message"].startswith("RESOLVED"), doc
    assert isinstance(doc.get("firing_seconds"), int), doc
    # exactly one of each
    time.sleep(0.3)
    assert len(webhook_rx.received(firing(name))) == 1, webhook_rx.received()
    assert len(webhook_rx.received(resolved(name))) == 1, webhook_rx.received()
    samples = parse_metrics(d.metrics())
    assert metric_value(samples, "opsd_alerts_sent_total", route="hook",
                        result="ok") == 2
    assert metric_value(samples, "opsd_alerts_active") == 0


def test_webhook_repeat_while_down(opsd_launcher, webhook_rx, tmp_path):
    name = unique("db")
    d = opsd_launcher(route("hook", type="webhook", url=webhook_rx.url,
                            repeat="1s") +
                      flag_probe(name, tmp_path / "never", "hook"))
    posts = webhook_rx.wait(firing(name), count=2, timeout=5)
    first, second = posts[0], posts[1]
    assert not first["json"].get("repeat"), first["json"]
    assert second["json"].get("repeat") is True, second["json"]
    assert second["json"]["message"].startswith("STILL FIRING"), \
        second["json"]
    gap = second["time"] - first["time"]
    assert 0.8 <= gap <= 3.0, f"repeat = 1s, but {gap:.2f}s between them"
    assert metric_value(parse_metrics(d.metrics()), "opsd_alerts_active") \
        == 1


def test_webhook_slack_format(opsd_launcher, webhook_rx, tmp_path):
    name = unique("web")
    opsd_launcher(route("chat", type="webhook", url=webhook_rx.url,
                        format="slack") +
                  flag_probe(name, tmp_path / "never", "chat"))
    post = webhook_rx.wait(lambda p: p["json"] is not None)[0]
    assert list(post["json"]) == ["text"], post["json"]
    assert name in post["json"]["text"], post["json"]


def test_webhook_bearer_token(opsd_launcher, webhook_rx, tmp_path):
    token = "tok-" + secrets.token_hex(16)
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    name = unique("svc")
    d = opsd_launcher(route("hook", type="webhook", url=webhook_rx.url,
                            bearer_token_file=tf) +
                      flag_probe(name, tmp_path / "never", "hook"),
                      log_level="debug")
    post = webhook_rx.wait(firing(name))[0]
    assert post["headers"].get("authorization") == f"Bearer {token}", \
        post["headers"]
    assert d.cli("alert", "test", "hook")[0] == 0
    d.stop()
    assert token not in d.log(), "the bearer token appears in opsd's log"


@pytest.mark.parametrize("failure", ["500", "down"])
def test_webhook_failure_retries(failure, opsd_launcher, webhook_rx, tmp_path):
    if failure == "500":
        webhook_rx.mode = "fail"
    else:
        webhook_rx.down()
    name = unique("x")
    d = opsd_launcher(route("flaky", type="webhook", url=webhook_rx.url,
                            retries=2, retry_delay="50ms", timeout="1s") +
                      flag_probe(name, tmp_path / "never", "flaky"))
    ev = d.wait_event("alert.failed", timeout=8)[0]
    assert ev["route"] == "flaky", ev
    assert ev["attempts"] == "3", ev
    assert ev["message_id"], ev
    if failure == "500":
        assert "500" in ev["error"], ev
        assert len(webhook_rx.received(firing(name))) == 3, \
            f"retries = 2 means 3 attempts: {len(webhook_rx.received())}"
    retries = [e for e in d.events("alert.retry")]
    assert len(retries) >= 2, retries
    samples = parse_metrics(d.metrics())
    assert metric_value(samples, "opsd_alerts_sent_total", route="flaky",
                        result="failed") == 1
    assert metric_value(samples, "opsd_alerts_sent_total", route="flaky",
                        result="ok") == 0


def test_webhook_recovers_on_retry(opsd_launcher, webhook_rx, tmp_path):
    webhook_rx.mode = "fail"
    name = unique("r")
    d = opsd_launcher(route("hook", type="webhook", url=webhook_rx.url,
                            retries=5, retry_delay="100ms") +
                      flag_probe(name, tmp_path / "never", "hook"))
    webhook_rx.wait(firing(name), count=2)
    webhook_rx.mode = "ok"
    wait_for(lambda: metric_value(parse_metrics(d.metrics()),
                                  "opsd_alerts_sent_total", route="hook",
                                  result="ok") == 1, 5,
             "the delivery to succeed on a retry")
    assert d.events("alert.failed") == []


# --- alerts across reloads ---------------------------------------------------

def _reload(d, body):
    d.write(body)
    rc, out, err = d.cli("reload")
    assert rc == 0, (rc, out, err)


def _config(webhook_rx, name, flag, interval, with_probe=True):
    return (route("hook", type="webhook", url=webhook_rx.url, repeat="500ms") +
            (flag_probe(name, flag, "hook", interval=interval)
             if with_probe else ""))


def test_alert_resolved_after_probe_reconfigured(opsd_launcher, webhook_rx,
                                                 tmp_path):
    """A down probe whose settings change is rebuilt (state unknown);
    when it then comes up, the alert the old one raised must be resolved,
    not repeated forever."""
    flag = tmp_path / "ok"
    name = unique("re")
    d = opsd_launcher(_config(webhook_rx, name, flag, "200ms"))
    webhook_rx.wait(firing(name))
    _reload(d, _config(webhook_rx, name, flag, "300ms"))
    flag.touch()
    d.wait_state(name, "up")
    webhook_rx.wait(resolved(name), timeout=3)
    wait_for(lambda: metric_value(parse_metrics(d.metrics()),
                                  "opsd_alerts_active") == 0, 2,
             "no active alert")
    t = time.monotonic() + 0.2
    time.sleep(1.2)
    late = webhook_rx.received(lambda p: firing(name)(p) and p["time"] > t)
    assert not late, f"still firing for a probe that is up: {late}"


def test_alert_ends_when_probe_removed(opsd_launcher, webhook_rx, tmp_path):
    """A probe removed from the configuration while down must not leave
    its alert repeating forever."""
    name = unique("rm")
    d = opsd_launcher(_config(webhook_rx, name, tmp_path / "never", "200ms"))
    webhook_rx.wait(firing(name), count=2, timeout=3)
    _reload(d, _config(webhook_rx, name, None, None, with_probe=False))
    assert name not in d.probes()
    wait_for(lambda: metric_value(parse_metrics(d.metrics()),
                                  "opsd_alerts_active") == 0, 2,
             "the removed probe's alert to end",
             detail=lambda: [p["json"]["message"] for p in
                             webhook_rx.received()])
    t = time.monotonic() + 0.2
    time.sleep(1.2)
    late = webhook_rx.received(lambda p: firing(name)(p) and p["time"] > t)
    assert not late, f"still firing for a removed probe: " \
                     f"{[p['json']['message'] for p in late]}"


# --- e-mail ------------------------------------------------------------------

def test_email_alert(opsd_launcher, smtp_sink, tmp_path):
    name = unique("mailprobe")
    d = opsd_launcher(route("mail", type="email",
                            url=f"smtp://127.0.0.1:{smtp_sink.port}",
                            **{"from": "opsd@example.org",
                               "to": ["ops@example.org",
                                      "dba@example.org"]}) +
                      flag_probe(name, tmp_path / "never", "mail"))

    def mails():
        return [m for m in smtp_sink.mails() if name in (m["Subject"] or "")]
    m = wait_for(mails, 8, f"a mail about {name} in the SMTP sink",
                 detail=lambda: d.log()[-2000:])[0]
    assert m["Subject"].startswith("[opsd]"), m["Subject"]
    assert m["From"] == "opsd@example.org", m["From"]
    assert "ops@example.org" in m["To"] and "dba@example.org" in m["To"]
    assert m["X-Opsd-Status"] == "firing", dict(m)
    body = m.get_payload()
    assert name in body and "reason" in body, body
    samples = parse_metrics(d.metrics())
    assert metric_value(samples, "opsd_alerts_sent_total", route="mail",
                        result="ok") == 1


# --- opsd-cli alert test -----------------------------------------------------

def test_alert_test_command(opsd_launcher, webhook_rx, smtp_sink, tmp_path):
    subject_prefix = unique("[t]")
    d = opsd_launcher(
        route("hook", type="webhook", url=webhook_rx.url) +
        route("mail", type="email", url=f"smtp://127.0.0.1:{smtp_sink.port}",
              subject_prefix=subject_prefix,
              **{"from": "opsd@example.org", "to": "ops@example.org"}) +
        route("dead", type="webhook",
              url=f"http://127.0.0.1:{closed_port()}/hook", retries=3,
              retry_delay="10ms"))
    rc, out, err = d.cli("alert", "test", "hook")
    assert rc == 0, (rc, out, err)
    assert "delivered" in out, out
    post = webhook_rx.wait()[0]
    assert post["json"]["status"] == "test" and post["json"]["test"] is True
    assert post["json"]["name"] == "hook", post["json"]

    rc, out, err = d.cli("alert", "test", "mail")
    assert rc == 0, (rc, out, err)
    wait_for(lambda: [m for m in smtp_sink.mails()
                      if (m["Subject"] or "").startswith(subject_prefix)],
             5, "the test mail")

    t0 = time.monotonic()
    rc, out, err = d.cli("--json", "alert", "test", "dead")
    assert rc == 1, (rc, out, err)
    assert time.monotonic() - t0 < 5, "alert test retried a dead route"
    assert json.loads(out)["data"]["attempts"] == 1, out
    rc, out, err = d.cli("alert", "test", "nosuch")
    assert rc == 1, (rc, out, err)
    samples = parse_metrics(d.metrics())
    assert metric_value(samples, "opsd_alerts_sent_total", route="dead",
                        result="failed") == 1


# --- configuration -----------------------------------------------------------

def _line(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


@pytest.mark.parametrize("case", [
    "webhook_smtp_url", "email_http_url", "email_no_to", "email_no_from",
    "webhook_email_key", "email_webhook_key", "bad_scheme", "no_type"])
def test_alert_config_errors(case, tmp_path):
    body, needle, words = {
        "webhook_smtp_url": (route("a", type="webhook",
                                   url="smtp://127.0.0.1:25"),
                             "url =", "http"),
        "email_http_url": (route("a", type="email", url="http://x/",
                                 **{"from": "a@b", "to": "c@d"}),
                           "url =", "smtp"),
        "email_no_to": (route("a", type="email", url="smtp://x",
                              **{"from": "a@b"}), "[alert a]", "'to'"),
        "email_no_from": (route("a", type="email", url="smtp://x",
                                to="c@d"), "[alert a]", "'from'"),
        "webhook_email_key": (route("a", type="webhook", url="http://x/",
                                    to="c@d"), "to =", "does not apply"),
        "email_webhook_key": (route("a", type="email", url="smtp://x",
                                    format="slack",
                                    **{"from": "a@b", "to": "c@d"}),
                              "format =", "does not apply"),
        "bad_scheme": (route("a", type="webhook", url="ftp://x/"),
                       "url =", "ftp://x/"),
        "no_type": (route("a", url="http://x/"), "[alert a]", "type"),
    }[case]
    text = "[opsd]\nmetrics_listen = off\n\n" + body
    rc, out, err, path = check_config(text, tmp_path)
    assert rc == 1, f"accepted ({rc}): {out}{err}"
    line = _line(text, needle)
    assert f"{path}:{line}:" in err, f"not reported at line {line}:\n{err}"
    assert words in err, f"{words!r} not in:\n{err}"


def test_alert_config_valid(tmp_path):
    tf = tmp_path / "token"
    tf.write_text("t\n")
    text = ("[opsd]\nmetrics_listen = off\n\n" +
            route("hook", type="webhook", url="https://hooks.example.org/x",
                  format="slack", bearer_token_file=tf, repeat="30m",
                  retries=3, retry_delay="2s", timeout="10s") +
            route("mail", type="email", url="smtps://mail.example.org",
                  **{"from": "opsd@example.org",
                     "to": ["a@example.org", "b@example.org"]}) +
            "[probe p]\nkind = exec\ncommand = true\nalert = hook\n"
            "alert = mail\n")
    rc, out, err, path = check_config(text, tmp_path)
    assert rc == 0, err
