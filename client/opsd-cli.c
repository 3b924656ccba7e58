/*
 * opsd-cli: the operator's tool. One table of commands; each names the
 * JSON-RPC method it calls, how it builds the params from its arguments
 * and how it prints the result for people. --json prints the raw result
 * instead, for scripts. The exit code says who failed: 0 ok, 1 the daemon
 * answered with an error, 2 the command line is wrong, 3 no answer (no
 * socket, refused, timed out).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jsonrpc.h"
#include "opsd-parse.h"
#include "opsd-proto.h"

#define EXIT_OK		0
#define EXIT_RPC	1
#define EXIT_USAGE	2
#define EXIT_CONNECT	3

struct cli {
	const char	*socket;
	int		 json;
	uint64_t	 timeout_ms;
	uint64_t	 deadline;	/* monotonic msec */
	int		 fd;
	char		*rbuf;
	size_t		 rlen;
	size_t		 rcap;
	size_t		 used;		/* bytes of the last line returned */
};

struct cmd {
	const char	*name;		/* one or two words */
	const char	*args;		/* usage after the name */
	const char	*method;
	const char	*help;
	int		 minargs;
	int		 maxargs;
	json_t		*(*params)(int argc, char **argv);
	int		 (*print)(json_t *result);	/* exit code */
	uint64_t	 timeout_ms;	/* default when --timeout is not given */
};

static void	usage(FILE *);

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "opsd-cli: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static uint64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static int
remaining_ms(struct cli *cli)
{
	uint64_t	now = mono_ms();

	if (now >= cli->deadline)
		return (0);
	return ((int)(cli->deadline - now));
}

static void __attribute__((noreturn))
die_timeout(struct cli *cli, const char *doing)
{
	char	buf[32];

	format_duration(cli->timeout_ms, buf, sizeof buf);
	die(EXIT_CONNECT, "no answer from opsd on %s within %s while %s; the "
	    "daemon may be overloaded or stuck (raise --timeout, or check "
	    "'journalctl -u opsd')", cli->socket, buf, doing);
}

static void
cli_connect(struct cli *cli)
{
	struct sockaddr_un	sun;
	struct pollfd		pfd;
	socklen_t		len;
	int			fd, err = 0;

	if (strlen(cli->socket) >= sizeof sun.sun_path)
		die(EXIT_USAGE, "socket path too long: %s", cli->socket);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, cli->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		die(EXIT_CONNECT, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		err = errno;
		if (err == EAGAIN || err == EINPROGRESS) {
			/* backlog full: wait for the daemon to accept */
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, remaining_ms(cli)) <= 0)
				die_timeout(cli, "connecting");
			len = sizeof err;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		}
	}
	switch (err) {
	case 0:
		break;
	case ENOENT:
		die(EXIT_CONNECT, "cannot connect to %s: no such socket. Is "
		    "opsd running ('systemctl status opsd')? If it listens "
		    "elsewhere, pass -s PATH or set OPSD_SOCKET (the [opsd] "
		    "socket key).", cli->socket);
	case ECONNREFUSED:
		die(EXIT_CONNECT, "cannot connect to %s: connection refused. "
		    "The socket is there but opsd is not listening: it stopped "
		    "or crashed ('systemctl status opsd', 'journalctl -u opsd')"
		    ".", cli->socket);
	case EACCES:
	case EPERM:
		die(EXIT_CONNECT, "cannot connect to %s: permission denied. "
		    "Join the socket's group (socket_group in opsd.conf) or "
		    "run as root.", cli->socket);
	default:
		die(EXIT_CONNECT, "cannot connect to %s: %s", cli->socket,
		    strerror(err));
	}
	cli->fd = fd;
}

