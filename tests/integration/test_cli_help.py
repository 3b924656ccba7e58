"""opsd-cli's command table against the daemon's method table, and the
help generated from it: neither may drift from the other."""
import json
import re

from conftest import CLI, REPO, run

# Methods the daemon serves on purpose without an opsd-cli command of
# their own (reachable only through 'opsd-cli call'). Each entry says why.
NO_COMMAND = {
}

# Called by opsd-cli commands but served only once the daemon's op
# journal lands (op list, op show). Until then the daemon may lack them;
# once it serves them they are checked like every other method.
EXPECTED_WITH_OP_JOURNAL = {"op.list", "op.show"}

# Called by the secret commands (secret list, show, rotate); served once
# the daemon's secrets land (daemon/secret/), then checked like the rest.
EXPECTED_WITH_SECRETS = {"secret.list", "secret.show", "secret.rotate"}


def commands_and_methods():
    """{command: [methods]} from the hidden 'opsd-cli help --methods'."""
    rc, out, err = run([CLI, "help", "--methods"])
    assert rc == 0, f"opsd-cli help --methods exited {rc}: {err}"
    table = {}
    for line in out.splitlines():
        cmd, sep, methods = line.partition(":")
        assert sep, f"help --methods line without 'COMMAND:': {line!r}"
        assert cmd not in table, f"command {cmd!r} listed twice"
        table[cmd] = methods.split()
    assert table, "help --methods lists no commands"
    return table


def test_every_method_reachable_and_served(opsd, cli):
    rc, out, err = cli("--json", "methods")
    assert rc == 0, f"opsd-cli --json methods failed ({rc}): {err}"
    served = {m["name"] for m in json.loads(out)["methods"]}
    table = commands_and_methods()
    used = {m for methods in table.values() for m in methods}

    unreachable = sorted(served - used - set(NO_COMMAND))
    assert not unreachable, \
        f"the daemon serves {unreachable}, which no opsd-cli command " \
        f"calls: add a command (client/cmd-*.c) or list the method in " \
        f"NO_COMMAND with the reason"
    stale = sorted(set(NO_COMMAND) & used)
    assert not stale, f"NO_COMMAND lists {stale}, which commands call"
    gone = sorted(set(NO_COMMAND) - served)
    assert not gone, f"NO_COMMAND lists {gone}, which the daemon no " \
        f"longer serves"

    not_yet = (EXPECTED_WITH_OP_JOURNAL | EXPECTED_WITH_SECRETS) - served
    unserved = sorted(used - served - not_yet)
    assert not unserved, \
        f"opsd-cli commands call {unserved}, which the daemon does not " \
        f"serve: " + ", ".join(c for c, ms in sorted(table.items())
                               if set(ms) & set(unserved))


def test_command_help_names_its_methods():
    for cmd, methods in commands_and_methods().items():
        rc, out, err = run([CLI, *cmd.split(), "--help"])
        assert rc == 0, f"opsd-cli {cmd} --help exited {rc}: {err}"
        assert f"usage: opsd-cli [OPTIONS] {cmd}" in out, out
        for m in methods:
            assert f"Calls the JSON-RPC method {m}." in out, \
                f"opsd-cli {cmd} --help does not name {m}:\n{out}"


def help_commands(out):
    """[(command usage, help, help column)] from the Commands section."""
    lines = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    entries = []
    for line in lines.splitlines():
        m = re.match(r"^  (\S.*?)(?:  +(\S.*))?$", line)
        if m and not line.startswith("   "):
            entries.append([m.group(1), m.group(2),
                            m.start(2) if m.group(2) else None])
            continue
        # a long usage puts its help on the next line, in the same column
        m = re.match(r"^( +)(\S.*)$", line)
        assert m and entries and entries[-1][1] is None, \
            f"unexpected line in the help's Commands: {line!r}"
        entries[-1][1], entries[-1][2] = m.group(2), len(m.group(1))
    return entries


def test_help_lists_every_command_sorted_and_aligned():
    rc, out, err = run([CLI, "--help"])
    assert rc == 0, f"opsd-cli --help exited {rc}: {err}"
    entries = help_commands(out)
    table = commands_and_methods()
    listed = []
    for usage, text, _ in entries:
        assert text, f"{usage!r} has no help text in --help"
        words = usage.split()
        name = " ".join(words[:2]) if " ".join(words[:2]) in table \
            else words[0]
        assert name in table, f"--help lists {usage!r}, not a command"
        listed.append(name)
    assert sorted(listed) == sorted(table), \
        f"--help lists {sorted(listed)}, the table has {sorted(table)}"
    assert listed == sorted(listed), f"--help is not sorted: {listed}"
    columns = {col for _, _, col in entries}
    assert len(columns) == 1, \
        f"--help descriptions start in several columns {columns}:\n{out}"
    # 'help' and the listing on stdout agree
    rc, out2, _ = run([CLI, "help"])
    assert rc == 0 and out2 == out


def test_family_alone_lists_its_commands():
    table = commands_and_methods()
    for family in sorted({c.split()[0] for c in table if " " in c}):
        rc, out, err = run([CLI, family])
        assert rc == 2, f"opsd-cli {family} exited {rc}, not 2"
        listed = [line.split()[1:3] for line in err.splitlines()[1:]]
        want = [c.split() for c in sorted(table) if c.startswith(family +
                                                                  " ")]
        assert listed == want, f"opsd-cli {family}: {err}"


def test_man_page_and_completion_know_every_command():
    table = commands_and_methods()
    page = (REPO / "docs" / "opsd-cli.1.scd").read_text()
    section = page.split("\n# COMMANDS\n", 1)[1].split("\n# ", 1)[0]
    documented = set(re.findall(r"^\*([a-z-]+(?: [a-z]+)?)\*", section,
                                re.M))
    missing = sorted(set(table) - documented)
    assert not missing, f"docs/opsd-cli.1.scd does not document {missing}"
    for cmd, methods in table.items():
        entry = section.split(f"\n*{cmd}*", 1)[1].split("\n\n", 1)[0]
        for m in methods:
            assert m.replace("_", "\\_") in entry, \
                f"opsd-cli(1) does not say that {cmd} calls {m}"

    comp = (REPO / "client" / "opsd-cli.bash-completion").read_text()
    words = set(re.search(r'local commands="([^"]*)"', comp).group(1).split())
    first = {c.split()[0] for c in table}
    assert first | {"help"} == words, \
        f"bash completion offers {sorted(words)}, commands start with " \
        f"{sorted(first | {'help'})}"
