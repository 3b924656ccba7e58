"""
Blue/green deploys behind a real nginx with real slot processes
(deploy_svc.py): the cutover under load with zero failed requests, every
way a new version can fail (never healthy, crashing in the gate, slow to
start, a template nginx -t refuses, a reload nginx refuses after nginx -t
passed, a proxy that does not serve it, a watch that sees it fall), the
rollback (automatic, manual, after the window), irreversible migrations,
one cutover at a time, abort, alerts, metrics and the CLI.
"""
import json
import re
import shutil
import socket
import time

import pytest

pytest.register_assert_rewrite("deploy_svc", "svc")
from deploy_svc import (CLI, OPSD, Load, Stack, run,  # noqa: E402
                        short_dir, wait_for)

pytest_plugins = ["svc"]

STEPS_ALL = ["prepare", "start", "gate", "render", "switch", "test",
             "reload", "confirm", "verify"]


@pytest.fixture
def stack(tmp_path):
    rundir = short_dir()
    s = Stack(tmp_path, rundir)
    yield s
    errors = s.cleanup()
    shutil.rmtree(rundir, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def finished(d, op_id):
    return wait_for(lambda: (lambda o: o if o and o["state"] != "running"
                             else None)(d.op(op_id)), 60,
                    f"op {op_id} to finish", detail=lambda: d.log()[-4000:])


def last(d):
    return d.status()["deploys"][0]


def steps_of(out):
    """The step names a --follow printed, in order, once each."""
    seen = []
    for line in out.splitlines():
        m = re.match(r"^\s*[\d.]+ ?(?:ms|s)\s+(\w+)\s*$", line)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


# --- the cutover -----------------------------------------------------------


def test_cutover_under_load_zero_failed_requests(stack, webhook_rx):
    stack.up(start_daemon=False)
    d = stack.d
    d.write("[alert ops]\ntype = webhook\nurl = " + webhook_rx.url +
            "\n\n" + stack.section(alert="ops"))
    d.start()
    before = stack.nginx.upstream.read_text()
    old_workers = stack.nginx.workers_now()
    load = Load(stack.nginx.port, threads=4).start()
    rc, out, err = stack.deploy("2.0")
    time.sleep(1.0)             # load on the new slot, after the cutover
    t_end = time.monotonic()
    time.sleep(0.5)
    load.stop()
    load.assert_clean()
    assert load.versions.get("2.0", 0) > 50, load.summary()
    # every answer in the last half second came from the new version
    assert load.last["1.0"] < t_end, load.summary()

    assert steps_of(out) == STEPS_ALL, out
    # the gate's passing check (under load the slot may need a second)
    assert re.search(r"gate +health check \d+: ok \(200, version 2\.0",
                     out), out
    assert "nginx (master" in out and "runs new workers" in out, out
    assert re.search(r"^api: ok: version 2.0 serves on slot green, in ",
                     out, re.M), out
    assert "roll back: opsd-cli deploy rollback api (to 1.0 on slot " \
           "blue, instant)" in out, out

    assert stack.served() == "2.0"
    inc = stack.nginx.upstream.read_text()
    assert inc != before
    assert f"server 127.0.0.1:{stack.slots.ports['green']};" in inc, inc
    assert "version 2.0" in inc, inc
    # nginx really reloaded: the old workers are gone
    wait_for(lambda: not set(old_workers) & set(stack.nginx.workers_now()),
             10, "the old nginx workers to exit")
    # the old slot stays warm for the rollback window
    assert stack.slots.running("blue")
    assert stack.slots.version_on("blue") == "1.0"

    s = d.status()
    assert s["state"] == "idle" and s["operation"] is None, s
    assert s["active"]["slot"] == "green" and \
        s["active"]["version"] == "2.0", s
    assert s["previous"]["slot"] == "blue" and \
        s["previous"]["running"] is True, s
    assert s["previous"]["stop_at"] > time.time() + 500, s
    assert s["rollback"]["instant"] is True, s
    h = s["deploys"][0]
    assert h["result"] == "ok" and h["mode"] == "deploy" and \
        h["from_version"] == "1.0", h
    assert 0 < h["cutover_ms"] < 5000 and h["duration_ms"] >= \
        h["cutover_ms"], h

    # one journald-shaped event per step, with its fields
    ev = d.events("deploy.step")
    assert [e["step"] for e in ev] == STEPS_ALL, ev
    for e in ev:
        assert e["deploy"] == "api" and e["version"] == "2.0" and \
            e["slot"] == "green" and e["op"] == h["op"], e
    ok = d.wait_event("deploy.succeeded")[0]
    assert ok["version"] == "2.0" and ok["active_slot"] == "green", ok
    o = d.op(h["op"])
    assert o["kind"] == "deploy.cutover" and o["state"] == "ok", o
    # the deployment notification
    post = webhook_rx.wait(lambda p: (p["json"] or {}).get("event") ==
                           "deploy.succeeded")[0]["json"]
    assert post["status"] == "notice" and post["deploy"] == "api" and \
        post["version"] == "2.0" and post["slot"] == "green", post

    m = d.metrics()
    assert 'opsd_deploy_active_slot_info{deploy="api",slot="green",' \
           'version="2.0"} 1' in m, m
    assert 'opsd_deploy_total{deploy="api",result="ok"} 1' in m, m
    assert re.search(r'opsd_deploy_duration_seconds\{deploy="api",'
                     r'result="ok"\} \d+\.\d+', m), m
    assert 'opsd_deploy_in_progress{deploy="api"} 0' in m, m
    hl = d.rpc("opsd.health")
    assert hl["status"] == "ok", hl


def test_manual_rollback_under_load_is_instant(stack):
    stack.up()
    d = stack.d
    stack.deploy("2.0")
    load = Load(stack.nginx.port, threads=4).start()
    rc, out, err = d.cli("deploy", "rollback", "api", "--follow")
    time.sleep(0.5)
    load.stop()
    assert rc == 0, out + err
    load.assert_clean()
    # the warm slot: no start, one health check
    assert "start" not in steps_of(out), out
    assert "(1/1 in a row)" in out, out
    assert stack.served() == "1.0"
    s = d.status()
    assert s["active"] == {**s["active"], "slot": "blue", "version": "1.0"}
    assert s["previous"]["slot"] == "green" and \
        s["previous"]["version"] == "2.0" and s["previous"]["running"], s
    assert s["deploys"][0]["mode"] == "rollback", s["deploys"][0]
    # and forward again: also instant, 2.0 is warm
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0",
                         "--follow")
    assert rc == 0 and "start" not in steps_of(out), out
    assert stack.served() == "2.0"


