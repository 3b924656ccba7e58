"""JSON-RPC robustness: every bad input gets the right error on the same
connection, which then keeps working, and the daemon stays up."""
import json
import socket

import pytest

MAX_MESSAGE = 1024 * 1024
STATUS = {"jsonrpc": "2.0", "method": "opsd.status", "id": 1}


def assert_error(reply, code, id_=None, mentions=()):
    assert "error" in reply and "result" not in reply, \
        f"expected error {code}, got {reply}"
    err = reply["error"]
    assert err.get("code") == code, f"expected error {code}, got {reply}"
    assert isinstance(err.get("message"), str) and err["message"], reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert "id" in reply and reply["id"] == id_, \
        f"expected id {id_!r} in the error reply, got {reply}"
    for word in mentions:
        assert word in err["message"], \
            f"error message should mention {word!r}: {err['message']!r}"


def assert_still_works(conn, opsd):
    """A valid call on the same connection works, and the daemon is the
    same process."""
    reply = conn.call("opsd.status")
    assert "result" in reply, f"valid call after the bad one: {reply}"
    assert reply["result"]["pid"] == opsd.pid
    rc, out, err = opsd.cli("--json", "status")
    assert rc == 0, f"opsd-cli status failed afterwards ({rc}): {err}"
    assert json.loads(out)["pid"] == opsd.pid, "the daemon was restarted?"


def test_garbage_line(opsd):
    c = opsd.connect()
    c.send(b"\x00\xffthis is { not json ]]\n")
    assert_error(c.read_reply(), -32700, None)
    assert_still_works(c, opsd)


def test_truncated_json_line(opsd):
    c = opsd.connect()
    c.send(b'{"jsonrpc":"2.0","method":"opsd.status","id":5\n')
    assert_error(c.read_reply(), -32700, None)
    assert_still_works(c, opsd)


def test_blank_lines_are_ignored(opsd):
    c = opsd.connect()
    c.send(b"\n \r\n\t\n")
    c.expect_silence(0.3)
    assert_still_works(c, opsd)


def test_oversized_line(opsd):
    c = opsd.connect(timeout=20)
    # 1 MiB + 10 bytes with no newline until the very end
    c.send(b"x" * (MAX_MESSAGE + 10) + b"\n")
    assert_error(c.read_reply(10), -32600, None)
    # exactly one error for the whole line, then back in step
    assert_still_works(c, opsd)


def test_oversized_valid_json(opsd):
    """A well-formed request that is too long is refused, not executed."""
    c = opsd.connect(timeout=20)
    pad = " " * (MAX_MESSAGE + 100)
    c.send(('{"jsonrpc":"2.0","method":"opsd.status","id":2,' + pad +
            '"params":{}}\n').encode())
    reply = c.read_reply(10)
    assert_error(reply, -32600, None)
    assert_still_works(c, opsd)


def test_line_at_the_limit_is_accepted(opsd):
    c = opsd.connect(timeout=20)
    head = b'{"jsonrpc":"2.0","method":"opsd.status","id":3}'
    c.send(head + b" " * (MAX_MESSAGE - len(head)) + b"\n")
    reply = c.read_reply(10)
    assert reply.get("id") == 3 and "result" in reply, \
        f"a request of exactly {MAX_MESSAGE} bytes was refused: {reply}"
    assert_still_works(c, opsd)


@pytest.mark.parametrize("request_", [
    pytest.param({"method": "opsd.status", "id": 7}, id="no-jsonrpc"),
    pytest.param({"jsonrpc": "1.0", "method": "opsd.status", "id": 7},
                 id="jsonrpc-1.0"),
    pytest.param({"jsonrpc": "2.0", "method": 42, "id": 7},
                 id="method-not-string"),
    pytest.param({"jsonrpc": "2.0", "id": 7}, id="no-method"),
    pytest.param({"jsonrpc": "2.0", "method": "opsd.status", "params": 3,
                  "id": 7}, id="params-number"),
    pytest.param({"jsonrpc": "2.0", "method": "opsd.status", "params": "x",
                  "id": 7}, id="params-string"),
])
def test_invalid_envelope(opsd, request_):
    c = opsd.connect()
    c.send(request_)
    reply = c.read_reply()
    assert_error(reply, -32600, 7)
    assert_still_works(c, opsd)


