"""
What opsd says about backups must be true: a verification that could not
run is not a failed one, a run reports its verification, a failed
scheduled run is tried again, staleness counts from when a backup
appeared and tells its current age, alerts are one per condition and
resolved when a backup goes, a multi-statement check fails on any
statement, prune --dry-run changes nothing, and every event of a backup
carries its name.
"""
import json
import os
import re
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc", "svc")

from backup_svc import (backup_section, free_port,  # noqa: E402
                        wait_for)
from svc import Webhook  # noqa: E402

pytest_plugins = ["backup_svc"]


@pytest.fixture
def hook():
    w = Webhook()
    w.up()
    yield w
    w.down()


def route(name, url, **keys):
    s = f"[alert {name}]\ntype = webhook\nurl = {url}\n"
    for k, v in keys.items():
        s += f"{k} = {v}\n"
    return s + "\n"


def posts(hook, type_=None, status=None, name=None):
    def ok(p):
        j = p["json"] or {}
        return ((type_ is None or j.get("type") == type_) and
                (status is None or j.get("status") == status) and
                (name is None or j.get("name") == name))
    return [p["json"] for p in hook.received(ok)]


def next_second():
    t = time.time()
    time.sleep(1.02 - (t % 1))


def metric(d, port, name, backup):
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=5).read().decode()
    m = re.search(rf'^{name}\{{backup="{backup}"\}} (\S+)$', body, re.M)
    assert m, f"no {name} for {backup} in /metrics"
    return float(m.group(1))


def with_metrics(bk_daemons, body):
    """An opsd whose /metrics listens on a free port: (daemon, port)."""
    port = free_port()
    d = bk_daemons(body, start=False)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "metrics_listen = off", f"metrics_listen = 127.0.0.1:{port}"))
    d.start()
    return d, port


def follow_last(out):
    m = list(re.finditer(r"^\S+: (ok|failed|skipped|interrupted)\b.*$", out,
                         re.M))
    assert m, f"backup run --follow printed no result:\n{out}"
    return m[-1].group(0)


# --- 1. a verification that could not run ------------------------------------


def test_verify_never_exports_no_verified_time(bk_pg, bk_daemons, tmp_path):
    """A backup with verify = never has no verified-time series: a 0
    there read as "never verified", and the shipped OpsdBackupUnverified
    rule fired for every such backup a day after its first run. A backup
    that verifies has one, from its first run on."""
    import urllib.request
    db = bk_pg.new_db(rows=10)
    body = bk_pg.conf_sections(db) + \
        backup_section("nv", tmp_path / "nv", verify="never") + \
        backup_section("ev", tmp_path / "ev")
    d, port = with_metrics(bk_daemons, body)
    for name in ("nv", "ev"):
        rc, out, err = d.run_backup(name)
        assert rc == 0, out + err
    assert metric(d, port, "opsd_backup_last_success_timestamp_seconds",
                  "nv") > 0
    assert metric(d, port, "opsd_backup_last_verified_timestamp_seconds",
                  "ev") > 0
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=5).read().decode()
    assert 'opsd_backup_last_verified_timestamp_seconds{backup="nv"}' \
        not in text, text
    # the family is still described, for the backups that have it
    assert "# TYPE opsd_backup_last_verified_timestamp_seconds gauge" in text