def test_second_start_is_refused_and_abort_undoes(stack):
    stack.slots.behave("2.0", start_delay=30)
    stack.up(health_deadline="60s")
    d = stack.d
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0")
    assert rc == 0, out + err
    op = re.search(r"op (\S+)", out).group(1)
    wait_for(lambda: d.status()["operation"]["step"] == "gate", 10,
             "the gate")
    rc, out, err = d.cli("deploy", "start", "api", "--version", "3.0")
    assert rc == 1, out + err
    assert f"op {op} at step gate" in err, err
    rc, out, err = d.cli("deploy", "rollback", "api")
    assert rc == 1 and op in err, out + err
    rc, out, err = d.cli("deploy", "abort", "api")
    assert rc == 0 and op in out, out + err
    o = finished(d, op)
    assert o["state"] == "failed" and "aborted" in o["error"], o
    assert stack.served() == "1.0"
    assert not stack.slots.running("green")
    assert last(d)["step"] == "gate", last(d)
    rc, out, err = d.cli("deploy", "abort", "api")
    assert rc == 1 and "no cutover is under way" in err, out + err


# --- failures before the switch ----------------------------------------------


def check_untouched(stack, before):
    assert stack.nginx.upstream.read_text() == before
    assert stack.served() == "1.0"
    assert not stack.slots.running("green")
    assert not list(stack.nginx.upstream.parent.glob("*.opsd-new"))