static void
cli_write(struct cli *cli, const char *buf, size_t len)
{
	struct pollfd	pfd;
	ssize_t		n;

	while (len > 0) {
		n = send(cli->fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			pfd.fd = cli->fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, remaining_ms(cli)) <= 0)
				die_timeout(cli, "sending the request");
			continue;
		}
		if (n == -1)
			die(EXIT_CONNECT, "sending to %s: %s", cli->socket,
			    strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads one line; returns it NUL-terminated (valid until the next call). */
static char *
cli_read_line(struct cli *cli, size_t *len)
{
	struct pollfd	 pfd;
	char		*nl;
	ssize_t		 n;

	if (cli->used > 0) {		/* the line returned last time */
		memmove(cli->rbuf, cli->rbuf + cli->used, cli->rlen -
		    cli->used);
		cli->rlen -= cli->used;
		cli->used = 0;
	}
	for (;;) {
		if (cli->rlen > 0 &&
		    (nl = memchr(cli->rbuf, '\n', cli->rlen)) != NULL) {
			*len = (size_t)(nl - cli->rbuf);
			*nl = '\0';
			cli->used = *len + 1;
			return (cli->rbuf);
		}
		if (cli->rcap - cli->rlen < 65536) {
			cli->rcap = cli->rcap ? cli->rcap * 2 : 131072;
			if (cli->rcap > 4 * OPSD_MAX_MESSAGE)
				die(EXIT_CONNECT, "reply from opsd is too long");
			if ((cli->rbuf = realloc(cli->rbuf, cli->rcap)) == NULL)
				die(EXIT_CONNECT, "out of memory");
		}
		pfd.fd = cli->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, remaining_ms(cli)) <= 0)
			die_timeout(cli, "waiting for the reply");
		n = read(cli->fd, cli->rbuf + cli->rlen, cli->rcap - cli->rlen);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1)
			die(EXIT_CONNECT, "reading from %s: %s", cli->socket,
			    strerror(errno));
		if (n == 0)
			die(EXIT_CONNECT, "opsd closed the connection without "
			    "answering (is it stopping? see 'journalctl -u "
			    "opsd')");
		cli->rlen += (size_t)n;
	}
}

/* Sends one request and returns the decoded reply (a new reference). */
static json_t *
cli_call(struct cli *cli, const char *method, json_t *params)
{
	json_t	*req, *reply;
	char	*s, *line, err[256];
	size_t	 len;

	req = jsonrpc_request(1, method, params);
	if ((s = jsonrpc_dump(req, &len)) == NULL)
		die(EXIT_USAGE, "cannot encode the request");
	s = realloc(s, len + 2);
	s[len++] = '\n';
	cli_write(cli, s, len);
	free(s);
	json_decref(req);
	line = cli_read_line(cli, &len);
	if ((reply = jsonrpc_load(line, len, err, sizeof err)) == NULL)
		die(EXIT_CONNECT, "opsd sent a reply that is not JSON: %s",
		    err);
	return (reply);
}

/* --- output ------------------------------------------------------------ */

static int
print_json(json_t *v)
{
	char	*s;

	s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY |
	    JSON_REAL_PRECISION(10));
	printf("%s\n", s != NULL ? s : "null");
	free(s);
	return (EXIT_OK);
}

