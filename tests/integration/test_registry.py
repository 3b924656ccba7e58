"""The subsystem registry's promise: a new subsystem is its folder under
daemon/ plus one word in daemon/meson.build's `subsystems` list, and then
config, reload, shutdown, /metrics, opsd.methods, opsd.status and
--list-events know it.

A copy of the tracked tree gets daemon/example/ (the files in
example_subsys/ next to this file: [example NAME] sections, a check across
sections, per-daemon state, a collector, a read method and an event type)
and 'example' in the list; git in the copy shows that nothing else moved.
The copy is built with --werror (warning_level 2: -Wall -Wextra) and its
daemon is started and asked about the new subsystem.

Slow for this suite (a second build of the whole tree, 10-30 s, more on a
sanitizer run): the build is done once per module and shared.
"""
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

pytest.register_assert_rewrite("svc")
import svc  # noqa: E402
from svc import (SANITIZED, metric_value, parse_metrics,  # noqa: E402
                 wait_for)

pytest_plugins = ["svc"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).resolve().parent / "example_subsys"
SUBSYSTEMS_RE = re.compile(r"^(subsystems = \[[^\]\n]*)\]$", re.M)
BUILD_TIMEOUT = 600 if SANITIZED else 300
EVENT = ("example.applied", "a7a315a04a5d41188c4c4ccfdf8d09ae")


def git_env():
    # nothing of the caller's git (a hook's GIT_DIR, an identity) leaks in
    e = {k: v for k, v in svc.env().items() if not k.startswith("GIT_")}
    e.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost")
    return e


def git(tree, *args):
    return svc.must(["git", "-C", tree] + list(args), env=git_env())


def copy_tracked(dst):
    """The git-tracked files of REPO (as they are in its work tree)."""
    out = git(REPO, "ls-files", "-z")
    names = [n for n in out.split("\0") if n]
    assert "daemon/meson.build" in names, "git ls-files found no tree"
    for name in names:
        src = REPO / name
        if not os.path.lexists(src):
            continue        # deleted in the work tree, not yet committed
        to = dst / name
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, to, follow_symlinks=False)