def test_never_healthy_leaves_traffic_alone(stack):
    stack.slots.behave("2.0", health_fail=True)
    stack.up(health_deadline="2s")
    before = stack.nginx.upstream.read_text()
    load = Load(stack.nginx.port, threads=2).start()
    rc, out, err = stack.deploy("2.0", ok=False)
    load.stop()
    load.assert_clean()
    assert rc == 1
    assert re.search(r"^api: failed at gate: slot green did not pass 2 "
                     r"health checks in a row within health_deadline", out,
                     re.M), out
    assert "HTTP status 503" in out, out
    assert "serving: version 1.0 on slot blue" in out, out
    check_untouched(stack, before)
    h = last(stack.d)
    assert h["result"] == "failed" and h["step"] == "gate", h
    assert stack.d.status()["active"]["slot"] == "blue"
    assert set(steps_of(out)) & {"render", "switch", "reload"} == set(), out


def test_crash_during_the_gate_fails_it(stack):
    # healthy for 1.5 s, and 15 passes in a row take 3 s: it crashes first
    stack.slots.behave("2.0", crash_after=1.5)
    stack.up(health_rise=15, health_deadline="20s")
    before = stack.nginx.upstream.read_text()
    t0 = time.monotonic()
    rc, out, err = stack.deploy("2.0", ok=False)
    assert time.monotonic() - t0 < 10, "the crash was seen at the deadline"
    assert re.search(r"the process of slot green \(pid \d+, from .*green"
                     r"\.pid\) exited during the gate", out), out
    check_untouched(stack, before)


def test_slow_start_needs_health_start_delay(stack):
    stack.slots.behave("2.0", start_delay=2)
    stack.up(health_deadline="1s", health_rise=2)
    before = stack.nginx.upstream.read_text()
    rc, out, err = stack.deploy("2.0", ok=False)
    assert "failed at gate" in out, out
    check_untouched(stack, before)
    # the same version with a start delay that covers its boot
    stack.d.write(stack.section(health_deadline="1500ms", health_rise=2,
                                health_start_delay="2500ms"))
    rc, out, err = stack.d.cli("reload")
    assert rc == 0, out + err
    rc, out, err = stack.deploy("2.0")
    assert "waiting health_start_delay 2500ms" in out, out
    assert stack.served() == "2.0"


def test_start_command_failure(stack):
    stack.up(start="echo cannot pull image {version} >&2; exit 4")
    before = stack.nginx.upstream.read_text()
    rc, out, err = stack.deploy("2.0", ok=False)
    assert re.search(r"failed at start: start exited with status 4: "
                     r"cannot pull image 2.0", out), out
    check_untouched(stack, before)


def test_broken_template_leaves_include_unchanged(stack, tmp_path):
    tpl = tmp_path / "upstream.tpl"
    tpl.write_text("upstream {deploy} {\n    server 127.0.0.1:{port};\n"
                   "    no_such_directive on;\n}\n")
    stack.up(upstream_template=tpl)
    before = stack.nginx.upstream.read_text()
    workers = stack.nginx.workers_now()
    load = Load(stack.nginx.port, threads=2).start()
    rc, out, err = stack.deploy("2.0", ok=False)
    load.stop()
    load.assert_clean()
    assert re.search(r"failed at test: proxy_test: proxy_test exited with "
                     r"status 1: .*unknown directive \"no_such_directive\"",
                     out), out
    assert "restore" in steps_of(out) and "reload" not in steps_of(out), out
    check_untouched(stack, before)
    assert stack.nginx.workers_now() == workers, "nginx was reloaded"


def test_reload_refused_after_test_passed_restores(stack, tmp_path):
    # nginx -t does not bind: a listen on a port someone holds passes the
    # test, and the reload fails in the master
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    tpl = tmp_path / "upstream.tpl"
    tpl.write_text("upstream {deploy} {\n    server 127.0.0.1:{port};\n}\n"
                   f"server {{ listen 127.0.0.1:{port}; }}\n")
    try:
        stack.up(upstream_template=tpl, proxy_timeout="2s")
        before = stack.nginx.upstream.read_text()
        rc, out, err = stack.deploy("2.0", ok=False)
    finally:
        held.close()
    assert re.search(r"^api: rolled_back at confirm: nginx \(master \d+\) "
                     r"did not start new workers within 2s", out, re.M), out
    assert steps_of(out)[-4:] == ["restore", "reload_back", "confirm_back",
                                  "stop_new"], out
    check_untouched(stack, before)
    assert "bind()" in stack.nginx.error_log.read_text()


