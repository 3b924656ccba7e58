"""PostgreSQL host names are resolved off the event loop.

libpq resolves host= with a blocking getaddrinfo() inside PQconnectStart;
opsd resolves the name with evdns first and hands libpq hostaddr=. These
tests run opsd in a private mount namespace whose /etc/resolv.conf names a
small DNS server of the test's own (on a loopback address, port 53): it
answers for some names, says NXDOMAIN for others and never answers the
rest. A name nobody answers must not stall the loop (the loop lag stays
small while the probe fails with "cannot resolve ..."), and a name that
resolves must still connect, with the password file matched on the name.
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import OPSD, SANITIZED, env, wait_for  # noqa: E402

pytest_plugins = ["svc"]

SILENT = "db.invalid-test-name"     # the server never answers
NXNAME = "nx.opsd-test"             # NXDOMAIN
DBNAME = "db.opsd-test"             # 127.0.0.1


class DnsServer:
    """UDP DNS on ADDR:53: an A record for the names in answers, an empty
    answer for their other types, NXDOMAIN for the names in nxdomain and
    silence for everything else. Counts the queries it saw per name."""

    def __init__(self, answers, nxdomain):
        self.answers = answers
        self.nxdomain = nxdomain
        self.queries = {}
        self.sock = None
        for _ in range(20):
            addr = "127.%d.%d.%d" % (random.randint(1, 254),
                                     random.randint(1, 254),
                                     random.randint(2, 254))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, addr
            break
        if self.sock is None:
            pytest.skip("cannot bind a loopback address on port 53")
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _qname(msg):
        labels, i = [], 12
        while i < len(msg) and msg[i] != 0:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack("!H", msg[i + 1:i + 3])[0]
        return ".".join(labels).lower(), qtype, i + 5

    def _serve(self):
        while not self.stopping:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(msg) < 17:
                continue
            name, qtype, end = self._qname(msg)
            self.queries[name] = self.queries.get(name, 0) + 1
            question = msg[12:end]
            if name in self.answers:
                rr = b""
                if qtype == 1:          # A
                    rr = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) +
                          socket.inet_aton(self.answers[name]))
                flags, an = 0x8180, 1 if rr else 0
            elif name in self.nxdomain:
                rr, flags, an = b"", 0x8183, 0
            else:
                continue                # never answer
            head = msg[:2] + struct.pack("!HHHHH", flags, 1, an, 0, 0)
            self.sock.sendto(head + question + rr, peer)

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def dns(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private mount namespace")
    srv = DnsServer({DBNAME: "127.0.0.1"}, {NXNAME})
    # glibc and evdns both read it: 2 s per try, one try
    srv.resolv = tmp_path / "resolv.conf"
    srv.resolv.write_text(f"nameserver {srv.addr}\n"
                          "options timeout:2 attempts:1\n")
    yield srv
    srv.stop()


def start_in_ns(d, resolv):
    """Starts the (not yet started) Opsd d with resolv over
    /etc/resolv.conf in a private mount namespace; unshare and sh exec,
    so d.pid is opsd's."""
    d._err = open(d.stderr_path, "ab")
    d.proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv),
         str(OPSD), "-c", str(d.conf_path), "--log-target=stderr"],
        stdin=subprocess.DEVNULL, stdout=d._err, stderr=d._err, env=env())
    wait_for(d._ready, 10, f"opsd {d.name} to answer", detail=d.log)
    return d


def pg_probe(name, conninfo, **keys):
    keys.setdefault("interval", "200ms")
    lines = [f"[probe {name}]", "kind = postgres", f"conninfo = {conninfo}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def lag_max_ms(d):
    return d.rpc("opsd.status")["loop"]["lag_max_ms"]


def test_silent_dns_does_not_stall_the_loop(opsd_launcher, dns, pg_up):
    """Before evdns: every run blocked the loop in getaddrinfo for the
    resolver's whole timeout (2 s here, 10 s and more with glibc's
    defaults), so the loop lag went to seconds."""
    body = pg_probe("dark", f"host={SILENT} port={pg_up.port} "
                    "dbname=postgres user=probe",
                    password_file=pg_up.password_file)
    body += pg_probe("nx", f"host={NXNAME} port={pg_up.port} "
                     "dbname=postgres user=probe",
                     password_file=pg_up.password_file)
    d = start_in_ns(opsd_launcher(body, start=False), dns.resolv)

    def failed(name, what):
        p = d.probe(name)
        return p if p["runs_failed"] >= 3 and what in p["last"]["reason"] \
            else None
    p = wait_for(lambda: failed("dark", f"cannot resolve {SILENT}"), 10,
                 "the silent-DNS probe to fail on the name",
                 detail=lambda: d.probe("dark"))
    assert "timed out" in p["last"]["reason"], p
    p = wait_for(lambda: failed("nx", f"cannot resolve {NXNAME}"), 10,
                 "the NXDOMAIN probe to fail on the name",
                 detail=lambda: d.probe("nx"))
    # the loop went on meanwhile: several ticks, none late
    time.sleep(3)
    assert dns.queries.get(SILENT, 0) >= 1, dns.queries
    lag = lag_max_ms(d)
    assert lag < (400 if SANITIZED else 200), \
        f"the loop stalled for {lag} ms while resolving {SILENT}"
    assert d.probe("dark")["runs_failed"] >= 10, d.probe("dark")


def test_name_resolved_by_dns_connects(opsd_launcher, dns, pg_up, tmp_path):
    """A name only the (evdns) resolver knows, and a password file keyed by
    that name: libpq still sees host= for the lookup, hostaddr= to
    connect."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{DBNAME}:{pg_up.port}:*:probe:{pg_up.password}\n")
    os.chmod(passfile, 0o600)
    body = pg_probe("named", f"host={DBNAME} port={pg_up.port} "
                    f"dbname=postgres user=probe passfile={passfile}",
                    rise=1)
    # a host list: the unknown name is skipped, the order is kept
    body += pg_probe("list", f"host={NXNAME},{DBNAME} port={pg_up.port} "
                     "dbname=postgres user=probe",
                     password_file=pg_up.password_file, rise=1)
    d = start_in_ns(opsd_launcher(body, start=False), dns.resolv)
    p = d.wait_state("named", "up", timeout=10)
    assert p["last"]["ok"] is True, p
    p = d.wait_state("list", "up", timeout=10)
    assert dns.queries.get(DBNAME, 0) >= 1, dns.queries
    assert pg_up.password not in d.log()


def test_localhost_from_hosts_file(opsd_launcher, dns, pg_up):
    """/etc/hosts answers before any DNS server is asked."""
    body = pg_probe("lo", f"host=localhost port={pg_up.port} "
                    "dbname=postgres user=probe",
                    password_file=pg_up.password_file, rise=1)
    d = start_in_ns(opsd_launcher(body, start=False), dns.resolv)
    d.wait_state("lo", "up", timeout=10)
    assert "localhost" not in dns.queries, dns.queries
    assert lag_max_ms(d) < (400 if SANITIZED else 200)
