"""Authorization from the peer's credentials (SO_PEERCRED)."""
import json

import pytest

from conftest import AS_NOBODY, NOBODY_UID, as_user


def test_nobody_may_read(opsd):
    rc, out, err = opsd.cli("--json", "status", prefix=AS_NOBODY)
    assert rc == 0, f"status as nobody exited {rc}: {err}"
    assert json.loads(out)["pid"] == opsd.pid
    rc, out, err = opsd.cli("methods", prefix=AS_NOBODY)
    assert rc == 0 and "opsd.status" in out, (rc, out, err)


@pytest.mark.parametrize("args", [
    pytest.param(("reload",), id="reload"),
    pytest.param(("log-level", "debug"), id="log-level"),
    pytest.param(("call", "opsd.log_level", '{"level":"debug"}'),
                 id="call")])
def test_nobody_may_not_mutate(opsd, args):
    rc, out, err = opsd.cli(*args, prefix=AS_NOBODY)
    assert rc == 1, f"{' '.join(args)} as nobody exited {rc}, not 1: " \
        f"{out} {err}"
    assert "root" in err and "admin group" in err, \
        f"the denial should say root or the admin group may: {err!r}"
    assert "-32000" in err, f"expected error code -32000: {err!r}"
    rc, out, err = opsd.cli("--json", *args, prefix=AS_NOBODY)
    assert rc == 1
    assert json.loads(out)["code"] == -32000, out
    st = opsd.status()
    assert st["log_level"] == "info" and st["reloads"] == 0, \
        f"a denied call took effect: {st}"
    denied = opsd.events("rpc.denied")
    assert denied, f"no rpc.denied event on stderr:\n{opsd.log()}"
    ev = denied[0]
    assert ev.get("uid") == str(NOBODY_UID), ev
    method = "opsd.reload" if args[0] == "reload" else "opsd.log_level"
    assert ev.get("method") == method, ev
    assert ev.get("pid") and ev.get("comm") == "opsd-cli", ev
    assert not opsd.events("rpc.audit"), \
        f"a denied call was audited as a call:\n{opsd.log()}"


def test_denied_even_with_bad_params(opsd):
    """Authorization comes before parameter checks: no probing."""
    rc, out, err = opsd.cli("--json", "call", "opsd.log_level",
                            '{"bogus": 1}', prefix=AS_NOBODY)
    assert rc == 1 and json.loads(out)["code"] == -32000, (out, err)


def test_root_mutation_is_audited(opsd):
    rc, out, err = opsd.cli("log-level", "debug")
    assert rc == 0, err
    audit = opsd.events("rpc.audit")
    assert audit, f"no rpc.audit event for a mutating call:\n{opsd.log()}"
    assert audit[-1].get("uid") == "0" and \
        audit[-1].get("method") == "opsd.log_level", audit[-1]
    # read-only calls are not audited
    n = len(audit)
    assert opsd.cli("status")[0] == 0
    assert len(opsd.events("rpc.audit")) == n


@pytest.mark.parametrize("how", ["supplementary", "primary"])
def test_admin_group_may_mutate(opsd_factory, admin_group, how):
    name, gid = admin_group
    d = opsd_factory(admin_group=name)
    prefix = as_user(groups=[gid]) if how == "supplementary" else \
        as_user(regid=gid)
    rc, out, err = d.cli("log-level", "debug", prefix=prefix)
    assert rc == 0, f"log-level as nobody in {name} ({how}) exited {rc}: " \
        f"{err}"
    rc, out, err = d.cli("reload", prefix=prefix)
    assert rc == 0, f"reload as nobody in {name} ({how}) exited {rc}: {err}"
    st = d.status()
    assert st["reloads"] == 1, st
    audit = [e for e in d.events("rpc.audit")
             if e.get("uid") == str(NOBODY_UID)]
    assert len(audit) == 2, f"expected 2 audited calls by uid " \
        f"{NOBODY_UID}:\n{d.log()}"
    # without the group, still denied
    rc, out, err = d.cli("reload", prefix=AS_NOBODY)
    assert rc == 1 and "-32000" in err, (rc, err)