@pytest.mark.parametrize("raw", [
    pytest.param(b"42\n", id="number"),
    pytest.param(b'"opsd.status"\n', id="string"),
    pytest.param(b"null\n", id="null"),
    pytest.param(b'{"jsonrpc":"2.0","method":"opsd.status","id":{"a":1}}\n',
                 id="id-object")])
def test_invalid_request_without_usable_id(opsd, raw):
    c = opsd.connect()
    c.send(raw)
    assert_error(c.read_reply(), -32600, None)
    assert_still_works(c, opsd)


def test_unknown_method(opsd):
    c = opsd.connect()
    c.send({"jsonrpc": "2.0", "method": "opsd.frobnicate", "id": "abc"})
    assert_error(c.read_reply(), -32601, "abc", mentions=("opsd.frobnicate",))
    assert_still_works(c, opsd)


@pytest.mark.parametrize("params, name", [
    pytest.param({"level": 5}, "level", id="wrong-type"),
    pytest.param({"level": "debug", "colour": "red"}, "colour",
                 id="unknown-param"),
    pytest.param({}, "level", id="missing-param"),
    pytest.param(["debug", "extra"], "2", id="too-many-positional"),
])
def test_invalid_params(opsd, params, name):
    c = opsd.connect()
    c.send({"jsonrpc": "2.0", "method": "opsd.log_level", "params": params,
            "id": 9})
    assert_error(c.read_reply(), -32602, 9, mentions=(name,))
    assert opsd.status()["log_level"] == "info", \
        "a call with invalid params changed the log level"
    assert_still_works(c, opsd)


def test_positional_params(opsd):
    c = opsd.connect()
    c.send({"jsonrpc": "2.0", "method": "opsd.log_level",
            "params": ["warning"], "id": 10})
    reply = c.read_reply()
    assert reply.get("result", {}).get("level") == "warning", reply
    assert opsd.status()["log_level"] == "warning"


def test_batch(opsd):
    c = opsd.connect()
    c.send([{"jsonrpc": "2.0", "method": "opsd.status", "id": 1},
            {"jsonrpc": "2.0", "method": "opsd.methods", "id": 2},
            {"jsonrpc": "2.0", "method": "nope", "id": 3}])
    reply = c.read_reply()
    assert isinstance(reply, list) and len(reply) == 3, \
        f"a batch of 3 should get an array of 3 replies: {reply}"
    by_id = {r.get("id"): r for r in reply}
    assert set(by_id) == {1, 2, 3}, reply
    assert by_id[1]["result"]["pid"] == opsd.pid
    assert any(m["name"] == "opsd.status"
               for m in by_id[2]["result"]["methods"])
    assert_error(by_id[3], -32601, 3)
    assert_still_works(c, opsd)


def test_batch_with_invalid_members_and_notification(opsd):
    c = opsd.connect()
    c.send([1, {"jsonrpc": "2.0", "method": "opsd.status"},
            {"jsonrpc": "2.0", "method": "opsd.status", "id": 4}])
    reply = c.read_reply()
    assert isinstance(reply, list) and len(reply) == 2, \
        f"expected 2 replies (invalid member, request; none for the " \
        f"notification): {reply}"
    assert_error(reply[0], -32600, None)
    assert reply[1].get("id") == 4 and "result" in reply[1], reply


def test_empty_batch(opsd):
    c = opsd.connect()
    c.send(b"[]\n")
    assert_error(c.read_reply(), -32600, None)
    assert_still_works(c, opsd)


def test_notifications_get_no_reply(opsd):
    c = opsd.connect()
    c.send({"jsonrpc": "2.0", "method": "opsd.status"})
    c.send({"jsonrpc": "2.0", "method": "no.such.method"})
    c.send([{"jsonrpc": "2.0", "method": "opsd.status"},
            {"jsonrpc": "2.0", "method": "opsd.methods"}])
    c.send({"jsonrpc": "2.0", "method": "opsd.status", "id": 99})
    reply = c.read_reply()
    assert reply.get("id") == 99, \
        f"a notification was answered (first reply is not id 99): {reply}"
    c.expect_silence(0.3)
    assert_still_works(c, opsd)