# --- failures after the switch ---------------------------------------------


def test_verify_failure_rolls_back_and_restores_include(stack):
    stack.slots.behave("2.0", error_500=True)
    stack.up(verify_timeout="1s")
    before = stack.nginx.upstream.read_text()
    rc, out, err = stack.deploy("2.0", ok=False)
    assert re.search(r"^api: rolled_back at verify: verify_url \S+ did not "
                     r"answer with version 2.0 through the proxy within "
                     r"verify_timeout: HTTP status 500", out, re.M), out
    assert steps_of(out)[-4:] == ["restore", "reload_back", "confirm_back",
                                  "stop_new"], out
    check_untouched(stack, before)
    s = stack.d.status()
    assert s["active"]["slot"] == "blue" and s["degraded"] is None, s
    assert s["deploys"][0]["result"] == "rolled_back", s
    assert stack.d.wait_event("deploy.rolled_back")[0]["step"] == "verify"
    m = stack.d.metrics()
    assert 'opsd_deploy_total{deploy="api",result="rolled_back"} 1' in m


def test_irreversible_migration_alerts_instead(stack, webhook_rx, tmp_path):
    stack.slots.behave("2.0", error_500=True)
    marker = tmp_path / "migrated"
    stack.up(start_daemon=False)
    d = stack.d
    d.write("[alert ops]\ntype = webhook\nurl = " + webhook_rx.url +
            "\n\n" + stack.section(
                alert="ops", verify_timeout="1s",
                migrate=f"echo $OPSD_VERSION > {marker}; exit 3"))
    d.start()
    rc, out, err = stack.deploy("2.0", ok=False)
    assert marker.read_text().strip() == "2.0"
    assert "the migration cannot be undone" in out, out
    assert re.search(r"^api: failed at verify: ", out, re.M), out
    assert "DEGRADED: traffic is on slot green (version 2.0)" in out, out
    assert "roll back: opsd-cli deploy rollback api --force" in out, out
    # no automatic rollback: both slots run, the include names green
    assert stack.slots.running("green") and stack.slots.running("blue")
    assert str(stack.slots.ports["green"]) in \
        stack.nginx.upstream.read_text()
    s = d.status()
    assert s["state"] == "degraded" and s["active"]["slot"] == "green", s
    assert s["active"]["irreversible"] is True, s
    post = webhook_rx.wait(lambda p: (p["json"] or {}).get("status") ==
                           "firing")[0]["json"]
    assert post["event"] == "deploy.failed" and post["version"] == "2.0" \
        and post["slot"] == "green" and post["step"] == "verify", post
    assert "NOT rolled back" in post["message"], post
    assert d.rpc("opsd.health")["status"] == "critical"
    assert 'opsd_deploy_degraded{deploy="api"} 1' in d.metrics()
    # a rollback needs --force, and then resolves the alert
    rc, out, err = d.cli("deploy", "rollback", "api")
    assert rc == 1 and "--force" in err, out + err
    rc, out, err = d.cli("deploy", "rollback", "api", "--force", "--follow")
    assert rc == 0, out + err
    assert stack.served() == "1.0"
    webhook_rx.wait(lambda p: (p["json"] or {}).get("status") == "resolved")
    s = d.status()
    assert s["state"] == "idle" and s["degraded"] is None, s


def test_watch_sees_the_new_slot_fall_and_rolls_back(stack):
    # healthy through the gate and the switch, then not
    stack.slots.behave("2.0", health_fail_after=5.0)
    stack.up(watch="20s", health_fall=2)
    rc, out, err = stack.deploy("2.0", ok=False)
    assert re.search(r"^api: rolled_back at watch: slot green failed 2 "
                     r"health checks in a row during the watch", out,
                     re.M), out
    assert stack.served() == "1.0"
    assert not stack.slots.running("green")