def add_example(src):
    """daemon/example/ plus the one word; returns the changed line."""
    shutil.copytree(EXAMPLE, src / "daemon" / "example")
    mb = src / "daemon" / "meson.build"
    text = mb.read_text()
    new, n = SUBSYSTEMS_RE.subn(r"\1, 'example']", text)
    assert n == 1, "daemon/meson.build has no one-line " \
                   "`subsystems = [...]` list to add 'example' to"
    assert new != text
    mb.write_text(new)
    return SUBSYSTEMS_RE.search(new).group(0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """(source copy, its build dir, the changed line). The copy is a git
    repository whose one commit is the tree as copied; the example is
    staged on top of it."""
    top = tmp_path_factory.mktemp("registry")
    src, build = top / "src", top / "build"
    try:
        copy_tracked(src)
        git(src, "init", "-q")
        git(src, "add", "-A")
        git(src, "commit", "-q", "--no-verify", "-m", "as copied")
        line = add_example(src)
        git(src, "add", "-A")

        opts = ["-Dwerror=true", "-Dbuildtype=plain", "-Dfuzz=false",
                "-Dman=disabled"]
        opts += (["-Db_sanitize=address,undefined", "-Db_lundef=false"]
                 if SANITIZED else ["-Db_sanitize=none"])
        for argv in (["meson", "setup", build, src] + opts,
                     ["ninja", "-C", build]):
            rc, out, err = svc.run(argv, timeout=BUILD_TIMEOUT)
            assert rc == 0, f"{' '.join(map(str, argv))} failed ({rc}) " \
                            f"in the copy with daemon/example/:\n" \
                            f"{out[-6000:]}{err[-3000:]}"
        yield src, build, line
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def example_opsd(tree, opsd_launcher, monkeypatch):
    """opsd_launcher, but its daemon and opsd-cli are the copy's."""
    _, build, _ = tree
    monkeypatch.setattr(svc, "OPSD", build / "daemon" / "opsd")
    monkeypatch.setattr(svc, "CLI", build / "client" / "opsd-cli")
    return opsd_launcher


def test_registry_new_subsystem_is_a_folder_and_one_word(tree):
    src, build, line = tree
    assert line.endswith(", 'example']"), line
    numstat = git(src, "diff", "--cached", "--numstat").splitlines()
    changed = {}
    for row in numstat:
        added, deleted, path = row.split("\t")
        changed[path] = (int(added), int(deleted))
    outside = {p: c for p, c in changed.items()
               if not p.startswith("daemon/example/")}
    stat = git(src, "diff", "--cached", "--stat")
    assert outside == {"daemon/meson.build": (1, 1)}, \
        f"more than one line outside daemon/example/ changed:\n{stat}"
    assert sorted(changed) == ["daemon/example/example.c",
                               "daemon/example/meson.build",
                               "daemon/meson.build"], stat
    diff = git(src, "diff", "--cached", "-U0", "daemon/meson.build")
    minus = [d for d in diff.splitlines()
             if d.startswith("-") and not d.startswith("---")]
    plus = [d for d in diff.splitlines()
            if d.startswith("+") and not d.startswith("+++")]
    assert len(minus) == 1 and minus[0].startswith("-subsystems = ["), diff
    assert plus == ["+" + line], diff

    # the new file was compiled with the project's warnings as errors
    cmds = json.loads((build / "compile_commands.json").read_text())
    ex = [c for c in cmds if c["file"].endswith("daemon/example/example.c")]
    assert ex, "daemon/example/example.c is not in the copy's build"
    for flag in ("-Wall", "-Wextra", "-Werror"):
        assert flag in ex[0]["command"].split(), \
            f"example.c was compiled without {flag}: {ex[0]['command']}"


def example_section(name, **keys):
    lines = [f"[example {name}]"] + [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def test_registry_example_subsystem_runs(example_opsd, tmp_path):
    opsd_bin = svc.OPSD
    rc, out, err = svc.run([opsd_bin, "--list-events"])
    assert rc == 0, f"opsd --list-events failed ({rc}): {err}"
    assert " ".join(EVENT) in out.splitlines(), \
        f"--list-events lacks the example's event:\n{out}"

    body = (example_section("x", greeting="hi there") +
            example_section("y"))        # greeting: the default
    d = example_opsd(body, start=False)

    rc, out, err, _ = svc.check_config(d.config(body), tmp_path)
    assert rc == 0, f"--check-config rejected [example x]/[example y] " \
                    f"({rc}):\n{out}{err}"

    d.start()
    rc, out, err = d.cli("methods", "-q")
    assert rc == 0, f"opsd-cli methods -q failed ({rc}): {err}"
    assert "example.hello" in out.split(), out

    hello = d.rpc("example.hello")
    assert hello == {"name": "x", "greeting": "hi there", "objects": 2}, \
        hello
    assert d.rpc("example.hello", {"name": "y"})["greeting"] == "hello"
    missing = d.rpc_raw("example.hello", {"name": "z"})
    assert missing.get("error", {}).get("code") == -32002, missing
    # the same through the copy's opsd-cli
    rc, out, err = d.cli("--json", "call", "example.hello",
                         '{"name": "y"}')
    assert rc == 0, f"opsd-cli call example.hello failed ({rc}): {err}"
    assert json.loads(out) == {"name": "y", "greeting": "hello",
                               "objects": 2}, out

    text = d.metrics()
    assert "# TYPE opsd_example_objects gauge" in text, text
    assert metric_value(parse_metrics(text), "opsd_example_objects") == 2, \
        [line for line in text.splitlines() if "example" in line]

    objects = d.rpc("opsd.status")["objects"]
    assert objects.get("examples") == 2, objects

    ev = d.wait_event(EVENT[0])[0]
    assert ev.get("message_id") == EVENT[1], ev
    assert ev.get("objects") == "2", ev

    # a reload applies again: one section fewer
    d.write(example_section("x", greeting="hi there"))
    rc, out, err = d.cli("reload")
    assert rc == 0, f"reload failed ({rc}): {out}{err}"
    wait_for(lambda: d.rpc("example.hello")["objects"] == 1, 5,
             "example.hello to count 1 object after the reload")
    assert metric_value(parse_metrics(d.metrics()),
                        "opsd_example_objects") == 1

    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opsd ignored SIGTERM for 10s:\n{d.log()}")
    assert rc == 0, f"opsd exited {rc} on SIGTERM:\n{d.log()[-3000:]}"


def test_registry_example_config_errors(example_opsd, tmp_path):
    d = example_opsd("", start=False)
    text = d.config(example_section("x", greeting="hi", colour="blue"))
    lines = text.splitlines()
    want = lines.index("colour = blue") + 1
    rc, out, err, path = svc.check_config(text, tmp_path)
    assert rc != 0, f"--check-config accepted an unknown key:\n{out}"
    assert re.search(rf"^{re.escape(str(path))}:{want}: .*colour", err,
                     re.M), f"no '{path}:{want}: ...colour' in:\n{err}"

    # check_refs runs: two sections with one greeting
    text = d.config(example_section("x", greeting="hi") +
                    example_section("y", greeting="hi"))
    want = text.splitlines().index("[example y]") + 1
    rc, out, err, path = svc.check_config(text, tmp_path)
    assert rc != 0, f"--check-config accepted a repeated greeting:\n{out}"
    assert f"{path}:{want}: [example y]: same greeting as [example x]" \
        in err, err
