"""
What opsd does with the files in a backup directory that it did not write
itself, or that are no longer what it wrote: manifests naming paths out
of the directory or another backup's dump, symlinked dumps, truncated
manifests; scratch databases of backups whose names fold to the same
thing; and an S3 endpoint that accepts connections and never answers.
"""
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import SCALE, backup_section, wait_for  # noqa: E402

pytest_plugins = ["backup_svc"]


def files_in(d):
    return sorted(p.name for p in Path(d).iterdir())


def next_second():
    t = time.time()
    time.sleep(1.02 - (t % 1))


def run_ok(d, name):
    rc, out, err = d.run_backup(name)
    assert rc == 0, out + err
    return re.search(rf"run ({re.escape(name)}-\S+)", out).group(1)


def list_items(d, name):
    rc, out, err = d.cli("--json", "backup", "list", name)
    assert rc == 0, out + err
    (b,) = [b for b in json.loads(out)["backups"] if b["name"] == name]
    return {i["id"]: i for i in b["backups"]}


def plant(bdir, id_, template, **fields):
    """A manifest ID.json in bdir: template with fields changed."""
    m = dict(template, id=id_, **fields)
    (Path(bdir) / f"{id_}.json").write_text(json.dumps(m))


# --- 1: retention never deletes through a manifest ---------------------------


def test_prune_deletes_only_own_derived_files(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    bdir = tmp_path / "shared.backups"
    keep = dict(verify="never", keep_last=1, keep_daily=0, keep_weekly=0,
                keep_monthly=0)
    body = bk_pg.conf_sections(db) + backup_section("pf", bdir, **keep) + \
        backup_section("other", bdir, **keep)
    d = bk_daemons(body)
    good = run_ok(d, "pf")
    other = run_ok(d, "other")
    template = json.loads((bdir / f"{good}.json").read_text())

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim2 = tmp_path / "victim2"
    victim2.write_text("also precious\n")
    rel = os.path.relpath(victim, bdir)
    assert rel.startswith("..")
    # A: names a file outside dir; B: names another backup's dump;
    # C: consistent, but its dump is a symlink out of dir
    a, b, c = ("pf-20200101T000000Z", "pf-20200102T000000Z",
               "pf-20200103T000000Z")
    plant(bdir, a, template, file=rel, start=1577836800)
    plant(bdir, b, template, file=f"{other}.dump", start=1577923200)
    plant(bdir, c, template, file=f"{c}.dump", start=1578009600)
    os.symlink(victim2, bdir / f"{c}.dump")
    assert d.cli("reload")[0] == 0

    items = list_items(d, "pf")
    rc0, out0, err0 = d.cli("backup", "list", "pf")
    # a planted manifest is never shown (nor verified, restored) as one
    rc_show = d.cli("backup", "show", a)[0]
    rc, out, err = d.cli("--json", "backup", "prune", "pf")
    assert rc == 0, out + err
    res = json.loads(out)
    assert victim.exists() and victim.read_text() == "precious\n"
    assert victim2.read_text() == "also precious\n"
    assert (bdir / f"{other}.dump").is_file()
    for i in (a, b, c):
        assert i in items and "invalid" in items[i].get("error", ""), items
    assert "file" in items[a]["error"] and "file" in items[b]["error"]
    assert "symbolic link" in items[c]["error"], items[c]
    assert "error" not in items[good] and items[good]["sha256"], items
    assert rc0 == 0 and "manifest invalid" in out0, out0 + err0
    assert rc_show != 0

    assert sorted(res["removed"]) == [a, b, c] and res["kept"] == [good], res
    assert (bdir / f"{other}.dump").is_file()
    assert files_in(bdir) == sorted(f"{i}.{x}" for i in (good, other)
                                    for x in ("dump", "json"))

    # automatic retention after a run goes the same way
    plant(bdir, a, template, file=rel, start=1577836800)
    assert d.cli("reload")[0] == 0
    next_second()
    newest = run_ok(d, "pf")
    assert victim.read_text() == "precious\n"
    wait_for(lambda: not (bdir / f"{a}.json").exists(), 10,
             "the run's retention to remove the planted manifest")
    assert files_in(bdir) == sorted(f"{i}.{x}" for i in (newest, other)
                                    for x in ("dump", "json"))


# --- 2: a truncated manifest is listed and prunable --------------------------


def test_truncated_manifest_is_listed_and_pruned(bk_pg, bk_daemons,
                                                 tmp_path):
    db = bk_pg.new_db(rows=100)
    bdir = tmp_path / "tr.backups"
    keep = dict(verify="never", keep_last=1, keep_daily=0, keep_weekly=0,
                keep_monthly=0)
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section("tr", bdir,
                                                            **keep))
    old = run_ok(d, "tr")
    next_second()
    d.write(bk_pg.conf_sections(db) + backup_section(
        "tr", bdir, **dict(keep, keep_last=5)))
    assert d.cli("reload")[0] == 0
    new = run_ok(d, "tr")
    man = bdir / f"{old}.json"
    man.write_bytes(man.read_bytes()[:40])
    d.write(bk_pg.conf_sections(db) + backup_section("tr", bdir, **keep))
    assert d.cli("reload")[0] == 0

    items = list_items(d, "tr")
    assert list(items) == [old, new], items
    assert items[old]["error"].startswith("manifest unreadable: "), items
    assert items[old]["bytes"] == (bdir / f"{old}.dump").stat().st_size
    for k in ("id", "time", "bytes", "sha256", "verified", "uploaded"):
        assert k in items[old] and k in items[new], items
    assert "error" not in items[new] and len(items[new]["sha256"]) == 64
    rc, out, err = d.cli("backup", "list", "tr")
    assert rc == 0, out + err
    line = [x for x in out.splitlines() if old in x]
    assert line and "manifest unreadable:" in line[0], out

    rc, out, err = d.cli("--json", "backup", "prune", "tr")
    assert rc == 0, out + err
    res = json.loads(out)
    assert res["removed"] == [old] and res["kept"] == [new], res
    assert files_in(bdir) == [f"{new}.dump", f"{new}.json"]
    assert list(list_items(d, "tr")) == [new]