static void	row(const char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
row(const char *key, const char *fmt, ...)
{
	va_list	ap;

	printf("%-14s", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static const char *
sget(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return (json_is_string(v) ? json_string_value(v) : "-");
}

static long long
iget(json_t *o, const char *key)
{
	return ((long long)json_integer_value(json_object_get(o, key)));
}

static double
fget(json_t *o, const char *key)
{
	return (json_number_value(json_object_get(o, key)));
}

static void
format_uptime(long long s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh %lldm", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
}

static int
print_status(json_t *r)
{
	json_t		*loop = json_object_get(r, "loop");
	json_t		*objs = json_object_get(r, "objects"), *v;
	const char	*key;
	char		 up[64], list[512] = "";
	size_t		 off = 0;

	format_uptime(iget(r, "uptime_seconds"), up, sizeof up);
	printf("opsd %s, pid %lld, up %s%s\n", sget(r, "version"),
	    iget(r, "pid"), up, json_is_true(json_object_get(r, "stopping")) ?
	    " (stopping)" : "");
	row("config", "%s", sget(r, "config"));
	row("state dir", "%s", sget(r, "state_dir"));
	row("socket", "%s%s", sget(r, "socket"),
	    json_is_true(json_object_get(r, "socket_activated")) ?
	    " (socket-activated)" : "");
	row("log", "%s to %s", sget(r, "log_level"), sget(r, "log_target"));
	row("connections", "%lld", iget(loop, "connections"));
	row("requests", "%lld", iget(r, "requests_total"));
	row("loop", "lag %.2f ms (max %.2f ms), cpu %.1f%%",
	    fget(loop, "lag_ms"), fget(loop, "lag_max_ms"),
	    fget(loop, "cpu_percent"));
	row("reloads", "%lld", iget(r, "reloads"));
	if (iget(r, "watchdog_usec") > 0)
		row("watchdog", "%.1fs", (double)iget(r, "watchdog_usec") / 1e6);
	json_object_foreach(objs, key, v) {
		off += (size_t)snprintf(list + off, off < sizeof list ?
		    sizeof list - off : 0, "%s%s %lld", off ? ", " : "", key,
		    (long long)json_integer_value(v));
		if (off >= sizeof list)
			break;
	}
	row("objects", "%s", off ? list : "none configured");
	return (EXIT_OK);
}

static int
print_reload(json_t *r)
{
	printf("reloaded %s\n", sget(r, "config"));
	return (EXIT_OK);
}

static int
print_log_level(json_t *r)
{
	printf("log level %s (was %s)\n", sget(r, "level"),
	    sget(r, "previous"));
	return (EXIT_OK);
}

static int	methods_names_only;

static int
print_methods(json_t *r)
{
	json_t		*m, *p;
	size_t		 i, j;
	int		 w = 0, n;

	json_array_foreach(json_object_get(r, "methods"), i, m) {
		n = (int)strlen(sget(m, "name"));
		if (n > w)
			w = n;
	}
	if (!methods_names_only)
		printf("%-*s  %-6s  %s\n", w, "METHOD", "ACCESS", "WHAT IT DOES");
	json_array_foreach(json_object_get(r, "methods"), i, m) {
		if (methods_names_only) {
			printf("%s\n", sget(m, "name"));
			continue;
		}
		printf("%-*s  %-6s  %s\n", w, sget(m, "name"), sget(m,
		    "access"), sget(m, "help"));
		json_array_foreach(json_object_get(m, "params"), j, p)
			printf("%-*s          %s%s (%s): %s\n", w, "",
			    sget(p, "name"), json_is_true(json_object_get(p,
			    "required")) ? "" : "?", sget(p, "type"),
			    sget(p, "help"));
	}
	return (EXIT_OK);
}

/* "2026-11-27T23:54:57Z" -> "2026-11-27 23:54:57" */
static const char *
when(json_t *o, const char *key)
{
	static char	bufs[4][32];
	static int	next;
	char		*buf = bufs[next++ % 4];	/* several per printf */
	const char	*s = sget(o, key);

	snprintf(buf, sizeof bufs[0], "%s", s);
	if (strlen(buf) == 20 && buf[10] == 'T') {
		buf[10] = ' ';
		buf[19] = '\0';
	}
	return (buf);
}

static int
print_probe_list(json_t *r)
{
	json_t	*p, *last;
	size_t	 i;
	int	 w = 5, n;
	char	 lat[32];

	json_array_foreach(json_object_get(r, "probes"), i, p) {
		n = (int)strlen(sget(p, "name"));
		if (n > w)
			w = n;
	}
	if (json_array_size(json_object_get(r, "probes")) == 0) {
		printf("no probes configured ([probe NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	printf("%-*s  %-8s  %-7s  %-19s  %9s  %s\n", w, "PROBE", "KIND",
	    "STATE", "SINCE", "LATENCY", "LAST RESULT");
	json_array_foreach(json_object_get(r, "probes"), i, p) {
		last = json_object_get(p, "last");
		if (json_is_object(last))
			snprintf(lat, sizeof lat, "%.1f ms",
			    fget(last, "latency_ms"));
		else
			snprintf(lat, sizeof lat, "-");
		printf("%-*s  %-8s  %-7s  %-19s  %9s  %s%s\n", w,
		    sget(p, "name"), sget(p, "kind"), sget(p, "state"),
		    when(p, "since"), lat, json_is_object(last) ?
		    (json_is_true(json_object_get(last, "ok")) ? "ok: " :
		    "FAILED: ") : "(not run yet)", json_is_object(last) ?
		    sget(last, "reason") : "");
	}
	return (EXIT_OK);
}

static int
print_probe_run(json_t *r)
{
	int	ok = json_is_true(json_object_get(r, "ok"));

	printf("%s: %s in %.1f ms: %s (state %s)\n", sget(r, "probe"),
	    ok ? "ok" : "FAILED", fget(r, "latency_ms"), sget(r, "reason"),
	    sget(r, "state"));
	if (json_object_get(r, "cert") != NULL) {
		json_t *c = json_object_get(r, "cert");

		printf("  certificate: %s, expires %s (%.1f days), %s\n",
		    sget(c, "subject"), when(c, "not_after"),
		    fget(c, "days_left"), json_is_true(json_object_get(c,
		    "verified")) ? "verified" : "NOT verified");
	}
	if (json_object_get(r, "server_version") != NULL)
		printf("  server version %s\n", sget(r, "server_version"));
	return (ok ? EXIT_OK : EXIT_RPC);
}

static int
print_probe_history(json_t *r)
{
	json_t	*h;
	size_t	 i;

	printf("probe %s, state %s\n", sget(r, "probe"), sget(r, "state"));
	printf("%-19s  %-6s  %9s  %s\n", "TIME", "RESULT", "LATENCY",
	    "REASON");
	json_array_foreach(json_object_get(r, "history"), i, h)
		printf("%-19s  %-6s  %6.1f ms  %s\n", when(h, "time"),
		    json_is_true(json_object_get(h, "ok")) ? "ok" : "FAILED",
		    fget(h, "latency_ms"), sget(h, "reason"));
	return (EXIT_OK);
}

static int
print_alert_test(json_t *r)
{
	printf("test alert delivered through %s (%lld attempt%s)\n",
	    sget(r, "route"), iget(r, "attempts"), iget(r, "attempts") == 1 ?
	    "" : "s");
	return (EXIT_OK);
}

static json_t *
params_name(int argc, char **argv)
{
	(void)argc;
	return (json_pack("{s:s}", "name", argv[0]));
}

static json_t *
params_id(int argc, char **argv)
{
	(void)argc;
	return (json_pack("{s:s}", "id", argv[0]));
}

static json_t *
params_opt_name(int argc, char **argv)
{
	return (argc > 0 ? json_pack("{s:s}", "name", argv[0]) :
	    json_object());
}

static int	follow;

/* NAME plus flags: --follow (run), --dry-run (prune) */
static json_t *
params_name_flags(int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") ==
		    0)
			follow = 1;
		else if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0)
			json_object_set_new(p, "dry_run", json_true());
		else if (argv[i][0] == '-')
			die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "name") == NULL)
			json_object_set_new(p, "name", json_string(argv[i]));
		else
			die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "name") == NULL)
		die(EXIT_USAGE, "missing NAME");
	if (follow)
		json_object_set_new(p, "follow", json_true());
	return (p);
}

