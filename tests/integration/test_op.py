"""The op journal as a user sees it: op.list, op.show, and what a start
does with ops that a previous opsd left unfinished."""
import json


def call(d, method, params=None):
    msg = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        msg["params"] = params
    return d.rpc(msg)


def test_list_and_show_on_an_empty_journal(opsd):
    r = call(opsd, "op.list")
    assert r.get("result") == {"ops": []}, r
    r = call(opsd, "op.list", {"kind": "backup.run", "object": "app",
                               "limit": 5})
    assert r.get("result") == {"ops": []}, r
    r = call(opsd, "op.show", {"id": "20261201T123456Z-3f2a9c1b"})
    assert r["error"]["code"] == -32002, r
    r = call(opsd, "op.show", {"id": "../../etc/passwd"})
    assert r["error"]["code"] == -32002, r
    r = call(opsd, "op.show")
    assert r["error"]["code"] == -32602, r
    r = call(opsd, "op.list", {"limit": -1})
    assert r["error"]["code"] == -32602, r


def test_unfinished_op_of_unknown_kind_is_abandoned(opsd_factory):
    d = opsd_factory(start=False)
    d.state_dir.mkdir(mode=0o750, exist_ok=True)
    op_id = "20261201T123456Z-3f2a9c1b"
    (d.state_dir / f"op-{op_id}.json").write_text(json.dumps({
        "format": 1, "id": op_id, "kind": "gone.kind", "object": "app",
        "step": "two", "started": "2026-12-01T12:34:56Z", "pid": 1,
        "steps": [{"name": "one", "at": "2026-12-01T12:34:56Z"},
                  {"name": "two", "at": "2026-12-01T12:34:57Z"}],
        "data": {"path": "/etc/passwd"}}))
    # a hostile one: a path for the object
    bad_id = "20261201T123456Z-00000000"
    (d.state_dir / f"op-{bad_id}.json").write_text(json.dumps({
        "format": 1, "id": bad_id, "kind": "gone.kind",
        "object": "../../etc", "step": "two",
        "started": "2026-12-01T12:34:56Z"}))
    d.start()

    ev = d.wait_event("op.interrupted")
    assert ev.get("op_id") == op_id and ev.get("action") == "abandon", ev
    fin = d.wait_event("op.finished")
    assert fin.get("outcome") == "abandoned", fin
    assert fin.get("recovered") == "true", fin
    assert fin.get("message_id"), fin

    r = call(d, "op.list")
    ops = r["result"]["ops"]
    assert [o["id"] for o in ops] == [op_id], ops
    o = ops[0]
    assert o["kind"] == "gone.kind" and o["object"] == "app", o
    assert o["state"] == "abandoned" and o["recovered"] is True, o
    assert o["step"] == "two" and o["started"] == "2026-12-01T12:34:56Z", o
    assert isinstance(o["finished"], str) and o["finished"].endswith("Z"), o
    assert "gone.kind" in o["error"], o

    r = call(d, "op.show", {"id": op_id})
    s = r["result"]
    assert [x["name"] for x in s["steps"]] == ["one", "two"], s
    assert s["state"] == "abandoned", s

    assert not (d.state_dir / f"op-{op_id}.json").exists()
    assert (d.state_dir / f"op-{bad_id}.json.bad").exists()
    assert (d.state_dir / "ops-history.json").exists()

    # the outcome stays after a restart, and nothing is recovered again
    assert d.stop() == 0
    d.start()
    r = call(d, "op.list", {"object": "app"})
    assert [o["id"] for o in r["result"]["ops"]] == [op_id], r
    assert not d.events("op.interrupted", since_start=True), d.log()