def test_verify_that_cannot_run_keeps_the_verdict(bk_pg, bk_daemons,
                                                   tmp_path, hook):
    db = bk_pg.new_db(rows=300)
    body = route("hook", hook.url, repeat="1h") + bk_pg.conf_sections(db) + \
        backup_section("vu", tmp_path / "vu", check="SELECT count(*) FROM "
                       "users", expect="> 0", alert="hook")
    d, port = with_metrics(bk_daemons, body)
    rc, out, err = d.run_backup("vu")
    assert rc == 0, out + err
    item = d.items("vu")[0]
    assert item["verified"] == "ok", item
    verified_at = metric(d, port, "opsd_backup_last_verified_timestamp_"
                         "seconds", "vu")
    assert verified_at > 0
    age = d.backups("vu")["age_seconds"]

    bk_pg.stop()
    rc, out, err = d.cli("backup", "verify", item["id"])
    assert rc == 1, out + err
    assert "could not verify" in err, err
    # nothing was decided: the verdict, the clock and the metric stay
    man = d.rpc("backup.show", {"id": item["id"]})
    assert man["verify"]["ok"] is True, man
    assert "could not" not in json.dumps(man["verify"])
    assert man["verify_unavailable"]["error"], man
    item = d.items("vu")[0]
    assert item["verified"] == "ok", item
    assert item["verify_note"].startswith("could not verify: "), item
    rc, out, err = d.cli("backup", "list", "vu")
    assert rc == 0 and "could not verify: " in out, out + err
    lst = d.backups("vu")
    assert lst["newest_good"] != "-" and lst["stale"] is False, lst
    assert lst["age_seconds"] >= age
    assert metric(d, port, "opsd_backup_last_verified_timestamp_seconds",
                  "vu") == verified_at
    assert d.events("backup.verify_failed") == []
    ev = d.wait_event("backup.verify_unavailable")
    assert ev[0]["backup"] == "vu" and ev[0]["backup_id"] == item["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", ev[0].get("message_id", "")), ev
    assert "verification could not run" in ev[0]["msg"], ev
    fired = hook.wait(lambda p: (p["json"] or {}).get("type") ==
                      "backup.verify_unavailable")
    assert "verification could not run" in fired[0]["json"]["message"]
    assert posts(hook, "backup.verify") == [], hook.received()

    # it runs again: the note goes, the alert is resolved
    bk_pg.start()
    rc, out, err = d.cli("backup", "verify", item["id"])
    assert rc == 0, out + err
    assert "verify_note" not in d.items("vu")[0]
    hook.wait(lambda p: (p["json"] or {}).get("type") ==
              "backup.verify_unavailable" and p["json"]["status"] ==
              "resolved")


def test_scheduled_verify_that_cannot_run(bk_pg, bk_daemons, tmp_path, hook):
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(route("hook", hook.url, repeat="1h") +
                   bk_pg.conf_sections(db) + backup_section(
                       "vs", tmp_path / "vs", verify="never",
                       verify_schedule="every 1s", alert="hook",
                       check="SELECT count(*) FROM users", expect="> 0"))
    rc, out, err = d.run_backup("vs")
    assert rc == 0, out + err
    wait_for(lambda: d.items("vs")[0]["verified"] == "ok", 15,
             "the scheduled verification", detail=lambda: d.log()[-2000:])
    bk_pg.stop()
    wait_for(lambda: len(d.events("backup.verify_unavailable")) >= 2, 15,
             "two scheduled verifications that could not run",
             detail=lambda: d.log()[-2000:])
    job = d.job("verify vs")
    assert "could not verify" in job["last_message"], job
    assert d.items("vs")[0]["verified"] == "ok", d.items("vs")
    assert d.events("backup.verify_failed") == []
    # one alert while it lasts
    assert len(posts(hook, "backup.verify_unavailable", "firing")) == 1, \
        hook.received()


# --- 2. the run reports its verification -------------------------------------


def test_follow_reports_the_verification(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=300)
    body = bk_pg.conf_sections(db)
    body += backup_section("vbad", tmp_path / "vbad",
                           check="SELECT count(*) FROM users",
                           expect="> 1000")
    body += backup_section("vgood", tmp_path / "vgood",
                           check="SELECT count(*) FROM users",
                           expect="> 10")
    d = bk_daemons(body)
    rc, out, err = d.run_backup("vbad")
    assert rc == 1, out + err
    line = follow_last(out)
    assert re.fullmatch(r"vbad-\S+: ok \(verification FAILED: check "
                        r"'SELECT count\(\*\) FROM users' returned 300, "
                        r"expected > 1000\)", line), line
    job = d.job("backup vbad")
    assert job["last_result"] == "failed", job
    assert "verification FAILED" in job["last_message"], job

    next_second()   # run ids have one-second resolution
    rc, out, err = d.cli("--json", "backup", "run", "vbad", "--follow")
    assert rc == 1, out + err
    fin = [json.loads(x) for x in out.splitlines() if '"backup.finished"'
           in x]
    assert fin and fin[-1]["params"]["verification"] == "failed", out
    assert "returned 300" in fin[-1]["params"]["verify_error"], out

    rc, out, err = d.run_backup("vgood")
    assert rc == 0, out + err
    assert re.fullmatch(r"vgood-\S+: ok", follow_last(out)), out
    job = d.job("backup vgood")
    assert job["last_result"] == "ok" and "verified" in \
        job["last_message"], job


