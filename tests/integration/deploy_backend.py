#!/usr/bin/python3
"""
A slot's process for the deploy tests and bench/deploy: a small
event-driven HTTP/1.1 server (selectors, keep-alive) that answers every
request with its version, in the body and in an X-Version header.
/health and /up are its health URLs.

    deploy_backend.py --port P --version V [--pidfile F] [--log F]
                      [--behavior-dir D] [--daemon]
    deploy_backend.py --stop --pidfile F

--daemon detaches as a service manager would (fork, setsid, fork, output
to --log) and returns once the pid file is written; the process outlives
whoever started it, opsd included. --stop sends SIGTERM to the pid in the
file, waits for the process to end (SIGKILL after 10 s) and removes the
file; no file, or no such process, is success.

How a version misbehaves comes from D/VERSION.json, if there is one:

    start_delay        seconds before it listens (a slow boot)
    crash_after        seconds after the start, exit(1) (crash in the gate)
    health_fail        /health and /up answer 503
    health_fail_after  seconds of good health, then 503
    error_500          every other path answers 500
    report_version     the version it claims (a wrong build)

On SIGTERM it stops listening, answers what it has read, and exits once
its connections are idle (at most 5 s later).
"""
import argparse
import errno
import json
import os
import selectors
import signal
import socket
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--version", default="0")
    ap.add_argument("--pidfile")
    ap.add_argument("--log")
    ap.add_argument("--behavior-dir")
    ap.add_argument("--daemon", action="store_true")
    ap.add_argument("--stop", action="store_true")
    return ap.parse_args()


def stop(pidfile):
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not alive(pid):
            break
        time.sleep(0.02)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while alive(pid):
            time.sleep(0.02)
    try:
        if int(open(pidfile).read().strip()) == pid:
            os.unlink(pidfile)
    except (OSError, ValueError):
        pass
    return 0


def alive(pid):
    try:
        st = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def behavior(args):
    if not args.behavior_dir:
        return {}
    try:
        with open(os.path.join(args.behavior_dir, args.version + ".json")) \
                as f:
            return json.load(f)
    except OSError:
        return {}


class Server:
    def __init__(self, args, beh):
        self.args = args
        self.beh = beh
        self.version = beh.get("report_version", args.version)
        self.t0 = time.monotonic()
        self.sel = selectors.DefaultSelector()
        self.lsock = None
        self.conns = {}
        self.stopping = False
        self.stop_deadline = None

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.args.port))
        s.listen(1024)
        s.setblocking(False)
        self.lsock = s
        self.sel.register(s, selectors.EVENT_READ, None)

    def health_ok(self):
        if self.beh.get("health_fail"):
            return False
        after = self.beh.get("health_fail_after")
        if after is not None and time.monotonic() - self.t0 > after:
            return False
        return True

    def answer(self, path):
        path = path.split("?", 1)[0]
        if path in ("/health", "/up"):
            code = 200 if self.health_ok() else 503
        else:
            code = 500 if self.beh.get("error_500") else 200
        reason = {200: "OK", 500: "Internal Server Error",
                  503: "Service Unavailable"}[code]
        body = f"version {self.version}\n".encode()
        head = (f"HTTP/1.1 {code} {reason}\r\n"
                f"Content-Type: text/plain\r\n"
                f"X-Version: {self.version}\r\n"
                f"Content-Length: {len(body)}\r\n")
        return head, body

    def on_request(self, c, raw):
        lines = raw.split(b"\r\n")
        parts = lines[0].split()
        path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        close = self.stopping or any(
            ln.lower().startswith(b"connection:") and b"close" in ln.lower()
            for ln in lines[1:])
        if len(parts) > 2 and parts[2] == b"HTTP/1.0" and not any(
                ln.lower().startswith(b"connection:") and
                b"keep-alive" in ln.lower() for ln in lines[1:]):
            close = True
        head, body = self.answer(path)
        head += "Connection: close\r\n\r\n" if close else "\r\n"
        c["out"] += head.encode() + body
        if close:
            c["close"] = True

    def accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    return
                raise
            s.setblocking(False)
            self.conns[s] = {"in": b"", "out": b"", "close": False}
            self.sel.register(s, selectors.EVENT_READ, "c")

    def drop(self, s):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        self.conns.pop(s, None)
        s.close()

    def service(self, s, mask):
        c = self.conns.get(s)
        if c is None:
            return
        if mask & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.drop(s)
                return
            if data == b"":
                self.drop(s)
                return
            if data:
                c["in"] += data
                while b"\r\n\r\n" in c["in"] and not c["close"]:
                    raw, _, c["in"] = c["in"].partition(b"\r\n\r\n")
                    self.on_request(c, raw)
        if c["out"]:
            try:
                n = s.send(c["out"])
                c["out"] = c["out"][n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.drop(s)
                return
        if not c["out"] and c["close"]:
            self.drop(s)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c["out"]
                                       else 0)
        self.sel.modify(s, want, "c")

    def begin_stop(self, *_):
        self.stopping = True
        self.stop_deadline = time.monotonic() + 5

    def run(self):
        signal.signal(signal.SIGTERM, self.begin_stop)
        crash_at = None
        if self.beh.get("crash_after") is not None:
            crash_at = self.t0 + float(self.beh["crash_after"])
        delay = float(self.beh.get("start_delay", 0))
        while time.monotonic() - self.t0 < delay:
            if self.stopping:
                return
            if crash_at is not None and time.monotonic() >= crash_at:
                os._exit(1)
            time.sleep(0.02)
        self.listen()
        while True:
            if crash_at is not None and time.monotonic() >= crash_at:
                os._exit(1)
            if self.stopping and self.lsock is not None:
                self.sel.unregister(self.lsock)
                self.lsock.close()
                self.lsock = None
            if self.stopping:
                idle = [s for s, c in self.conns.items()
                        if not c["out"] and not c["in"]]
                for s in idle:
                    self.drop(s)
                if not self.conns or time.monotonic() > self.stop_deadline:
                    return
            try:
                events = self.sel.select(0.05)
            except InterruptedError:
                continue
            for key, mask in events:
                if key.data is None:
                    self.accept()
                else:
                    self.service(key.fileobj, mask)


def daemonize(args):
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        # back once the pid file is there (or the child failed)
        ok = os.read(r, 1)
        os._exit(0 if ok == b"1" else 1)
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(args.log or os.devnull,
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    return w


def main():
    args = parse_args()
    if args.stop:
        return stop(args.pidfile)
    beh = behavior(args)
    w = daemonize(args) if args.daemon else None
    srv = Server(args, beh)
    if args.pidfile:
        tmp = f"{args.pidfile}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, args.pidfile)
    if w is not None:
        os.write(w, b"1")
        os.close(w)
    print(f"version {args.version} on port {args.port}, pid {os.getpid()}",
          flush=True)
    try:
        srv.run()
    except OSError as e:
        print(f"backend: {e}", flush=True)
        return 1
    print(f"version {args.version} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