/* ID --into DB [--create] [--force] */
static json_t *
params_restore(int argc, char **argv)
{
	json_t	*p = json_object();
	int	 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--into") == 0 && i + 1 < argc)
			json_object_set_new(p, "into", json_string(argv[++i]));
		else if (strncmp(argv[i], "--into=", 7) == 0)
			json_object_set_new(p, "into", json_string(argv[i] + 7));
		else if (strcmp(argv[i], "--create") == 0)
			json_object_set_new(p, "create", json_true());
		else if (strcmp(argv[i], "--force") == 0)
			json_object_set_new(p, "force", json_true());
		else if (argv[i][0] == '-')
			die(EXIT_USAGE, "unknown option '%s'", argv[i]);
		else if (json_object_get(p, "id") == NULL)
			json_object_set_new(p, "id", json_string(argv[i]));
		else
			die(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
	}
	if (json_object_get(p, "id") == NULL || json_object_get(p, "into") ==
	    NULL)
		die(EXIT_USAGE, "usage: opsd-cli backup restore ID --into DBNAME "
		    "[--create] [--force]");
	return (p);
}

static void
human_bytes(double n, char *buf, size_t len)
{
	const char	*u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int		 i = 0;

	while (n >= 1024 && i < 4) {
		n /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", n, u[i]);
}

static int
print_backup_list(json_t *r)
{
	json_t	*b, *it;
	size_t	 i, j;
	char	 sz[32];

	if (json_array_size(json_object_get(r, "backups")) == 0) {
		printf("no backups configured ([backup NAME] sections in "
		    "opsd.conf)\n");
		return (EXIT_OK);
	}
	json_array_foreach(json_object_get(r, "backups"), i, b) {
		printf("%sbackup %s (database %s, schedule '%s')\n", i ? "\n" :
		    "", sget(b, "name"), sget(b, "database"),
		    sget(b, "schedule"));
		printf("  next run %s; newest good %s%s%s\n", when(b,
		    "next_run"), when(b, "newest_good"),
		    json_is_true(json_object_get(b, "stale")) ?
		    "  ** STALE: older than max_age **" : "",
		    json_is_string(json_object_get(b, "running")) ?
		    "  (running now)" : "");
		if (json_array_size(json_object_get(b, "backups")) == 0) {
			printf("  no backups yet\n");
			continue;
		}
		printf("  %-34s  %-19s  %10s  %-8s  %-8s  %s\n", "ID", "TIME",
		    "SIZE", "VERIFIED", "UPLOADED", "SHA256");
		json_array_foreach(json_object_get(b, "backups"), j, it) {
			human_bytes((double)iget(it, "bytes"), sz, sizeof sz);
			printf("  %-34s  %-19s  %10s  %-8s  %-8s  %.12s\n",
			    sget(it, "id"), when(it, "time"), sz,
			    sget(it, "verified"), sget(it, "uploaded"),
			    sget(it, "sha256"));
		}
	}
	return (EXIT_OK);
}

static int
print_backup_verify(json_t *r)
{
	json_t	*v = json_object_get(r, "verify"), *c;
	size_t	 i;

	printf("%s verified: checksum ok, restored into a scratch database"
	    "\n", sget(r, "id"));
	json_array_foreach(json_object_get(v, "checks"), i, c)
		printf("  check %s: got %s, expected %s: %s\n", sget(c, "check"),
		    sget(c, "got"), sget(c, "expect"),
		    json_is_true(json_object_get(c, "ok")) ? "ok" : "FAILED");
	return (EXIT_OK);
}

static int
print_backup_restore(json_t *r)
{
	char	sz[32];

	human_bytes((double)iget(r, "bytes"), sz, sizeof sz);
	printf("restored %s (%s, sha256 %.12s... checked) into database %s%s%s "
	    "in %.1fs\n", sget(r, "id"), sz, sget(r, "sha256"), sget(r,
	    "into"), json_is_true(json_object_get(r, "created")) ?
	    " (created)" : "", json_is_true(json_object_get(r, "forced")) ?
	    " (existing objects replaced)" : "", fget(r, "seconds"));
	return (EXIT_OK);
}

static int
print_backup_prune(json_t *r)
{
	json_t	*v;
	size_t	 i;
	int	 dry = json_is_true(json_object_get(r, "dry_run"));

	if (json_array_size(json_object_get(r, "removed")) == 0)
		printf("nothing to remove for %s\n", sget(r, "backup"));
	json_array_foreach(json_object_get(r, "removed"), i, v)
		printf("%s %s\n", dry ? "would remove" : "removed",
		    json_string_value(v));
	printf("%zu kept\n", json_array_size(json_object_get(r, "kept")));
	return (EXIT_OK);
}

static int
print_backup_run(json_t *r)
{
	printf("backup started: run %s\n", sget(r, "run"));
	return (EXIT_OK);
}

static int
print_jobs(json_t *r)
{
	json_t	*j;
	size_t	 i;
	int	 w = 4, n;

	json_array_foreach(json_object_get(r, "jobs"), i, j) {
		n = (int)strlen(sget(j, "name"));
		if (n > w)
			w = n;
	}
	printf("%-*s  %-19s  %-19s  %-7s  %s\n", w, "JOB", "NEXT RUN",
	    "LAST RUN", "RESULT", "MESSAGE");
	json_array_foreach(json_object_get(r, "jobs"), i, j)
		printf("%-*s  %-19s  %-19s  %-7s  %s\n", w, sget(j, "name"),
		    when(j, "next_run"), when(j, "last_run"),
		    sget(j, "last_result"), sget(j, "last_message"));
	return (EXIT_OK);
}

/* --- commands ---------------------------------------------------------- */

static json_t *
params_log_level(int argc, char **argv)
{
	(void)argc;
	return (json_pack("{s:s}", "level", argv[0]));
}

static const char	*call_method;

static json_t *
params_call(int argc, char **argv)
{
	json_error_t	 jerr;
	json_t		*p;

	call_method = argv[0];
	if (argc < 2)
		return (NULL);
	p = json_loads(argv[1], 0, &jerr);
	if (p == NULL || (!json_is_object(p) && !json_is_array(p)))
		die(EXIT_USAGE, "call: PARAMS must be a JSON object or array, "
		    "e.g. '{\"level\":\"debug\"}'%s%s", p == NULL ? ": " : "",
		    p == NULL ? jerr.text : "");
	return (p);
}

static const struct cmd cmds[] = {
	{ "alert test", "NAME", "alert.test",
	    "send a test message through an alert route",
	    1, 1, params_name, print_alert_test, 60000 },
	{ "backup list", "[NAME]", "backup.list",
	    "backups: schedule, newest good copy, staleness, stored files",
	    0, 1, params_opt_name, print_backup_list, 0 },
	{ "backup prune", "NAME [--dry-run]", "backup.prune",
	    "apply the retention policy now (--dry-run: only list)",
	    1, 2, params_name_flags, print_backup_prune, 0 },
	{ "backup restore", "ID --into DB [--create] [--force]",
	    "backup.restore",
	    "check a backup's checksum and restore it into a database",
	    1, 5, params_restore, print_backup_restore, 86400000 },
	{ "backup run", "NAME [--follow]", "backup.run",
	    "start a backup now (--follow: show progress, exit 1 if it fails)",
	    1, 2, params_name_flags, print_backup_run, 0 },
	{ "backup show", "ID", "backup.show",
	    "one backup's manifest", 1, 1, params_id, print_json, 0 },
	{ "backup verify", "ID", "backup.verify",
	    "verify a backup now: checksum, restore into a scratch database, "
	    "checks", 1, 1, params_id, print_backup_verify, 86400000 },
	{ "call", "METHOD [JSON-PARAMS]", NULL,
	    "call any method with raw JSON params; prints the result",
	    1, 2, params_call, print_json, 0 },
	{ "log-level", "LEVEL", OPSD_M_LOG_LEVEL,
	    "set the log level: error, warning, notice, info or debug",
	    1, 1, params_log_level, print_log_level, 0 },
	{ "jobs", "", "opsd.jobs",
	    "scheduled jobs with their next and last run and last result",
	    0, 0, NULL, print_jobs, 0 },
	{ "methods", "[-q]", OPSD_M_METHODS,
	    "list the daemon's methods, their params and who may call them "
	    "(-q: names only)", 0, 1, NULL, print_methods, 0 },
	{ "probe history", "NAME", "probe.history",
	    "a probe's last results, newest first",
	    1, 1, params_name, print_probe_history, 0 },
	{ "probe list", "", "probe.list",
	    "every probe: state, since when, latency, last result",
	    0, 0, NULL, print_probe_list, 0 },
	{ "probe run", "NAME", "probe.run",
	    "run a probe now and show the result (exit 1 if it failed)",
	    1, 1, params_name, print_probe_run, 3600000 },
	{ "reload", "", OPSD_M_RELOAD,
	    "re-read the configuration; on errors the old one stays",
	    0, 0, NULL, print_reload, 0 },
	{ "status", "", OPSD_M_STATUS,
	    "show version, uptime, configuration and load",
	    0, 0, NULL, print_status, 0 },
};

/* Matches "status" or "probe run"; *words says how many it used. */
static const struct cmd *
cmd_find(int argc, char **argv, int *words)
{
	size_t	i, n;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		n = strcspn(cmds[i].name, " ");
		if (strncmp(cmds[i].name, argv[0], n) != 0 ||
		    argv[0][n] != '\0')
			continue;
		if (cmds[i].name[n] == '\0') {
			*words = 1;
			return (&cmds[i]);
		}
		if (argc > 1 && strcmp(cmds[i].name + n + 1, argv[1]) == 0) {
			*words = 2;
			return (&cmds[i]);
		}
	}
	return (NULL);
}