# --- 3. a failed scheduled run is tried again --------------------------------


def missed_schedule(d):
    """A persistent job whose time passed: it runs at start-up."""
    long_ago = int(time.time()) - 3 * 86400
    d.state_dir.mkdir(mode=0o700)
    old = {"last_run": long_ago, "last_slot": long_ago, "last_ok": 1,
           "last_result": "from three days ago"}
    jobs = {f"backup {n}": old for n in ("retried", "bounded")}
    (d.state_dir / "jobs.json").write_text(json.dumps(jobs))


def test_failed_scheduled_run_is_retried(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    pw = tmp_path / "flaky.pass"
    pw.write_text("not-the-password\n")
    os.chmod(pw, 0o600)
    body = bk_pg.conf_sections(db, password_file=pw)
    body += backup_section("retried", tmp_path / "r", verify="never",
                           persistent="yes", retry="1s 2s 2s")
    d = bk_daemons(body, start=False)
    missed_schedule(d)
    d.start()
    ev = d.wait_event("backup.retry", timeout=15)
    assert ev[0]["backup"] == "retried" and ev[0]["retry"] == "1", ev
    assert ev[0]["delay_seconds"] == "1", ev
    ev = d.wait_event("backup.retry", pred=lambda e: e.get("retry") == "2",
                      timeout=15)
    assert "retry 2 of 3" in ev[0]["msg"], ev
    assert len(d.events("backup.failed")) == 2
    pw.write_text(bk_pg.backup_password + "\n")
    d.wait_event("backup.succeeded", pred=lambda e: e.get("backup") ==
                 "retried", timeout=15)
    wait_for(lambda: d.job("backup retried")["last_result"] == "ok", 10,
             "the job to record the retry's success")
    assert len(d.items("retried")) == 1
    assert len([e for e in d.events("backup.retry") if "retry" in e]) == 2


def test_retry_is_bounded_by_the_next_scheduled_run(bk_pg, bk_daemons,
                                                    tmp_path):
    db = bk_pg.new_db(rows=100)
    body = bk_pg.conf_sections(db, password_file=bk_pg.bad_pw_file)
    body += backup_section("bounded", tmp_path / "b", verify="never",
                           persistent="yes", retry="3d")
    d = bk_daemons(body, start=False)
    missed_schedule(d)
    d.start()
    d.wait_event("backup.failed", timeout=15)
    ev = d.wait_event("backup.retry", timeout=5)
    assert "next scheduled run" in ev[0]["msg"], ev
    assert ev[0]["backup"] == "bounded"


def test_retry_config():
    from backup_svc import OPSD, run
    for bad in ("soon", "0s", "1s 2s 3s 4s 5s 6s 7s 8s 9s"):
        conf = Path(f"/tmp/opsd-retry-{os.getpid()}.conf")
        conf.write_text("[database main]\nconninfo = host=127.0.0.1 "
                        "dbname=x\n\n" + backup_section(
                            "x", "/tmp/x", retry=bad))
        try:
            rc, out, err = run([OPSD, "-c", conf, "--check-config"])
        finally:
            conf.unlink()
        assert rc != 0 and "retry" in (out + err), (bad, out, err)


# --- 4. staleness ------------------------------------------------------------


def test_stale_grace_counts_from_when_the_backup_appeared(bk_pg, bk_daemons,
                                                          tmp_path, hook):
    db = bk_pg.new_db(rows=100)
    head = route("hook", hook.url, repeat="3s") + bk_pg.conf_sections(db)
    d = bk_daemons(head)
    time.sleep(4)
    d.conf_path.write_text(d.conf_path.read_text() + backup_section(
        "late", tmp_path / "late", verify="never", max_age="3s",
        alert="hook"))
    assert d.cli("reload")[0] == 0
    t0 = time.monotonic()
    time.sleep(1.5)
    assert d.backups("late")["stale"] is False, \
        "a backup configured 1.5s ago is called stale (max_age 3s)"
    assert d.events("backup.stale") == []
    ev = d.wait_event("backup.stale", timeout=10)
    assert time.monotonic() - t0 >= 2.5
    assert "no successful backup yet" in ev[0]["msg"], ev
    fired = hook.wait(lambda p: (p["json"] or {}).get("type") ==
                      "backup.stale", count=3, timeout=15)
    ages = []
    for p in fired:
        m = re.search(r"(\d+)m (\d+)s after it was configured",
                      p["json"]["message"])
        assert m, p["json"]["message"]
        ages.append(int(m.group(1)) * 60 + int(m.group(2)))
    assert ages == sorted(ages) and ages[-1] > ages[0], ages
    assert "still STALE" in fired[-1]["json"]["message"]


# --- 5. repeated verify failures: one alert ----------------------------------


def test_repeated_verify_failures_are_one_alert(bk_pg, bk_daemons, tmp_path,
                                                hook):
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(route("hook", hook.url, repeat="1h") +
                   bk_pg.conf_sections(db) + backup_section(
                       "vrep", tmp_path / "vrep", alert="hook",
                       check="SELECT count(*) FROM users", expect="> 1000"))
    d.run_backup("vrep")
    bid = d.items("vrep")[0]["id"]
    for _ in range(2):
        rc, out, err = d.cli("backup", "verify", bid)
        assert rc == 1, out + err
    wait_for(lambda: len(d.events("backup.verify_failed")) == 3, 10,
             "three failed verifications in the log")
    hook.wait(lambda p: (p["json"] or {}).get("type") == "backup.verify")
    time.sleep(1)
    assert len(posts(hook, "backup.verify", "firing")) == 1, \
        [p["body"][:200] for p in hook.received()]


# --- 6. a removed backup resolves its alerts ---------------------------------


def test_removed_backup_resolves_its_alerts(bk_pg, bk_daemons, tmp_path,
                                            hook):
    db = bk_pg.new_db(rows=100)
    head = route("hook", hook.url, repeat="1h") + bk_pg.conf_sections(db)
    d = bk_daemons(head + backup_section(
        "quick", tmp_path / "quick", alert="hook",
        check="SELECT count(*) FROM users", expect="> 1000"))
    d.run_backup("quick")
    hook.wait(lambda p: (p["json"] or {}).get("type") == "backup.verify")
    # and one that could not run
    bk_pg.stop()
    assert d.cli("backup", "verify", d.items("quick")[0]["id"])[0] == 1
    hook.wait(lambda p: (p["json"] or {}).get("type") ==
              "backup.verify_unavailable")
    bk_pg.start()
    d.write(head)
    assert d.cli("reload")[0] == 0
    res = hook.wait(lambda p: (p["json"] or {}).get("status") == "resolved"
                    and p["json"].get("name") == "quick", count=2,
                    timeout=10)
    assert {p["json"]["type"] for p in res} == {
        "backup.verify", "backup.verify_unavailable"}, res
    for p in res:
        msg = p["json"]["message"]
        assert msg.startswith("RESOLVED ") and "quick was removed" in msg, msg


# --- 7. a multi-statement check fails on any statement -----------------------


def test_multi_statement_check_fails_on_any_statement(bk_pg, bk_daemons,
                                                      tmp_path):
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "multi", tmp_path / "multi",
        check="SELECT 1; SELECT * FROM nosuchtable", expect="= 1"))
    rc, out, err = d.run_backup("multi")
    assert rc == 1, out + err
    assert "nosuchtable" in follow_last(out), out
    assert d.items("multi")[0]["verified"] == "FAILED"