def test_many_requests_in_one_write(opsd):
    c = opsd.connect()
    data = b"".join(json.dumps({"jsonrpc": "2.0", "method": "opsd.status",
                                "id": i}).encode() + b"\n"
                    for i in range(200))
    c.send(data)
    ids = [c.read_reply()["id"] for _ in range(200)]
    assert ids == list(range(200)), "replies out of order or missing"


def test_half_closed_client_gets_its_replies(opsd):
    """`printf '...' | nc -U`: the client shuts down its sending side right
    after the requests; every reply still arrives, then EOF."""
    c = opsd.connect()
    data = b"".join(json.dumps({"jsonrpc": "2.0", "method": "opsd.methods",
                                "id": i}).encode() + b"\n"
                    for i in range(300))
    c.send(data)
    c.sock.shutdown(socket.SHUT_WR)
    ids = [c.read_reply(10)["id"] for _ in range(300)]
    assert ids == list(range(300)), "replies lost after the client's EOF"
    with pytest.raises(EOFError):
        c.read_line(5)
    assert opsd.status()["pid"] == opsd.pid


def test_request_split_across_writes(opsd):
    c = opsd.connect()
    raw = json.dumps({"jsonrpc": "2.0", "method": "opsd.status",
                      "id": 11}).encode() + b"\n"
    for b in raw:
        c.send(bytes([b]))
    assert c.read_reply().get("id") == 11


def test_reply_lines_respect_the_message_limit(opsd):
    """opsd-proto.h: OPSD_MAX_MESSAGE bounds request *and* response lines.
    A batch well under the limit must not produce a reply line over it."""
    c = opsd.connect(timeout=30)
    one = json.dumps(STATUS, separators=(",", ":"))
    n = 5000
    batch = ("[" + ",".join([one] * n) + "]").encode()
    assert len(batch) <= MAX_MESSAGE // 2
    c.send(batch + b"\n")
    line = c.read_line(30)
    assert len(line) <= MAX_MESSAGE, \
        f"a {len(batch)}-byte batch of {n} requests got a reply line of " \
        f"{len(line)} bytes, over OPSD_MAX_MESSAGE ({MAX_MESSAGE})"
    json.loads(line)
    assert_still_works(c, opsd)


def test_everything_on_one_connection(opsd):
    """The whole sequence of abuse on one connection, then opsd-cli."""
    c = opsd.connect(timeout=20)
    c.send(b"garbage\n")
    assert_error(c.read_reply(), -32700, None)
    assert "result" in c.call("opsd.status")
    c.send(b"y" * (MAX_MESSAGE + 10) + b"\n")
    assert_error(c.read_reply(10), -32600, None)
    assert "result" in c.call("opsd.status")
    c.send({"method": "opsd.status", "id": 1})
    assert_error(c.read_reply(), -32600, 1)
    c.send({"jsonrpc": "2.0", "method": 1, "id": 2})
    assert_error(c.read_reply(), -32600, 2)
    c.send({"jsonrpc": "2.0", "method": "opsd.status", "params": 1, "id": 3})
    assert_error(c.read_reply(), -32600, 3)
    c.send({"jsonrpc": "2.0", "method": "x.y", "id": 4})
    assert_error(c.read_reply(), -32601, 4)
    c.send({"jsonrpc": "2.0", "method": "opsd.log_level",
            "params": {"level": 5}, "id": 5})
    assert_error(c.read_reply(), -32602, 5, mentions=("level",))
    c.send({"jsonrpc": "2.0", "method": "opsd.log_level",
            "params": {"level": "info", "bogus": 1}, "id": 6})
    assert_error(c.read_reply(), -32602, 6, mentions=("bogus",))
    c.send([{"jsonrpc": "2.0", "method": "opsd.status", "id": i}
            for i in (7, 8, 9)])
    batch = c.read_reply()
    assert sorted(r["id"] for r in batch) == [7, 8, 9], batch
    c.send({"jsonrpc": "2.0", "method": "opsd.status"})
    c.send({"jsonrpc": "2.0", "method": "opsd.status", "id": 10})
    assert c.read_reply()["id"] == 10
    assert_still_works(c, opsd)