/* "opsd-cli probe" alone: list what follows it. */
static int
cmd_family_usage(const char *word)
{
	size_t	i, n, found = 0;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		n = strcspn(cmds[i].name, " ");
		if (cmds[i].name[n] == ' ' && strncmp(cmds[i].name, word, n) ==
		    0 && word[n] == '\0') {
			if (found++ == 0)
				fprintf(stderr, "usage:\n");
			fprintf(stderr, "  opsd-cli %s %s\n", cmds[i].name,
			    cmds[i].args);
		}
	}
	return (found > 0);
}

static void
usage(FILE *f)
{
	size_t	i;
	char	buf[64];

	fprintf(f,
"usage: opsd-cli [-s SOCKET] [--json] [--timeout DURATION] COMMAND [ARGS]\n"
"\n"
"Control a running opsd over its socket.\n"
"\n"
"Options:\n"
"  -s, --socket PATH     control socket (default $OPSD_SOCKET or %s)\n"
"  -j, --json            print the raw JSON result, for scripts\n"
"  -t, --timeout DUR     give up after DUR, e.g. 500ms, 10s (default 10s)\n"
"  -h, --help            this help; 'opsd-cli COMMAND --help' for one command\n"
"  -V, --version         print the version\n"
"\n"
"Commands:\n", OPSD_DEFAULT_SOCKET);
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		snprintf(buf, sizeof buf, "%s %s", cmds[i].name, cmds[i].args);
		fprintf(f, "  %-26s %s\n", buf, cmds[i].help);
	}
	fprintf(f,
"\n"
"Exit status: 0 ok, 1 opsd returned an error, 2 usage error,\n"
"3 cannot connect or timed out. See opsd-cli(1).\n");
}