# --- 8. prune --dry-run is read-only; runs say what they pruned --------------


def snapshot(*dirs):
    out = {}
    for base in dirs:
        for p in sorted(Path(base).rglob("*")):
            st = p.lstat()
            out[str(p)] = (st.st_mtime_ns, st.st_size,
                           p.read_bytes() if p.is_file() else None)
    return out


def test_prune_dry_run_is_read_only_and_runs_say_what_went(bk_pg, bk_daemons,
                                                           tmp_path):
    db = bk_pg.new_db(rows=100)
    bdir = tmp_path / "pr"

    def section(keep):
        return bk_pg.conf_sections(db) + backup_section(
            "pr", bdir, verify="never", keep_last=keep, keep_daily=0,
            keep_weekly=0, keep_monthly=0)

    d = bk_daemons(section(10))
    for _ in range(3):
        next_second()
        rc, out, err = d.run_backup("pr")
        assert rc == 0, out + err
    ids = [i["id"] for i in d.items("pr")]
    assert len(ids) == 3
    d.write(section(1))
    assert d.cli("reload")[0] == 0
    before = snapshot(bdir, d.state_dir)
    nlog = len(d.events())
    rc, out, err = d.cli("backup", "prune", "pr", "--dry-run")
    assert rc == 0, out + err
    assert out.count("would remove") == 2, out
    assert snapshot(bdir, d.state_dir) == before
    assert [i["id"] for i in d.items("pr")] == ids
    assert [e for e in d.events()[nlog:] if e.get("event") ==
            "backup.prune"] == []

    next_second()
    rc, out, err = d.run_backup("pr")
    assert rc == 0, out + err
    m = re.search(r"^pruned by the retention policy: (.*)$", out, re.M)
    assert m, out
    assert sorted(m.group(1).split()) == sorted(ids), out
    assert len(d.items("pr")) == 1
    pr = d.events("backup.prune")
    assert {e.get("backup_id") for e in pr} == set(ids), pr
    assert all(e.get("backup") == "pr" for e in pr), pr


