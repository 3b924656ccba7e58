"""
Scheduled jobs and their state file, as a user sees them: a jobs.json
that says a job last ran in the future does not stall it, and an
`every` job restored from jobs.json still waits its random_delay. The
job is a backup against the backup tests' private PostgreSQL.
"""
import datetime
import json
import time

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import backup_section  # noqa: E402

pytest_plugins = ["backup_svc"]


def daemon_with_state(bk_pg, bk_daemons, tmp_path, state, **keys):
    """opsd (not started) with a backup 'often' every 2s and jobs.json."""
    db = bk_pg.new_db(rows=100)
    body = bk_pg.conf_sections(db) + backup_section(
        "often", tmp_path / "often", verify="never", schedule="every 2s",
        **keys)
    d = bk_daemons(body, start=False)
    d.state_dir.mkdir(mode=0o700)
    (d.state_dir / "jobs.json").write_text(json.dumps(state))
    return d


def unix(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_last_run_in_the_future_is_clamped(bk_pg, bk_daemons, tmp_path):
    future = int(time.time()) + 365 * 86400
    d = daemon_with_state(bk_pg, bk_daemons, tmp_path, {
        "backup often": {"last_run": future, "last_slot": future,
                         "last_ok": 1, "last_result": "from next year"}})
    t0 = time.time()
    d.start()
    d.wait_event("backup.succeeded",
                 pred=lambda e: e.get("backup") == "often", timeout=10)
    assert time.time() - t0 < 10
    warned = [e for e in d.events("jobs.state")
              if "backup often" in e.get("msg", "") and
              f"last_run {future}" in e["msg"] and "clamped" in e["msg"]]
    assert warned, d.log()[-3000:]
    assert warned[0]["level"] == "warning", warned[0]
    job = d.job("backup often")
    assert unix(job["next_run"]) < time.time() + 60, job


def test_restored_every_job_waits_its_random_delay(bk_pg, bk_daemons,
                                                   tmp_path):
    """A missed `every` run restored from jobs.json is due now, plus the
    random delay (up to a day here; the chance it draws under a minute is
    below 0.1%)."""
    recent = int(time.time()) - 60
    d = daemon_with_state(bk_pg, bk_daemons, tmp_path, {
        "backup often": {"last_run": recent, "last_slot": recent,
                         "last_ok": 1, "last_result": "a minute ago"}},
        persistent="yes", random_delay="24h")
    d.start()
    job = d.job("backup often")
    assert unix(job["next_run"]) > time.time() + 60, job
    time.sleep(4)
    assert d.items("often") == []
    assert not d.events("backup.succeeded")