def test_auto_rollback_off_keeps_traffic(stack):
    stack.slots.behave("2.0", error_500=True)
    stack.up(verify_timeout="1s", auto_rollback="no")
    rc, out, err = stack.deploy("2.0", ok=False)
    assert "auto_rollback = no" in stack.d.log(), out
    assert stack.d.status()["state"] == "degraded"
    # a new deploy over a degraded one: the failed slot is stopped first
    rc, out, err = stack.deploy("3.0")
    assert stack.served() == "3.0"
    assert stack.d.status()["state"] == "idle"


# --- the old slot ------------------------------------------------------------


def test_rollback_window_end_stops_old_slot(stack):
    stack.up(rollback_window="4s", drain="500ms")
    d = stack.d
    stack.deploy("2.0")
    assert stack.slots.running("blue")
    ev = d.wait_event("deploy.retired", timeout=15)[0]
    assert ev["slot"] == "blue" and ev["version"] == "1.0", ev
    wait_for(lambda: not stack.slots.running("blue"), 10, "blue to stop")
    s = d.status()
    assert s["previous"]["running"] is False, s
    assert s["rollback"]["instant"] is False, s
    # the version is remembered: a rollback starts it again, gated
    rc, out, err = d.cli("deploy", "rollback", "api", "--follow")
    assert rc == 0, out + err
    assert "start" in steps_of(out) and "(2/2 in a row)" in out, out
    assert stack.served() == "1.0"


def test_no_rollback_window_drains_and_stops_in_the_op(stack):
    stack.up(rollback_window="0", drain="1s")
    load = Load(stack.nginx.port, threads=2).start()
    rc, out, err = stack.deploy("2.0")
    load.stop()
    load.assert_clean()
    assert steps_of(out)[-3:] == ["verify", "drain", "stop_old"], out
    assert not stack.slots.running("blue")
    assert stack.d.status()["previous"]["running"] is False


# --- a real kill -9 ------------------------------------------------------------


def test_kill9_in_the_gate_then_restart_rolls_back(stack):
    stack.slots.behave("2.0", start_delay=30)
    stack.up(health_deadline="60s")
    d = stack.d
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0")
    op = re.search(r"op (\S+)", out).group(1)
    wait_for(lambda: d.status()["operation"]["step"] == "gate", 10,
             "the gate")
    d.kill9()
    d.start()
    o = finished(d, op)
    assert o["state"] == "failed" and o["recovered"] is True, o
    assert stack.served() == "1.0"
    assert not stack.slots.running("green")
    ev = d.wait_event("deploy.recovered", since_start=True)[0]
    assert ev["op"] == op, ev


def test_kill9_in_the_watch_then_restart_finishes(stack):
    stack.up(watch="30s")
    d = stack.d
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0")
    op = re.search(r"op (\S+)", out).group(1)
    wait_for(lambda: d.status()["operation"]["step"] == "watch", 20,
             "the watch")
    d.kill9()
    assert stack.served() == "2.0"
    d.write(stack.section(watch="1s"))     # a shorter watch after it
    d.start()
    o = finished(d, op)
    assert o["state"] == "ok" and o["recovered"] is True, o
    assert stack.served() == "2.0"
    s = d.status()
    assert s["active"]["version"] == "2.0" and s["state"] == "idle", s


# --- configuration and the command line --------------------------------------


def check_config(tmp_path, body):
    p = tmp_path / "check.conf"
    p.write_text("[opsd]\nsocket = /tmp/x.sock\nstate_dir = /tmp/x\n\n" + body)
    return run([OPSD, "--check-config", "-c", p])


