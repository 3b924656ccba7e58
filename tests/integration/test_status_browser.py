"""
The status page in a real browser: Debian's headless Chromium loads the
page of a running opsd (probes up and down, one failing with HTML in its
reason, a stale backup, an expiring certificate, open alerts) at 1280 px
and at 390 px, keeps a full-page screenshot of each as a test artifact
(build/test-artifacts/status-WIDTH.png, or $OPSD_ARTIFACTS), checks the
text as rendered, and that nothing is wider than the viewport.

How: `chromium --headless=new --remote-debugging-port=0` writes the port
it picked to DevToolsActivePort in its profile directory; /json/list on
that port names the page's DevTools websocket, and python3-websocket
speaks the DevTools protocol over it (one JSON command, one JSON answer
with the same id; events in between are kept for the load wait). That
gives what --screenshot and --dump-dom on the command line do not: a
viewport of an exact width (Emulation.setDeviceMetricsOverride), the
page's own measurements (Runtime.evaluate of a small expression) and a
screenshot of the whole page, not only the first screen.

As root Chromium refuses to start without --no-sandbox (its sandbox needs
an unprivileged user namespace or the setuid helper); the tests run as
root, so it is passed. The page has no script, so a sandbox would guard
only against Chromium's own bugs on a page this test wrote.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

pytest.register_assert_rewrite("svc", "status_svc")
from status_svc import (HOSTILE, artifact_dir, stack_body,  # noqa: E402
                        wait_settled)
from svc import Webhook, wait_for  # noqa: E402

import websocket  # noqa: E402  (python3-websocket, deps.sh)

pytest_plugins = ["svc"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Everything measured in the page, in one expression: its text, the
# document's scroll width, and every element that reaches past the
# viewport's right edge (or starts left of it).
MEASURE = r"""
(() => {
  const w = window.innerWidth, bad = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > w + 0.5 || r.left < -0.5)
      bad.push(`${e.tagName.toLowerCase()}.${e.className} ` +
               `${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return {innerWidth: w,
          scrollWidth: document.documentElement.scrollWidth,
          bad: bad.slice(0, 20), nbad: bad.length,
          text: document.body.innerText,
          scripts: document.querySelectorAll('script, img, iframe').length,
          title: document.title};
})()
"""


class DevTools:
    """One page of a headless Chromium over the DevTools protocol."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="opsd-chromium.")
        self.log = open(os.path.join(self.profile, "stderr"), "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new",
             "--no-sandbox",        # we run as root: see the module doc
             "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={self.profile}",
             "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        wait_for(lambda: os.path.exists(portfile) and
                 open(portfile).read().strip(), 30,
                 "Chromium to write DevToolsActivePort", detail=self.stderr)
        port = int(open(portfile).read().split()[0])
        pages = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=10))
        url = [p for p in pages if p["type"] == "page"][0][
            "webSocketDebuggerUrl"]
        # no Origin header: Chromium refuses origins it was not told of
        self.ws = websocket.create_connection(url, timeout=30,
                                              suppress_origin=True)
        self.id = 0
        self.events = []

    def stderr(self):
        with open(os.path.join(self.profile, "stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def call(self, method, **params):
        self.id += 1
        self.ws.send(json.dumps({"id": self.id, "method": method,
                                 "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg["result"]
            self.events.append(msg)

    def wait_event(self, method, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} from Chromium in {timeout}s")

    def load(self, url, width, height=900):
        self.call("Emulation.setDeviceMetricsOverride", width=width,
                  height=height, deviceScaleFactor=1, mobile=width < 600)
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", expression=expr,
                      returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"]["value"]

    def screenshot(self, path):
        m = self.call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m["contentSize"]
        shot = self.call("Page.captureScreenshot", format="png",
                         captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"],
                               "height": size["height"], "scale": 1})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    assert os.path.exists(CHROMIUM), "chromium is not installed (deps.sh)"
    b = DevTools()
    yield b
    b.close()


@pytest.fixture
def hook():
    w = Webhook()
    w.up()
    yield w
    w.down()


@pytest.mark.parametrize("width", [1280, 390])
def test_status_page_in_chromium(width, browser, opsd_launcher, tmp_path,
                                 hook, tls_certs, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    d = opsd_launcher(stack_body(tmp_path, hook.url, tls_certs))
    wait_settled(d)
    browser.load(f"http://127.0.0.1:{d.metrics_port}/", width)
    shot = browser.screenshot(os.path.join(artifact_dir(),
                                           f"status-{width}.png"))
    assert os.path.getsize(shot) > 10000, shot
    m = browser.evaluate(MEASURE)
    text = m["text"]

    # what is rendered, as a reader sees it
    assert m["title"].startswith("critical - opsd on "), m["title"]
    for s in ("probe gone down", "probe hostile down",
              "backup nightly stale", "cert site expiring",
              "times in IST (UTC+0530)", "Probes", "Backups", "Secrets",
              "Certificates", "Open alerts", "Recent operations",
              "api_token", "no good backup yet"):
        assert s in text, f"{s!r} not on the page at {width} px:\n{text}"
    # the hostile reason is text, never markup: no element came of it
    assert HOSTILE in text, text
    assert m["scripts"] == 0
    assert "summary" in text.lower()
    assert text.lower().index("summary") < text.index("Probes")

    # nothing wider than the viewport
    assert m["innerWidth"] == width, m["innerWidth"]
    assert m["scrollWidth"] <= m["innerWidth"], \
        f"the page scrolls sideways at {width} px: {m['scrollWidth']}"
    assert m["nbad"] == 0, f"{m['nbad']} elements overflow at {width} px: " \
        f"{m['bad']} (screenshot: {shot})"
