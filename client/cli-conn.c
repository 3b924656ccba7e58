/*
 * The connection to opsd: one request per run of opsd-cli, one JSON
 * object per line. Every wait is bounded by the --timeout deadline, which
 * starts when the connection is made; a failure to get an answer of any
 * kind exits with EXIT_CONNECT and a message that says what to check,
 * since the operator reading it is usually in the middle of something.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "jsonrpc.h"
#include "opsd-parse.h"
#include "opsd-proto.h"

static uint64_t
conn_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static int
conn_remaining_ms(struct cli *cli)
{
	uint64_t	now = conn_mono_ms();

	if (now >= cli->deadline)
		return (0);
	return ((int)(cli->deadline - now));
}

static void __attribute__((noreturn))
conn_timeout(struct cli *cli, const char *doing)
{
	char	buf[32];

	format_duration(cli->timeout_ms, buf, sizeof buf);
	cli_die(EXIT_CONNECT, "no answer from opsd on %s within %s while %s; "
	    "the daemon may be overloaded or stuck (raise --timeout, or check "
	    "'journalctl -u opsd')", cli->socket, buf, doing);
}

static const char *
file_kind(mode_t mode)
{
	if (S_ISREG(mode))
		return ("regular file");
	if (S_ISDIR(mode))
		return ("directory");
	if (S_ISFIFO(mode))
		return ("FIFO");
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return ("device");
	return ("file of another kind");
}

static void
conn_connect(struct cli *cli)
{
	struct sockaddr_un	sun;
	struct stat		st;
	struct pollfd		pfd;
	socklen_t		len;
	int			fd, err = 0;

	if (strlen(cli->socket) >= sizeof sun.sun_path)
		cli_die(EXIT_USAGE, "socket path too long: %s", cli->socket);
	cli->deadline = conn_mono_ms() + cli->timeout_ms;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, cli->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		cli_die(EXIT_CONNECT, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		err = errno;
		if (err == EAGAIN || err == EINPROGRESS) {
			/* backlog full: wait for the daemon to accept */
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, conn_remaining_ms(cli)) <= 0)
				conn_timeout(cli, "connecting");
			len = sizeof err;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		}
	}
	switch (err) {
	case 0:
		break;
	case ENOENT:
		cli_die(EXIT_CONNECT, "no such file: is opsd running? (socket "
		    "%s; 'systemctl status opsd'. If it listens elsewhere, pass "
		    "-s PATH or set OPSD_SOCKET, the [opsd] socket key)",
		    cli->socket);
	case ECONNREFUSED:
		/* a file or directory there refuses like a dead socket */
		if (stat(cli->socket, &st) == 0 && !S_ISSOCK(st.st_mode))
			cli_die(EXIT_CONNECT, "%s is not a socket but a %s: "
			    "pass opsd's control socket with -s PATH or "
			    "OPSD_SOCKET (the [opsd] socket key)", cli->socket,
			    file_kind(st.st_mode));
		cli_die(EXIT_CONNECT, "cannot connect to %s: connection "
		    "refused. The socket is there but opsd is not listening: it "
		    "stopped or crashed ('systemctl status opsd', 'journalctl "
		    "-u opsd').", cli->socket);
	case EACCES:
	case EPERM:
		cli_die(EXIT_CONNECT, "cannot connect to %s: permission "
		    "denied. Join the socket's group (socket_group in "
		    "opsd.conf) or run as root.", cli->socket);
	default:
		cli_die(EXIT_CONNECT, "cannot connect to %s: %s", cli->socket,
		    strerror(err));
	}
	cli->fd = fd;
}