static void
cmd_usage(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: opsd-cli [OPTIONS] %s %s\n\n%s.\n", c->name,
	    c->args, c->help);
	if (c->method != NULL)
		fprintf(f, "Calls the JSON-RPC method %s.\n", c->method);
}

/*
 * After backup run --follow: progress notifications until the finished
 * one. A run can take hours, so no deadline applies here; a closed
 * connection (opsd stopped) ends it with exit 3.
 */
static int
follow_run(struct cli *cli)
{
	json_t		*n, *p;
	const char	*m;
	char		*line, err[256], sz[32], rate[32];
	size_t		 len;
	int		 tty = isatty(1), r;

	for (;;) {
		cli->deadline = mono_ms() + 365ULL * 86400 * 1000;
		line = cli_read_line(cli, &len);
		n = jsonrpc_load(line, len, err, sizeof err);
		if (n == NULL)
			continue;
		m = json_string_value(json_object_get(n, "method"));
		p = json_object_get(n, "params");
		if (m != NULL && cli->json) {
			char *s = json_dumps(n, JSON_COMPACT);
			printf("%s\n", s);
			fflush(stdout);
			free(s);
		} else if (m != NULL) {
			human_bytes((double)iget(p, "bytes"), sz, sizeof sz);
			human_bytes(fget(p, "rate_bytes_per_second"), rate,
			    sizeof rate);
			printf("%s%s  %-10s %10s  %10s/s  %6.1fs%s",
			    tty ? "\r" : "", sget(p, "run"), sget(p, "step"),
			    sz, rate, fget(p, "elapsed_seconds"),
			    tty ? "   " : "\n");
			fflush(stdout);
		}
		if (m != NULL && strcmp(m, "backup.finished") == 0) {
			/* skipped: another host of the fleet runs it */
			r = strcmp(sget(p, "result"), "ok") == 0 ||
			    strcmp(sget(p, "result"), "skipped") == 0 ?
			    EXIT_OK : EXIT_RPC;
			if (!cli->json) {
				printf("%s%s: %s%s%s\n", tty ? "\n" : "",
				    sget(p, "run"), sget(p, "result"),
				    json_object_get(p, "error") ? ": " : "",
				    json_object_get(p, "error") ?
				    sget(p, "error") : "");
			}
			json_decref(n);
			return (r);
		}
		json_decref(n);
	}
}