# --- 3: scratch databases of names that fold alike ---------------------------


SLOW = "SELECT count(*) FROM (SELECT pg_sleep(2)) s, users"


def test_scratch_names_of_similar_backups_do_not_collide(bk_pg, bk_daemons,
                                                         tmp_path):
    """app.x and app_x fold to the same scratch name (and so do two long
    names that share their first 36 bytes); verified at the same time
    (same start second, a check that sleeps) they must not meet."""
    long1 = "a" * 38 + "_one"
    long2 = "a" * 38 + "_two"
    names = {"app.x": 100, "app_x": 200, long1: 300, long2: 400}
    body = ""
    for i, (name, rows) in enumerate(names.items()):
        db = bk_pg.new_db(rows=rows)
        body += bk_pg.conf_sections(db, dbsection=f"db{i}")
        body += backup_section(name, tmp_path / f"b{i}", database=f"db{i}",
                               check=SLOW, expect=f"= {rows}")
    d = bk_daemons(body)
    next_second()
    for name in names:
        d.rpc("backup.run", {"name": name})
    for name in names:
        d.wait_idle(name, timeout=90)
    for name in names:
        items = d.items(name)
        assert len(items) == 1 and items[0]["verified"] == "ok", \
            (name, items, d.log()[-3000:])
    assert bk_pg.databases("opsd_verify%") == []


# --- 4: an S3 endpoint that never answers ------------------------------------


class Silent:
    """An endpoint that never answers. With accept, a server that takes
    each connection and never reads or writes; without, a listening
    socket whose queue full() fills, so that further connects hang (no
    SYN-ACK), like a blackholed address."""

    def __init__(self, accept):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16 if accept else 0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        if accept:
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.fillers.append(c)

    def full(self):
        """With backlog 0, one connection fills the queue."""
        self.fillers.append(socket.create_connection(
            ("127.0.0.1", self.port), timeout=2))

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_endpoint(request):
    s = Silent(accept=request.node.callspec.params["phase"] == "stall")
    yield s
    s.close()


def s3_keys(tmp_path, port):
    keys = tmp_path / "s3keys"
    keys.mkdir(exist_ok=True)
    for f in ("access", "secret"):
        (keys / f).write_text("AK" + f + "\n")
        os.chmod(keys / f, 0o600)
    return {"upload": "s3://bk/p", "s3_endpoint": f"http://127.0.0.1:{port}",
            "s3_region": "us-east-1", "s3_access_key_file": keys / "access",
            "s3_secret_key_file": keys / "secret"}


@pytest.mark.parametrize("phase", ["stall", "connect"])
def test_silent_s3_endpoint_fails_within_the_bound(bk_pg, bk_daemons,
                                                   tmp_path, silent_endpoint,
                                                   phase):
    port = silent_endpoint.port
    if phase == "connect":
        silent_endpoint.full()
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "silent", tmp_path / "silent", verify="never",
        upload_connect_timeout="1s", upload_stall_timeout="2s",
        **s3_keys(tmp_path, port)))
    t0 = time.monotonic()
    d.rpc("backup.run", {"name": "silent"})
    # four tries of at most 2 s each (curl judges a stall on its speed
    # over the last ~5 s, so up to 7 s), 2 + 4 + 8 s between them
    bound = 4 * 7 + 14 + 10
    (ev,) = d.wait_event("backup.upload_failed", timeout=bound)[:1]
    took = time.monotonic() - t0
    assert took < bound * SCALE, took
    d.wait_idle("silent")
    (item,) = d.items("silent")
    assert item["uploaded"] == "FAILED", item
    man = d.rpc("backup.show", {"id": item["id"]})
    err = man["upload"]["error"]
    want = "upload_stall_timeout" if phase == "stall" else \
        "upload_connect_timeout"
    assert want in err, err
    assert man["upload"]["tries"] == 4, man["upload"]
    assert want in json.dumps(ev), ev
