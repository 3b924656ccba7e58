/*
 * rpc-load: closed-loop load on opsd's control socket.
 *
 * N connections each send one JSON-RPC request line, wait for the reply
 * line, record the round trip and send the next. Connections are spread
 * over T threads (default 1), each running one epoll loop, so on a small
 * machine the generator takes as little CPU from the daemon as possible.
 * After a warm-up, every reply that arrives inside the measurement window
 * is counted and its latency kept; at the end it prints calls/s and the
 * latency distribution in microseconds, then one "RESULT key=value ..."
 * line for scripts.
 *
 * With -p PID it also samples /proc/PID/stat at both edges of the window
 * and reports the CPU time that process used per call.
 *
 * Only libc (and its pthreads). Not installed.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE	(256 * 1024)	/* largest reply line we accept */

struct conn {
	int		 fd;
	uint64_t	 id;		/* id of the request in flight */
	uint64_t	 t_send;	/* ns, CLOCK_MONOTONIC */
	int		 waiting;	/* a request is in flight */
	char		 wbuf[512];
	size_t		 wlen, woff;
	char		*rbuf;
	size_t		 rlen;
};

struct worker {
	pthread_t	 thread;
	int		 ep;
	struct conn	*conns;
	int		 nconns;
	uint64_t	*lat;		/* ns, replies inside the window */
	size_t		 nlat, caplat;
	uint64_t	 total;		/* all replies, warm-up included */
	uint64_t	 bytes;		/* in those replies, newlines included */
	uint64_t	 errors;
	int		 failed;	/* a connection died */
};

static const char	*method = "opsd.status";
static uint64_t		 t_start, t_win, t_end;	/* ns */
static volatile int	 err_printed;	/* racy by design: only limits noise */

static uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

static void
sleep_until(uint64_t t)
{
	struct timespec	ts;

	ts.tv_sec = (time_t)(t / 1000000000ULL);
	ts.tv_nsec = (long)(t % 1000000000ULL);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "rpc-load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int
conn_open(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, tries;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		die("socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	for (tries = 0; ; tries++) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
			break;
		/* backlog full while many connect at once: retry briefly */
		if ((errno != EAGAIN && errno != ECONNREFUSED) || tries > 100) {
			fprintf(stderr, "rpc-load: connect %s: %s\n", path,
			    strerror(errno));
			exit(2);
		}
		close(fd);
		usleep(10000);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		die("fcntl: %s", strerror(errno));
	return (fd);
}

static int
conn_send(struct worker *w, struct conn *c)
{
	struct epoll_event	ev;
	ssize_t			n;

	if (c->woff == c->wlen) {
		c->id++;
		c->wlen = (size_t)snprintf(c->wbuf, sizeof c->wbuf,
		    "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":%llu}\n",
		    method, (unsigned long long)c->id);
		c->woff = 0;
		c->waiting = 1;
		c->t_send = now_ns();
	}
	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				ev.events = EPOLLIN | EPOLLOUT;
				ev.data.ptr = c;
				epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
				return (0);
			}
			return (-1);
		}
		c->woff += (size_t)n;
	}
	return (0);
}

/* One reply line: check it answers the request in flight, record it. */
static void
conn_reply(struct worker *w, struct conn *c, const char *line, size_t len,
    uint64_t t)
{
	char	suffix[48];
	size_t	slen, head;

	if (!c->waiting) {
		w->errors++;
		if (!err_printed++)
			fprintf(stderr, "rpc-load: unsolicited line: %.200s\n",
			    line);
		return;
	}
	c->waiting = 0;
	w->total++;
	w->bytes += len + 1;
	slen = (size_t)snprintf(suffix, sizeof suffix, "\"id\":%llu}",
	    (unsigned long long)c->id);
	head = len < 40 ? len : 40;
	if (len < slen || memcmp(line + len - slen, suffix, slen) != 0 ||
	    memmem(line, head, "\"error\"", 7) != NULL) {
		w->errors++;
		if (!err_printed++)
			fprintf(stderr, "rpc-load: unexpected reply to id "
			    "%llu: %.300s\n", (unsigned long long)c->id, line);
	}
	if (t >= t_win && t < t_end) {
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? w->caplat * 2 : 65536;
			w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
			if (w->lat == NULL)
				die("out of memory");
		}
		w->lat[w->nlat++] = t - c->t_send;
	}
}

/* Returns -1 when the connection is gone. */
static int
conn_read(struct worker *w, struct conn *c)
{
	char	*nl, *p;
	ssize_t	 n;
	uint64_t t;
	size_t	 left;

	for (;;) {
		n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return (0);
		if (n <= 0)
			return (-1);
		break;
	}
	t = now_ns();
	c->rlen += (size_t)n;
	p = c->rbuf;
	while ((nl = memchr(p, '\n', c->rlen - (size_t)(p - c->rbuf))) !=
	    NULL) {
		*nl = '\0';
		conn_reply(w, c, p, (size_t)(nl - p), t);
		p = nl + 1;
	}
	left = c->rlen - (size_t)(p - c->rbuf);
	if (left == RBUF_SIZE)
		die("reply line longer than 256 KiB");
	memmove(c->rbuf, p, left);
	c->rlen = left;
	if (!c->waiting && t < t_end)
		return (conn_send(w, c));
	return (0);
}