static int
print_error(struct cli *cli, json_t *reply, const char *method, int code,
    const char *message)
{
	json_t	*err, *data, *v;
	size_t	 i;

	err = json_object_get(reply, "error");
	if (cli->json) {
		/* one line, like results */
		char *s = json_dumps(err, JSON_COMPACT);
		printf("%s\n", s != NULL ? s : "null");
		free(s);
		return (EXIT_RPC);
	}
	fprintf(stderr, "opsd-cli: %s: %s (%s, %d)\n", method, message,
	    rpc_error_name(code), code);
	data = json_object_get(err, "data");
	json_array_foreach(json_object_get(data, "errors"), i, v)
		fprintf(stderr, "  %s\n", json_string_value(v));
	return (EXIT_RPC);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli	 cli;
	const struct cmd *c;
	const char	*method, *message;
	json_t		*params = NULL, *reply, *result;
	int		 ch, code, r, i, words, timeout_set = 0;

	memset(&cli, 0, sizeof cli);
	cli.socket = getenv("OPSD_SOCKET");
	if (cli.socket == NULL || *cli.socket == '\0')
		cli.socket = OPSD_DEFAULT_SOCKET;
	cli.timeout_ms = 10000;

	/* '+': options end at the command, which has its own */
	while ((ch = getopt_long(argc, argv, "+s:jt:hV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			cli.socket = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 't':
			if (parse_duration(optarg, &cli.timeout_ms) != 0 ||
			    cli.timeout_ms == 0)
				die(EXIT_USAGE, "--timeout: '%s' is not a "
				    "duration such as 500ms, 10s or 2m", optarg);
			timeout_set = 1;
			break;
		case 'h':
			usage(stdout);
			return (EXIT_OK);
		case 'V':
			printf("opsd-cli %s (protocol %d)\n", OPSD_VERSION,
			    OPSD_PROTO_VERSION);
			return (EXIT_OK);
		default:
			usage(stderr);
			return (EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return (EXIT_USAGE);
	}
	if (strcmp(argv[0], "help") == 0) {
		if (argc > 1 && (c = cmd_find(argc - 1, argv + 1, &words)) !=
		    NULL)
			cmd_usage(stdout, c);
		else
			usage(stdout);
		return (EXIT_OK);
	}
	if ((c = cmd_find(argc, argv, &words)) == NULL) {
		if (cmd_family_usage(argv[0]))
			return (EXIT_USAGE);
		fprintf(stderr, "opsd-cli: unknown command '%s'\n\n", argv[0]);
		usage(stderr);
		return (EXIT_USAGE);
	}
	argc -= words;
	argv += words;

	if (!timeout_set && c->timeout_ms != 0)
		cli.timeout_ms = c->timeout_ms;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") ==
		    0) {
			cmd_usage(stdout, c);
			return (EXIT_OK);
		}
		if (strcmp(argv[i], "--json") == 0) {
			/* accepted after the command too */
			cli.json = 1;
			memmove(&argv[i], &argv[i + 1],
			    (size_t)(argc - i - 1) * sizeof *argv);
			argc--;
			i--;
		}
	}
	if (c->print == print_methods && argc == 1 &&
	    strcmp(argv[0], "-q") == 0) {
		methods_names_only = 1;
		argc = 0;
	}
	if (argc < c->minargs || argc > c->maxargs) {
		cmd_usage(stderr, c);
		return (EXIT_USAGE);
	}
	if (c->params != NULL)
		params = c->params(argc, argv);
	method = c->method != NULL ? c->method : call_method;

	cli.deadline = mono_ms() + cli.timeout_ms;
	cli_connect(&cli);
	reply = cli_call(&cli, method, params);
	json_decref(params);

	r = jsonrpc_parse_response(reply, &result, &code, &message);
	if (r < 0)
		die(EXIT_CONNECT, "opsd sent something that is not a JSON-RPC "
		    "reply");
	if (r == 1)
		r = print_error(&cli, reply, method, code, message);
	else {
		if (cli.json) {
			char *s = json_dumps(result, JSON_COMPACT |
			    JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
			printf("%s\n", s);
			free(s);
			r = EXIT_OK;
			/* a failed probe run fails the command either way */
			if (c->print == print_probe_run &&
			    !json_is_true(json_object_get(result, "ok")))
				r = EXIT_RPC;
		} else
			r = c->print(result);
	}
	json_decref(reply);
	if (r == EXIT_OK && follow)
		r = follow_run(&cli);
	close(cli.fd);
	free(cli.rbuf);
	return (r);
}
