"""libcurl and libpq are loaded when first needed (daemon/core/lazylib.c):
a daemon whose probes are all plain http never maps them, one with an
https probe or a [database] has them before it is ready, and a host
without libcurl gets a clear error on what needed it while the rest
runs on."""
import signal

import pytest

pytest.register_assert_rewrite("svc")
from svc import OPSD, env, run, wait_for  # noqa: E402

pytest_plugins = ["svc"]


def mapped(d):
    """The shared objects opsd has mapped, by file name."""
    with open(f"/proc/{d.pid}/maps") as f:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in f
                if ".so" in line}


def has(libs, prefix):
    return any(lib.startswith(prefix) for lib in libs)


def plain_probe(d, name="self"):
    """A plain-http probe of opsd's own /metrics: always answered."""
    return (f"[probe {name}]\nkind = http\n"
            f"url = http://127.0.0.1:{d.metrics_port}/metrics\n"
            "interval = 1s\n\n")


HTTPS = "[probe tls]\nkind = http\nurl = https://127.0.0.1:9/\n" \
        "interval = 1s\ntimeout = 500ms\n\n"
DATABASE = "[database main]\nconninfo = host=/nonexistent dbname=x\n\n"


def test_plain_http_probes_map_neither_library(opsd_launcher):
    d = opsd_launcher(start=False)
    d.write(plain_probe(d) + plain_probe(d, "self2"))
    d.start()
    d.wait_state("self", "up", timeout=10)
    libs = mapped(d)
    assert not has(libs, "libcurl.so"), sorted(libs)
    assert not has(libs, "libpq.so"), sorted(libs)
    assert not has(libs, "libgnutls"), sorted(libs)


def test_what_needs_them_loads_them_before_ready(opsd_launcher):
    d = opsd_launcher(start=False)
    d.write(plain_probe(d) + HTTPS + DATABASE)
    d.start()
    libs = mapped(d)
    assert has(libs, "libcurl.so"), sorted(libs)
    assert has(libs, "libpq.so"), sorted(libs)
    d.wait_state("self", "up", timeout=10)


def test_a_reload_that_adds_https_loads_libcurl(opsd_launcher):
    d = opsd_launcher(start=False)
    d.write(plain_probe(d))
    d.start()
    assert not has(mapped(d), "libcurl.so")
    d.write(plain_probe(d) + HTTPS)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: has(mapped(d), "libcurl.so"), timeout=10,
             what="libcurl mapped after the reload")
    wait_for(lambda: d.probe("tls")["runs_failed"] >= 1, timeout=10,
             what="a run of the https probe")


def test_without_libcurl_an_https_url_is_a_clear_config_error(opsd_launcher):
    """The URL cannot be checked: the error says so and what to install,
    not that the URL is wrong."""
    d = opsd_launcher(start=False)
    path = d.write(plain_probe(d) + HTTPS)
    rc, out, err = run([OPSD, "--check-config", "-c", path],
                       env=env(OPSD_TEST_NO_LIBCURL=1))
    assert rc != 0, (out, err)
    assert "cannot be checked" in out + err, (out, err)
    assert "install libcurl4" in out + err, (out, err)
    assert "is not an http" not in out + err, (out, err)
    # the same file is fine where libcurl is there
    rc, out, err = run([OPSD, "--check-config", "-c", path])
    assert rc == 0, (out, err)


def test_without_libcurl_a_webhook_fails_clearly_and_probes_run_on(
        opsd_launcher):
    d = opsd_launcher(start=False)
    d.write(plain_probe(d) + "[alert hook]\ntype = webhook\n"
            "url = http://127.0.0.1:9/hook\n\n")
    d.start(extra_env={"OPSD_TEST_NO_LIBCURL": "1"})
    ev = d.wait_event("daemon.library")[0]
    assert "libcurl.so.4 could not be loaded" in ev["msg"], ev
    assert "install libcurl4" in ev["msg"], ev
    rc, out, err = d.cli("alert", "test", "hook")
    assert rc != 0, (rc, out, err)
    assert "shared library" in out + err, (out, err)
    assert "memory" not in out + err, (out, err)
    failed = d.wait_event("alert.failed")[0]
    assert "libcurl is not there" in failed["msg"], failed
    assert "credentials" not in failed["msg"], failed
    d.wait_state("self", "up", timeout=10)
    # logged once, not at every attempt
    d.cli("alert", "test", "hook")
    assert len(d.events("daemon.library")) == 1, d.events("daemon.library")


def test_without_libpq_a_conninfo_says_what_to_install(opsd_launcher):
    d = opsd_launcher(start=False)
    path = d.write(plain_probe(d) + DATABASE)
    rc, out, err = run([OPSD, "--check-config", "-c", path],
                       env=env(OPSD_TEST_NO_LIBPQ=1))
    assert rc != 0, (out, err)
    assert "cannot be checked" in out + err, (out, err)
    assert "install libpq5" in out + err, (out, err)
    assert "is not a libpq conninfo" not in out + err, (out, err)