static void *
worker_run(void *arg)
{
	struct worker		*w = arg;
	struct epoll_event	 evs[64], ev;
	struct conn		*c;
	uint64_t		 t;
	int			 i, n, timeout, active;

	sleep_until(t_start);
	for (i = 0; i < w->nconns; i++) {
		if (conn_send(w, &w->conns[i]) == -1) {
			w->failed = 1;
			return (NULL);
		}
	}
	for (;;) {
		t = now_ns();
		if (t >= t_end) {
			/* let the last replies in so nothing is cut mid-line */
			active = 0;
			for (i = 0; i < w->nconns; i++)
				active += w->conns[i].waiting;
			if (active == 0 || t >= t_end + 1000000000ULL)
				break;
			timeout = 10;
		} else
			timeout = (int)((t_end - t) / 1000000) + 1;
		n = epoll_wait(w->ep, evs, (int)(sizeof evs / sizeof evs[0]),
		    timeout);
		if (n == -1 && errno != EINTR) {
			perror("rpc-load: epoll_wait");
			w->failed = 1;
			return (NULL);
		}
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT) {
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
				if (conn_send(w, c) == -1)
					goto dead;
			}
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    conn_read(w, c) == -1)
				goto dead;
		}
	}
	return (NULL);
dead:
	fprintf(stderr, "rpc-load: the server closed a connection\n");
	w->failed = 1;
	return (NULL);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* nearest-rank percentile of a sorted array, in microseconds */
static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t	k;

	if (n == 0)
		return (0);
	k = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return ((double)v[k - 1] / 1000.0);
}

/* utime + stime of a process in seconds, or -1 */
static double
proc_cpu(int pid)
{
	char		 path[64], buf[1024], *p;
	unsigned long	 ut, st;
	ssize_t		 n;
	int		 fd;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return (-1);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields start after the last ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return (-1);
	return ((double)(ut + st) / (double)sysconf(_SC_CLK_TCK));
}

/* busy CPU time of the whole machine in seconds (all but idle and iowait) */
static double
machine_busy(void)
{
	unsigned long long	v[8] = { 0 };
	char			buf[512];
	FILE			*f;
	int			n;

	if ((f = fopen("/proc/stat", "r")) == NULL)
		return (-1);
	n = fgets(buf, sizeof buf, f) != NULL ? sscanf(buf,
	    "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
	    &v[3], &v[4], &v[5], &v[6], &v[7]) : 0;
	fclose(f);
	if (n < 4)
		return (-1);
	/* user nice system [idle iowait] irq softirq steal */
	return ((double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
	    (double)sysconf(_SC_CLK_TCK));
}

static double
self_cpu(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: rpc-load -s SOCKET [-c CONNS] [-d SECONDS] [-w SECONDS] [-t THREADS]\n"
"                [-m METHOD] [-p PID] [-l LABEL]\n"
"  -s PATH   Unix socket to load (default $OPSD_SOCKET)\n"
"  -c N      connections, each a closed loop of one request at a time (16)\n"
"  -d SEC    measured duration (10)\n"
"  -w SEC    warm-up before measuring, not counted (2)\n"
"  -t N      threads, each one epoll loop over its share of connections (1)\n"
"  -m NAME   JSON-RPC method to call, without params (opsd.status)\n"
"  -p PID    also report that process's CPU time inside the window\n"
"  -l LABEL  name printed on the RESULT line\n");
}

