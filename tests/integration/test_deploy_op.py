"""
Cutovers on the op journal: opsd killed at every step of deploy.cutover
(the fault points of a test build, OPSD_FAULT=deploy.cutover:STEP[:after]:
exit 77 right after STEP is on disk, or as the op leaves it), then started
again without the fault. Whatever the step, the next start must finish or
undo the cutover and say which, and leave:

  - nginx sending traffic to a slot that answers (and the include file
    naming it),
  - `deploy status` telling the truth: its active slot and version are
    what nginx serves, no cutover under way,
  - the op in the history, recovered, with the outcome the step implies,
  - no unfinished op file, no rendered include left beside the real one,
  - and a next deploy that works.

The forward steps are crashed in a cutover that takes every one of them
(a migration, a watch, no rollback window: drain and stop_old); the steps
of the way back in a cutover whose verify fails.
"""
import json
import shutil
import time

import pytest

pytest.register_assert_rewrite("deploy_svc")
from deploy_svc import Stack, get, short_dir, wait_for  # noqa: E402

FORWARD = ["prepare", "start", "gate", "migrate", "render", "switch", "test",
           "reload", "confirm", "verify", "watch", "drain", "stop_old"]
BACK = ["restore", "reload_back", "confirm_back", "stop_new"]
# from here on a crash finds the cutover far enough to finish it
FINISHED_FROM = "reload"


def outcome(step, after, back):
    if back:
        return "rolled_back"
    return "ok" if FORWARD.index(step) >= FORWARD.index(FINISHED_FROM) \
        else "failed"


CASES = [(s, a, False) for s in FORWARD for a in (False, True)] + \
        [(s, a, True) for s in BACK for a in (False, True)]


@pytest.fixture
def stack(tmp_path):
    rundir = short_dir()
    s = Stack(tmp_path, rundir)
    yield s
    errors = s.cleanup()
    shutil.rmtree(rundir, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def keys(back):
    k = dict(migrate="true", watch="500ms", rollback_window="0",
             drain="300ms", health_rise=1, health_interval="100ms")
    if back:
        k.update(verify_timeout="500ms")
    return k


@pytest.mark.parametrize("step,after,back", CASES,
                         ids=[s + (":after" if a else "")
                              for s, a, _ in CASES])
def test_crash_at_every_step(stack, step, after, back):
    if back:
        stack.slots.behave("2.0", error_500=True)
    stack.up(start_daemon=False, **keys(back))
    d = stack.d
    fault = f"deploy.cutover:{step}" + (":after" if after else "")
    d.start(extra_env={"OPSD_FAULT": fault})
    # the reply may or may not make it out before the exit
    d.cli("deploy", "start", "api", "--version", "2.0")
    assert d.wait_exit() == 77, d.log()[-3000:]
    assert "OPSD_FAULT=" + fault in d.log(), d.log()[-3000:]
    left = sorted(d.state_dir.glob("op-*.json"))
    assert len(left) == 1, left
    op = json.loads(left[0].read_text())
    assert op["kind"] == "deploy.cutover" and op["object"] == "api", op

    d.start()
    o = wait_for(lambda: (lambda x: x if x and x["state"] != "running"
                          else None)(d.op(op["id"])), 60,
                 f"op {op['id']} to finish", detail=lambda: d.log()[-4000:])
    want = outcome(step, after, back)
    assert o["state"] == want and o["recovered"] is True, (o, want)
    assert not list(d.state_dir.glob("op-*.json"))
    assert not list(stack.nginx.upstream.parent.glob("*.opsd-new"))
    ev = d.wait_event("deploy.recovered", since_start=True)[0]
    assert ev["op"] == op["id"], ev

    # nginx serves a slot that answers, and the status says which
    status, version, _ = get(stack.nginx.port)
    assert status == 200, (status, version)
    s = d.status()
    assert s["operation"] is None and s["state"] == "idle", s
    assert s["active"]["version"] == version, (s, version)
    assert s["deploys"][0]["result"] == want, s["deploys"][0]
    active = s["active"]["slot"]
    assert str(stack.slots.ports[active]) in \
        stack.nginx.upstream.read_text()
    assert stack.slots.running(active)
    assert version == ("2.0" if want == "ok" else "1.0")
    other = "blue" if active == "green" else "green"
    if want != "ok" or s["previous"]["running"] is False:
        wait_for(lambda: not stack.slots.running(other), 10,
                 f"slot {other} to be stopped")

    # and the next cutover works
    stack.slots.behave("3.0")
    rc, out, err = stack.deploy("3.0")
    assert stack.served() == "3.0"


def test_every_step_is_taken_in_order(stack):
    """One cutover without faults takes every forward step, as op show
    lists them: the crash cases above cover all of them."""
    stack.up(**keys(False))
    rc, out, err = stack.deploy("2.0")
    h = stack.d.status()["deploys"][0]
    rc, out, err = stack.d.cli("--json", "op", "show", h["op"])
    assert rc == 0, out + err
    steps = [x["name"] for x in json.loads(out)["steps"]]
    assert steps == FORWARD, steps


def test_every_back_step_is_taken_in_order(stack):
    stack.slots.behave("2.0", error_500=True)
    stack.up(**keys(True))
    stack.deploy("2.0", ok=False)
    h = stack.d.status()["deploys"][0]
    rc, out, err = stack.d.cli("--json", "op", "show", h["op"])
    steps = [x["name"] for x in json.loads(out)["steps"]]
    assert steps == FORWARD[:FORWARD.index("verify") + 1] + BACK, steps


def test_hostile_state_file_is_set_aside(stack):
    """A state file that does not parse is moved aside, and the deploy
    starts from its configuration."""
    stack.up(start_daemon=False)
    d = stack.d
    (d.state_dir / "deploy").mkdir(parents=True)
    (d.state_dir / "deploy" / "api.json").write_text(
        '{"format": 1, "active": {"slot": "green", "version": "$(reboot)"}}')
    d.start()
    assert (d.state_dir / "deploy" / "api.json.bad").exists()
    s = d.status()
    assert s["active"]["slot"] == "blue" and \
        s["active"]["version"] == "1.0", s
    assert "state unreadable (active.version is malformed)" in d.log()
    stack.deploy("2.0")
    time.sleep(0.1)
    assert stack.served() == "2.0"