static void
conn_write(struct cli *cli, const char *buf, size_t len)
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
			if (poll(&pfd, 1, conn_remaining_ms(cli)) <= 0)
				conn_timeout(cli, "sending the request");
			continue;
		}
		if (n == -1)
			cli_die(EXIT_CONNECT, "sending to %s: %s", cli->socket,
			    strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Reads one line; returns it NUL-terminated (valid until the next call). */
static char *
conn_read_line(struct cli *cli, size_t *len)
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
				cli_die(EXIT_CONNECT, "reply from opsd is too "
				    "long");
			cli->rbuf = xrealloc(cli->rbuf, cli->rcap);
		}
		pfd.fd = cli->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, conn_remaining_ms(cli)) <= 0)
			conn_timeout(cli, "waiting for the reply");
		n = read(cli->fd, cli->rbuf + cli->rlen, cli->rcap - cli->rlen);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1)
			cli_die(EXIT_CONNECT, "reading from %s: %s", cli->socket,
			    strerror(errno));
		if (n == 0)
			cli_die(EXIT_CONNECT, "opsd closed the connection "
			    "without answering (is it stopping? see 'journalctl "
			    "-u opsd')");
		cli->rlen += (size_t)n;
	}
}

/*
 * Sends one request (params are consumed) and returns its result, a new
 * reference. An error answer is printed here and gives NULL: the caller
 * exits with EXIT_RPC.
 */
json_t *
conn_call(struct cli *cli, const char *method, json_t *params)
{
	json_t		*req, *reply, *result;
	const char	*message;
	char		*s, *line, err[256];
	size_t		 len;
	int		 code, r;

	if (cli->fd == -1)
		conn_connect(cli);
	req = jsonrpc_request(1, method, params);
	json_decref(params);
	if (req == NULL || (s = jsonrpc_dump(req, &len)) == NULL)
		cli_die(EXIT_USAGE, "cannot encode the request");
	json_decref(req);
	s = xrealloc(s, len + 2);
	s[len++] = '\n';
	conn_write(cli, s, len);
	free(s);

	line = conn_read_line(cli, &len);
	if ((reply = jsonrpc_load(line, len, err, sizeof err)) == NULL)
		cli_die(EXIT_CONNECT, "opsd sent a reply that is not JSON: %s",
		    err);
	r = jsonrpc_parse_response(reply, &result, &code, &message);
	if (r < 0)
		cli_die(EXIT_CONNECT, "opsd sent something that is not a "
		    "JSON-RPC reply");
	if (r == 1) {
		out_rpc_error(cli, reply, method, code, message);
		json_decref(reply);
		return (NULL);
	}
	json_incref(result);
	json_decref(reply);
	return (result);
}

/* The common case: one call, its result printed by show (or as JSON). */
int
conn_call_show(struct cli *cli, const char *method, json_t *params,
    int (*show)(json_t *))
{
	json_t	*result;
	int	 r;

	if ((result = conn_call(cli, method, params)) == NULL)
		return (EXIT_RPC);
	r = out_result(cli, result, show);
	json_decref(result);
	return (r);
}

/*
 * Notifications after the answer (--follow) until on_note returns an exit
 * code instead of -1. Work followed this way can take hours, so no
 * deadline applies; a closed connection (opsd stopped) ends it with
 * EXIT_CONNECT.
 */
int
conn_follow(struct cli *cli,
    int (*on_note)(struct cli *, const char *, json_t *, json_t *))
{
	json_t		*n;
	const char	*m;
	char		*line, err[256];
	size_t		 len;
	int		 r;

	for (;;) {
		cli->deadline = conn_mono_ms() + 365ULL * 86400 * 1000;
		line = conn_read_line(cli, &len);
		if ((n = jsonrpc_load(line, len, err, sizeof err)) == NULL)
			continue;
		m = json_string_value(json_object_get(n, "method"));
		r = -1;
		if (m != NULL)
			r = on_note(cli, m, json_object_get(n, "params"), n);
		json_decref(n);
		if (r != -1)
			return (r);
	}
}

void
conn_close(struct cli *cli)
{
	if (cli->fd != -1)
		close(cli->fd);
	cli->fd = -1;
	free(cli->rbuf);
	cli->rbuf = NULL;
	cli->rlen = cli->rcap = cli->used = 0;
}
