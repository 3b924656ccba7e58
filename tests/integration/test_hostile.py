"""opsd in hostile and broken surroundings: servers that talk first, close
at the wrong moment or never read, clients that vanish or never read, and
bytes that are not what they should be. Each test is the regression test
of something that once crashed, leaked or stalled the daemon; both builds
run them (the sanitizer build reports what the normal one survives)."""
import json
import socket
import threading
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import wait_for  # noqa: E402

pytest_plugins = ["svc"]


def probe(name, kind, **keys):
    lines = [f"[probe {name}]", f"kind = {kind}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


class BannerServer:
    """Talks first, as SMTP, SSH and FTP servers do: a banner on accept,
    then whatever it reads is ignored until the client closes."""

    def __init__(self, banner=b"220 mail.example ESMTP ready\r\n"):
        self.banner = banner
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._client, args=(c,),
                             daemon=True).start()

    def _client(self, c):
        c.settimeout(5)
        try:
            c.sendall(self.banner)
            while c.recv(4096):
                pass
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def banner_server():
    s = BannerServer()
    yield s
    s.close()


def test_tcp_send_without_expect_against_a_server_that_talks_first(
        opsd_launcher, banner_server):
    # send but no expect, and the server's banner arrives with (or before)
    # the connect: the read callback once compared it to a NULL expect
    d = opsd_launcher(probe("smtp", "tcp",
                            address=f"127.0.0.1:{banner_server.port}",
                            send="QUIT", interval="100ms", rise=1, fall=1))
    wait_for(lambda: banner_server.accepted >= 20, 15,
             "20 connections from the probe",
             detail=lambda: d.log())
    assert d.proc.poll() is None, f"opsd died:\n{d.log()}"
    p = d.probe("smtp")
    assert p["runs_failed"] == 0, p
    assert p["state"] == "up", p
    # and a probe with neither send nor expect against the same server
    d2 = opsd_launcher(probe("bare", "tcp",
                             address=f"127.0.0.1:{banner_server.port}",
                             interval="100ms", rise=1, fall=1))
    d2.wait_state("bare", "up")
    time.sleep(1)
    assert d2.proc.poll() is None, f"opsd died:\n{d2.log()}"
    assert json.loads(json.dumps(d2.probe("bare")))["runs_failed"] == 0


def test_reload_keeps_the_run_of_an_unchanged_probe(opsd_launcher, tmp_path):
    # a reload used to cancel every run in flight, so probe.run callers
    # got "was reconfigured" and the run was lost even when nothing about
    # the probe changed
    slow = probe("slow", "exec", command="sleep 1.5", timeout="10s",
                 interval="1h")
    d = opsd_launcher(slow)
    result = {}

    def run():
        result["rc"], result["r"] = d.run_probe("slow")
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: d.probe("slow").get("running") or
             any(e.get("event") == "rpc.audit" for e in d.events()), 5,
             "probe.run to be under way")
    time.sleep(0.3)
    d.write(slow + probe("other", "tcp", address="127.0.0.1:9",
                         interval="1h"))
    rc, out, err = d.cli("reload")
    assert rc == 0, err
    t.join(10)
    assert result.get("rc") == 0, result
    assert result["r"]["ok"] is True, result
    assert d.probe("slow")["runs_ok"] >= 1