int
main(int argc, char **argv)
{
	struct worker		*ws;
	struct epoll_event	 ev;
	const char		*sock = getenv("OPSD_SOCKET"), *label = "rpc";
	uint64_t		*all, calls = 0, total = 0, errors = 0, sum = 0;
	uint64_t		 bytes = 0;
	double			 dur = 10, warm = 2, win, cpu0 = -1, cpu1 = -1;
	double			 self0, self1, rate, busy0, busy1, other;
	size_t			 n = 0, k;
	int			 nconns = 16, nthreads = 1, pid = 0, ch, i;
	int			 failed = 0;

	while ((ch = getopt(argc, argv, "s:c:d:w:t:m:p:l:h")) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'c': nconns = atoi(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'm': method = optarg; break;
		case 'p': pid = atoi(optarg); break;
		case 'l': label = optarg; break;
		case 'h': usage(stdout); return (0);
		default: usage(stderr); return (2);
		}
	}
	if (sock == NULL || nconns < 1 || nthreads < 1 || dur <= 0 ||
	    warm < 0 || optind != argc || strlen(method) > 400) {
		usage(stderr);
		return (2);
	}
	if (nthreads > nconns)
		nthreads = nconns;
	signal(SIGPIPE, SIG_IGN);

	ws = calloc((size_t)nthreads, sizeof *ws);
	for (i = 0; i < nthreads; i++) {
		ws[i].conns = calloc((size_t)nconns / (size_t)nthreads + 1,
		    sizeof *ws[i].conns);
		if ((ws[i].ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			die("epoll_create1: %s", strerror(errno));
	}
	/* connect everything before the clock starts */
	for (i = 0; i < nconns; i++) {
		struct worker	*w = &ws[i % nthreads];
		struct conn	*c = &w->conns[w->nconns++];

		c->fd = conn_open(sock);
		if ((c->rbuf = malloc(RBUF_SIZE)) == NULL)
			die("out of memory");
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
			die("epoll_ctl: %s", strerror(errno));
	}
	t_start = now_ns() + 20000000ULL;	/* threads start together */
	t_win = t_start + (uint64_t)(warm * 1e9);
	t_end = t_win + (uint64_t)(dur * 1e9);
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&ws[i].thread, NULL, worker_run, &ws[i]) != 0)
			die("pthread_create failed");

	sleep_until(t_win);
	if (pid > 0)
		cpu0 = proc_cpu(pid);
	self0 = self_cpu();
	busy0 = machine_busy();
	sleep_until(t_end);
	if (pid > 0)
		cpu1 = proc_cpu(pid);
	self1 = self_cpu();
	busy1 = machine_busy();

	for (i = 0; i < nthreads; i++) {
		pthread_join(ws[i].thread, NULL);
		n += ws[i].nlat;
		total += ws[i].total;
		bytes += ws[i].bytes;
		errors += ws[i].errors;
		failed |= ws[i].failed;
	}
	all = malloc((n ? n : 1) * sizeof *all);
	for (i = 0, k = 0; i < nthreads; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
	}
	qsort(all, n, sizeof *all, cmp_u64);
	for (k = 0; k < n; k++)
		sum += all[k];
	calls = n;
	win = dur;
	rate = (double)calls / win;

	printf("rpc-load: %s, %d connection%s on %d thread%s, method %s, "
	    "warm-up %.1f s, measured %.1f s\n", label, nconns,
	    nconns == 1 ? "" : "s", nthreads, nthreads == 1 ? "" : "s",
	    method, warm, win);
	printf("  calls      %llu in the window (%.0f calls/s), %llu in all, "
	    "%llu bad replies, %.0f bytes per reply\n",
	    (unsigned long long)calls, rate, (unsigned long long)total,
	    (unsigned long long)errors,
	    total ? (double)bytes / (double)total : 0.0);
	printf("  latency us min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  "
	    "p99.9 %.1f  max %.1f  mean %.1f\n", pct(all, n, 0),
	    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
	    pct(all, n, 99.9), pct(all, n, 100),
	    n ? (double)sum / (double)n / 1000.0 : 0.0);
	printf("  load generator CPU %.2f s (%.0f%% of one core)\n",
	    self1 - self0, 100.0 * (self1 - self0) / win);
	if (pid > 0 && cpu0 >= 0 && cpu1 >= 0)
		printf("  server pid %d CPU %.2f s (%.0f%% of one core), "
		    "%.2f us CPU per call\n", pid, cpu1 - cpu0,
		    100.0 * (cpu1 - cpu0) / win,
		    calls ? (cpu1 - cpu0) * 1e6 / (double)calls : 0.0);
	/* whatever else ran: other sessions, builds, the kernel's own work */
	other = busy1 - busy0 - (self1 - self0) - (pid > 0 ? cpu1 - cpu0 : 0);
	if (other < 0)
		other = 0;
	printf("  machine    %ld CPUs, %.2f CPU-s busy in the window, %.2f of "
	    "it (%.0f%% of one core) by other processes\n",
	    sysconf(_SC_NPROCESSORS_ONLN), busy1 - busy0, other,
	    100.0 * other / win);
	printf("RESULT label=%s conns=%d threads=%d calls=%llu secs=%.3f "
	    "rate=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f "
	    "max_us=%.1f mean_us=%.1f errors=%llu replies=%llu reply_bytes=%.0f "
	    "gen_cpu_s=%.3f server_cpu_s=%.3f server_cpu_us_per_call=%.3f "
	    "other_cpu_s=%.3f\n",
	    label, nconns, nthreads, (unsigned long long)calls, win, rate,
	    pct(all, n, 50), pct(all, n, 90), pct(all, n, 99),
	    pct(all, n, 99.9), pct(all, n, 100),
	    n ? (double)sum / (double)n / 1000.0 : 0.0,
	    (unsigned long long)errors, (unsigned long long)total,
	    total ? (double)bytes / (double)total : 0.0, self1 - self0,
	    pid > 0 ? cpu1 - cpu0 : -1.0,
	    pid > 0 && calls ? (cpu1 - cpu0) * 1e6 / (double)calls : -1.0,
	    other);
	return (failed || errors ? 1 : 0);
}