# --- 9. every backup event names its backup ----------------------------------


def test_every_backup_event_carries_its_backup(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "app", tmp_path / "app", keep_last=1, keep_daily=0, keep_weekly=0,
        keep_monthly=0, check="SELECT count(*) FROM users", expect="> 0"))
    for _ in range(2):
        next_second()
        rc, out, err = d.run_backup("app")
        assert rc == 0, out + err
    bid = d.items("app")[0]["id"]
    # a restore that fails, and one that works
    target = "restore_" + bid.split("-")[-1].lower()
    rc, out, err = d.cli("backup", "restore", bid, "--into", target)
    assert rc != 0, out + err
    rc, out, err = d.cli("backup", "restore", bid, "--into", target,
                         "--create", timeout=120)
    assert rc == 0, out + err
    bk_pg.drop_db(target)
    evs = [e for e in d.events() if str(e.get("event", "")).startswith(
        "backup.")]
    names = {e["event"] for e in evs}
    for want in ("backup.start", "backup.restore", "backup.prune",
                 "backup.succeeded", "backup.verified", "backup.restored"):
        assert want in names, (want, names)
    missing = [e for e in evs if e.get("backup") != "app"]
    assert missing == [], missing
    for e in evs:
        if e["event"] in ("backup.start", "backup.restore", "backup.prune",
                          "backup.restored"):
            assert e.get("backup_id", "").startswith("app-"), e
            assert e.get("database") == "main", e


def test_health_does_not_call_an_unverified_backup_verified(bk_pg, bk_daemons,
                                                            tmp_path):
    """verify = never: the backup is fresh and not a problem, but nothing
    proved it restores, so opsd.health does not say "verified"."""
    db = bk_pg.new_db(rows=100)
    body = bk_pg.conf_sections(db)
    body += backup_section("plain", tmp_path / "plain", verify="never")
    body += backup_section("proved", tmp_path / "proved",
                           check="SELECT count(*) FROM users",
                           expect="> 10")
    d = bk_daemons(body)
    for name in ("plain", "proved"):
        rc, out, err = d.run_backup(name)
        assert rc == 0, out + err
    h = d.rpc("opsd.health")
    assert "1 backup verified" in h["fine"], h
    assert "1 backup fresh, not verified (verify = never)" in h["fine"], h
    assert not any("plain" in p for p in h["problems"]), h


def test_small_dump_done_before_the_writer_opened_the_fifo(bk_pg, bk_daemons,
                                                           tmp_path,
                                                           monkeypatch):
    """The dump writer starts late (OPSD_WRITER_DELAY_MS, a test build's
    stand-in for a loaded host): pg_dump writes a small dump into the
    FIFO's buffer and exits before the writer opens it. The run must
    still end, with the whole dump, not wait for ever in dumping."""
    db = bk_pg.new_db(rows=50)
    monkeypatch.setenv("OPSD_WRITER_DELAY_MS", "1500")
    d = bk_daemons(bk_pg.conf_sections(db) +
                   backup_section("late", tmp_path / "late",
                                  verify="never"))
    monkeypatch.delenv("OPSD_WRITER_DELAY_MS")
    t0 = time.monotonic()
    rc, out, err = d.run_backup("late", timeout=30)
    assert rc == 0, out + err
    assert time.monotonic() - t0 >= 1.4, "the writer did not start late"
    item = d.items("late")[0]
    man = d.rpc("backup.show", {"id": item["id"]})
    dump = tmp_path / "late" / f"{item['id']}.dump"
    assert dump.stat().st_size > 0 and dump.read_bytes()[:5] == b"PGDMP", man