def test_config_errors(tmp_path):
    base = ("[deploy api]\nstart = s\nstop = t\nactive = blue\n"
            f"health = http://127.0.0.1:{{port}}/up\n"
            f"upstream_file = {tmp_path}/up.conf\n")
    rc, out, err = check_config(tmp_path, base + "blue_port = 1\n"
                                "green_port = 2\n")
    assert rc == 0, out + err
    cases = [
        ("blue_port = 1\ngreen_port = 1\n", "the same port"),
        ("blue_port = 1\n", "green_port"),
        ("blue_port = 1\ngreen_port = 2\nactive_version = 1;x\n",
         "not a version opsd deploys"),
        ("blue_port = 1\ngreen_port = 2\nverify_body = ok\n",
         "there is no verify_url"),
        ("blue_port = 1\ngreen_port = 2\nmigrate_reversible = no\n",
         "there is no migrate"),
        ("blue_port = 1\ngreen_port = 2\nhealth_rise = 5\n"
         "health_interval = 1s\nhealth_deadline = 2s\n", "never pass"),
        ("blue_port = 1\ngreen_port = 2\nalert = nope\n",
         "unknown alert route 'nope'"),
    ]
    for extra, want in cases:
        rc, out, err = check_config(tmp_path, base + extra)
        assert rc != 0 and want in err, (extra, err)
    rc, out, err = check_config(tmp_path, base.replace(
        str(tmp_path), "/nonexistent/dir") + "blue_port = 1\n"
        "green_port = 2\n")
    assert rc != 0 and "does not exist" in err, err
    tpl = tmp_path / "t.tpl"
    tpl.write_text("upstream x { server 127.0.0.1:8000; }\n")
    rc, out, err = check_config(tmp_path, base + "blue_port = 1\n"
                                f"green_port = 2\nupstream_template = {tpl}\n")
    assert rc != 0 and "has no {port}" in err, err


def test_cli_usage_and_errors(stack):
    stack.up()
    d = stack.d
    rc, out, err = d.cli("deploy", "start", "api")
    assert rc == 2, out + err
    rc, out, err = d.cli("deploy", "start", "api", "--version", "1;rm")
    assert rc == 1 and "not a version" in err, out + err
    rc, out, err = d.cli("deploy", "start", "nope", "--version", "2")
    assert rc == 1 and "no deploy named 'nope'" in err, out + err
    rc, out, err = d.cli("deploy", "start", "api", "--version", "1.0")
    assert rc == 1 and "already serves on slot blue" in err, out + err
    rc, out, err = d.cli("deploy", "rollback", "api")
    assert rc == 1 and "nothing to roll back to" in err, out + err
    rc, out, err = d.cli("deploy", "status")
    assert rc == 0 and re.search(r"^api\s+idle\s+blue 1.0\s+-\s+-$", out,
                                 re.M), out
    rc, out, err = d.cli("--json", "deploy", "status", "api")
    s = json.loads(out)
    assert s["rollback"] is None and s["deploys"] == [], s
    rc, out, err = d.cli("deploy", "start", "api", "--version=2.0")
    assert rc == 0 and "roll back: opsd-cli deploy rollback api" in out, out
    d.wait_idle()
    rc, out, err = d.cli("deploy", "status", "api")
    assert "rollback      opsd-cli deploy rollback api (to 1.0 on slot " \
           "blue, instant" in out, out
    rc, out, err = run([CLI, "--help"])
    assert "deploy rollback NAME" in out, out


def test_first_version_unknown_rolls_back_only_while_warm(stack):
    stack.up(active_version=None, rollback_window="5s", drain="500ms")
    d = stack.d
    assert d.status()["active"]["version"] is None
    stack.deploy("2.0")
    rc, out, err = d.cli("deploy", "rollback", "api", "--follow")
    assert rc == 0, out + err
    assert stack.served() == "1.0"
    assert d.status()["active"]["version"] == "unknown"
    # forward again, then wait for the unknown one's slot to be stopped
    stack.deploy("2.0")
    d.wait_event("deploy.retired", timeout=30,
                 pred=lambda e: e["slot"] == "blue")
    rc, out, err = d.cli("deploy", "rollback", "api")
    assert rc == 1 and "is not known" in err, out + err
    rc, out, err = d.cli("deploy", "start", "api", "--version", "unknown")
    assert rc == 1 and "does not know" in err, out + err


def test_without_confirmation_or_verify_url(stack):
    """proxy_pid_file = none and no verify_url: the reload is trusted,
    the state names the new slot at the verify step all the same."""
    stack.up(proxy_pid_file="none", verify_url=None)
    rc, out, err = stack.deploy("2.0")
    assert steps_of(out) == [s for s in STEPS_ALL if s != "confirm"], out
    # the reload was not waited for: give nginx its moment
    wait_for(lambda: stack.served() == "2.0", 5, "nginx to serve 2.0")
    assert stack.d.status()["active"]["slot"] == "green"
    assert stack.d.status()["deploys"][0]["cutover_ms"] is not None
