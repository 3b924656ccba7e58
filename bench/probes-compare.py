#!/usr/bin/env python3
"""bench/probes --compare monit: opsd and monit side by side.

Both daemons check the same nginx target (`GET /health`, 200 "ok") with
plain http checks. Runs are interleaved (opsd, monit, opsd, monit, ...)
so that whatever else the machine does hits both alike, and each figure
is the median of the runs, with the spread (min-max) beside it.

Phases, in each round:

  load N     N checks at a 1 s cycle (opsd: N [probe] sections, interval
             1s, timeout 900ms; monit: `set daemon 1` and N `check host`
             entries with `protocol http request "/health"`), for each N
             of --sizes. Figures over the window after a warm-up:
               CPU per check   utime+stime (/proc/PID/stat) / checks
               keep-up         checks/s over N/s
               peak RSS        VmHWM (/proc/PID/status) at the end
  idle       100 checks at 10 s (`interval = 10s`; `set daemon 10`):
               CPU per minute  sum of /proc/PID/task/*/schedstat run time
               wake-ups/min    voluntary + nonvoluntary context switches
                               of all of the process's threads (and the
                               voluntary ones alone: on a loaded machine
                               preemption adds nonvoluntary ones)

A check is counted where it lands: one line of nginx's access log (the
log is written unbuffered; only one daemon runs at a time).

Only the Python standard library is used.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, proc, secs=10):
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
                return True
        except Exception:
            time.sleep(0.05)
    return False


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def tasks(pid):
    try:
        return os.listdir("/proc/%d/task" % pid)
    except OSError:
        return []


def run_ns(pid):
    """Run time of all live threads, ns (schedstat's first field)."""
    t = 0
    for tid in tasks(pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                t += int(f.read().split()[0])
        except OSError:
            pass
    return t


def switches(pid):
    """Voluntary and nonvoluntary context switches of all live threads."""
    vol = invol = 0
    for tid in tasks(pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except OSError:
            pass
    return vol, invol


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Nginx:
    def __init__(self, binary, tmp, nconn):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write(f"""# written by bench/probes --compare
worker_processes 1;
worker_rlimit_nofile {nconn * 2 + 1024};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {nconn * 2 + 512}; }}
http {{
	log_format bench '$msec';
	access_log {self.log} bench;
	client_body_temp_path {d}/cb; proxy_temp_path {d}/px;
	fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
	keepalive_timeout 120s;
	keepalive_requests 1000000;
	server {{
		listen 127.0.0.1:{self.port};
		location /health {{ default_type text/plain; return 200 "ok"; }}
	}}
}}
""")
        self.proc = subprocess.Popen(
            [binary, "-p", d, "-e", d + "/error.log", "-c", conf,
             "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        self.url = "http://127.0.0.1:%d/health" % self.port
        if not wait_http(self.url, self.proc):
            sys.exit("bench/probes: nginx did not start")

    def lines(self):
        try:
            with open(self.log, "rb") as f:
                return sum(buf.count(b"\n") for buf in
                           iter(lambda: f.read(1 << 20), b""))
        except OSError:
            return 0

    def close(self):
        stop(self.proc)


def opsd_start(opsd, tmp, n, interval, timeout, url):
    d = tempfile.mkdtemp(prefix="opsd-", dir=tmp)
    os.makedirs(d + "/state")
    mport = free_port()
    with open(d + "/opsd.conf", "w") as f:
        f.write("[opsd]\nsocket = %s/opsd.sock\nstate_dir = %s/state\n"
                "log_level = warning\nmetrics_listen = 127.0.0.1:%d\n"
                % (d, d, mport))
        for i in range(n):
            f.write("\n[probe p%d]\nkind = http\nurl = %s\ninterval = %s\n"
                    "timeout = %s\n" % (i + 1, url, interval, timeout))
    env = {k: v for k, v in os.environ.items() if k not in (
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
        "LISTEN_PID", "LISTEN_FDNAMES")}
    log = open(d + "/opsd.log", "w")
    p = subprocess.Popen([opsd, "-c", d + "/opsd.conf",
                          "--log-target=stderr"], stderr=log, env=env)
    if not wait_http("http://127.0.0.1:%d/metrics" % mport, p):
        sys.exit("bench/probes: opsd did not start, see %s/opsd.log" % d)
    return p


def monit_start(monit, tmp, n, cycle, timeout_s, port):
    d = tempfile.mkdtemp(prefix="monit-", dir=tmp)
    rc = d + "/monitrc"
    with open(rc, "w") as f:
        f.write("# written by bench/probes --compare monit\n"
                "set daemon %d\nset logfile %s/monit.log\n"
                "set pidfile %s/monit.pid\nset idfile %s/monit.id\n"
                "set statefile %s/monit.state\n" % (cycle, d, d, d, d))
        for i in range(n):
            f.write('check host p%d with address 127.0.0.1\n'
                    '  if failed port %d protocol http request "/health"'
                    ' with timeout %d seconds then alert\n'
                    % (i + 1, port, timeout_s))
    os.chmod(rc, 0o600)
    subprocess.run([monit, "-t", "-c", rc], check=True,
                   stdout=subprocess.DEVNULL)
    p = subprocess.Popen([monit, "-I", "-c", rc],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    if p.poll() is not None:
        sys.exit("bench/probes: monit did not start, see %s/monit.log" % d)
    return p


def measure_load(nginx, proc, n, warmup, window):
    time.sleep(warmup)
    if proc.poll() is not None:
        sys.exit("bench/probes: a daemon died during the warm-up")
    c0, t0, w0 = nginx.lines(), ticks(proc.pid), time.time()
    time.sleep(window)
    c1, t1, w1 = nginx.lines(), ticks(proc.pid), time.time()
    hwm = status_kb(proc.pid, "VmHWM")
    checks = c1 - c0
    rate = checks / (w1 - w0)
    return {
        "cpu_us": (t1 - t0) / HZ * 1e6 / checks if checks else float("nan"),
        "keepup": 100.0 * rate / n,
        "rate": rate,
        "hwm_mb": hwm / 1024.0,
    }


def measure_idle(nginx, proc, warmup, window):
    time.sleep(warmup)
    if proc.poll() is not None:
        sys.exit("bench/probes: a daemon died during the warm-up")
    c0, r0, s0, w0 = nginx.lines(), run_ns(proc.pid), switches(proc.pid), \
        time.time()
    time.sleep(window)
    c1, r1, s1, w1 = nginx.lines(), run_ns(proc.pid), switches(proc.pid), \
        time.time()
    per_min = 60.0 / (w1 - w0)
    return {
        "cpu_ms_min": (r1 - r0) / 1e6 * per_min,
        "wakeups_min": (s1[0] + s1[1] - s0[0] - s0[1]) * per_min,
        # the process's own sleeps; the rest is preemption by the load
        "voluntary_min": (s1[0] - s0[0]) * per_min,
        "checks_min": (c1 - c0) * per_min,
        "hwm_mb": status_kb(proc.pid, "VmHWM") / 1024.0,
    }


def fmt(vals, spec):
    if not vals:
        return "-"
    med = statistics.median(vals)
    s = format(med, spec)
    if len(vals) > 1:
        s += " (%s-%s)" % (format(min(vals), spec), format(max(vals), spec))
    return s


def nlibs(pid):
    libs = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5]:
                libs.add(parts[5])
    return len(libs)


def main():
    ap = argparse.ArgumentParser(prog="bench/probes --compare monit")
    ap.add_argument("--opsd", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--monit", default=shutil.which("monit") or
                    "/usr/bin/monit")
    ap.add_argument("--sizes", default="1000,200")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-d", "--window", type=float, default=20)
    ap.add_argument("-w", "--warmup", type=float, default=3)
    ap.add_argument("--idle-window", type=float, default=60)
    ap.add_argument("--idle-probes", type=int, default=100)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not os.access(a.monit, os.X_OK):
        sys.exit("bench/probes: monit not found (apt-get install -y monit)")
    sizes = [int(x) for x in a.sizes.split(",") if x]
    tmp = tempfile.mkdtemp(prefix="opsd-bench-compare.")
    nginx = Nginx(a.nginx, tmp, max(sizes + [a.idle_probes]))
    res = {}	# (phase, daemon) -> list of dicts
    libs = {}
    monit_ver = subprocess.run([a.monit, "-V"], capture_output=True,
                               text=True).stdout.split("\n")[0]
    print("== bench/probes --compare monit: %d rounds, interleaved" %
          a.rounds)
    print("   host     %s, %d CPUs, load average %s" % (
        " ".join(os.uname()[i] for i in (0, 2)), os.cpu_count(),
        open("/proc/loadavg").read().split()[0]))
    print("   opsd     %s" % a.opsd)
    print("   monit    %s" % monit_ver)
    print("   target   %s (nginx, 1 worker)" % nginx.url)
    print("   load     %s checks at 1 s: %g s warm-up, %g s window" % (
        a.sizes, a.warmup, a.window))
    print("   idle     %d checks at 10 s: %g s warm-up, %g s window" % (
        a.idle_probes, max(a.warmup, 12), a.idle_window))
    sys.stdout.flush()
    procs = []

    def cleanup(*_):
        for p in procs:
            stop(p)
        nginx.close()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("   kept %s" % tmp)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    try:
        for rnd in range(a.rounds):
            for n in sizes:
                for who in ("opsd", "monit"):
                    if who == "opsd":
                        p = opsd_start(a.opsd, tmp, n, "1s", "900ms",
                                       nginx.url)
                    else:
                        p = monit_start(a.monit, tmp, n, 1, 1, nginx.port)
                    procs.append(p)
                    r = measure_load(nginx, p, n, a.warmup, a.window)
                    libs[who] = nlibs(p.pid)
                    stop(p)
                    procs.remove(p)
                    res.setdefault(("load%d" % n, who), []).append(r)
                    print("   round %d  %-5s %4d at 1 s: %5.1f us/check, "
                          "%5.1f%% kept up, peak RSS %.1f MB" % (
                              rnd + 1, who, n, r["cpu_us"], r["keepup"],
                              r["hwm_mb"]))
                    sys.stdout.flush()
            for who in ("opsd", "monit"):
                if who == "opsd":
                    p = opsd_start(a.opsd, tmp, a.idle_probes, "10s", "5s",
                                   nginx.url)
                else:
                    p = monit_start(a.monit, tmp, a.idle_probes, 10, 5,
                                    nginx.port)
                procs.append(p)
                # past the first runs (spread over the first interval)
                r = measure_idle(nginx, p, max(a.warmup, 12), a.idle_window)
                stop(p)
                procs.remove(p)
                res.setdefault(("idle", who), []).append(r)
                print("   round %d  %-5s idle: %5.1f ms CPU/min, %6.0f "
                      "wake-ups/min, %5.0f checks/min" % (
                          rnd + 1, who, r["cpu_ms_min"], r["wakeups_min"],
                          r["checks_min"]))
                sys.stdout.flush()
    finally:
        cleanup()

    def col(phase, who, key, spec):
        return fmt([r[key] for r in res.get((phase, who), [])], spec)

    print()
    print("== medians of %d (min-max); the machine's other load hits both "
          "alike, CPU figures less robust than RSS and wake-ups" % a.rounds)
    print("| at | opsd | monit |")
    print("|---|---|---|")
    for n in sizes:
        ph = "load%d" % n
        print("| CPU per check, %d at 1 s (us) | %s | %s |" % (
            n, col(ph, "opsd", "cpu_us", ".1f"),
            col(ph, "monit", "cpu_us", ".1f")))
        print("| keep-up, %d at 1 s (%% of %d/s) | %s | %s |" % (
            n, n, col(ph, "opsd", "keepup", ".1f"),
            col(ph, "monit", "keepup", ".1f")))
        print("| peak RSS, %d http probes (MB) | %s | %s |" % (
            n, col(ph, "opsd", "hwm_mb", ".1f"),
            col(ph, "monit", "hwm_mb", ".1f")))
    print("| idle CPU, %d probes at 10 s (ms per minute) | %s | %s |" % (
        a.idle_probes, col("idle", "opsd", "cpu_ms_min", ".1f"),
        col("idle", "monit", "cpu_ms_min", ".1f")))
    print("| wake-ups per minute, same | %s | %s |" % (
        col("idle", "opsd", "wakeups_min", ".0f"),
        col("idle", "monit", "wakeups_min", ".0f")))
    print("| of which voluntary (the process slept) | %s | %s |" % (
        col("idle", "opsd", "voluntary_min", ".0f"),
        col("idle", "monit", "voluntary_min", ".0f")))
    print("| checks per minute, same | %s | %s |" % (
        col("idle", "opsd", "checks_min", ".0f"),
        col("idle", "monit", "checks_min", ".0f")))
    print("| shared libraries mapped | %s | %s |" % (
        libs.get("opsd", "-"), libs.get("monit", "-")))


if __name__ == "__main__":
    main()
