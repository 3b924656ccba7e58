"""The documents that must agree with the daemon."""
import json
import re

import pytest

from conftest import OPSD, REPO, message_ids, run


def test_protocol_md_lists_exactly_the_methods(opsd):
    doc = REPO / "docs" / "protocol.md"
    if not doc.exists():
        pytest.skip(f"{doc} does not exist yet")
    documented = re.findall(r"^### `([^`]+)`\s*$", doc.read_text(), re.M)
    rc, out, err = opsd.cli("--json", "methods")
    assert rc == 0, f"opsd-cli --json methods failed ({rc}): {err}"
    served = [m["name"] for m in json.loads(out)["methods"]]
    assert served, "the daemon lists no methods"
    dupes = sorted({m for m in documented if documented.count(m) > 1})
    assert not dupes, f"docs/protocol.md documents {dupes} twice"
    missing = sorted(set(served) - set(documented))
    extra = sorted(set(documented) - set(served))
    assert not missing and not extra, \
        f"docs/protocol.md is out of date: undocumented methods {missing}, " \
        f"documented but not served {extra}"


def test_methods_table_is_sorted_and_complete(opsd):
    rc, out, err = opsd.cli("--json", "methods")
    assert rc == 0, err
    methods = json.loads(out)["methods"]
    names = [m["name"] for m in methods]
    assert names == sorted(names), names
    for m in methods:
        assert m["access"] in ("read", "admin"), m
        assert m["help"], f"{m['name']} has no help text"
    by_name = {m["name"]: m for m in methods}
    for name, access in (("opsd.status", "read"), ("opsd.methods", "read"),
                         ("opsd.reload", "admin"),
                         ("opsd.log_level", "admin")):
        assert by_name.get(name, {}).get("access") == access, by_name.get(
            name)
    rc, out, err = opsd.cli("methods", "-q")
    assert rc == 0 and out.split() == names, out


def test_catalog_documents_every_message_id():
    catalog = REPO / "docs" / "opsd.catalog"
    if not catalog.exists():
        pytest.skip(f"{catalog} does not exist yet")
    text = catalog.read_text()
    entries = re.findall(r"^-- ([0-9a-f]{32})\s*$", text, re.M)
    ids = message_ids()
    missing = {name: mid for name, mid in ids.items() if mid not in entries}
    assert not missing, f"docs/opsd.catalog has no entry for {missing}"
    unknown = set(entries) - set(ids.values())
    assert not unknown, f"docs/opsd.catalog has entries for MESSAGE_IDs " \
        f"the daemon does not define: {sorted(unknown)}"
    assert len(entries) == len(set(entries)), "duplicate catalog entries"


def test_registry_lists_every_event_type_and_the_catalog_has_them():
    """`opsd --list-events` walks the subsystem registry: every event type
    defined in the sources must be registered there (or the catalog check
    would miss it), and every registered one must be in the catalog."""
    rc, out, err = run([OPSD, "--list-events"])
    assert rc == 0, err
    listed = dict(line.split() for line in out.splitlines())
    assert listed, "opsd --list-events printed nothing"
    assert listed == message_ids(), \
        "event types defined in daemon/**/*.c and those the registry " \
        f"lists differ: only in sources " \
        f"{sorted(set(message_ids()) - set(listed))}, only listed " \
        f"{sorted(set(listed) - set(message_ids()))}"
    catalog = (REPO / "docs" / "opsd.catalog").read_text()
    entries = set(re.findall(r"^-- ([0-9a-f]{32})\s*$", catalog, re.M))
    missing = {n: m for n, m in listed.items() if m not in entries}
    assert not missing, f"docs/opsd.catalog has no entry for {missing}"
