/*
 * echo-baseline: the floor under any control-plane server on this machine.
 *
 * One thread, one epoll loop, a Unix listening socket. Every request line
 * gets a fixed reply of about the size of opsd.status's (~600 bytes), with
 * only the request's "id" copied in so the load generator can check that
 * each reply answers its request. No JSON parsing and no allocation per
 * call: what is left is the syscalls, the wake-ups and the scheduler, the
 * cost opsd pays too before doing any work of its own.
 *
 *   echo-baseline SOCKET_PATH      (runs until SIGTERM or SIGINT)
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RBUF_SIZE	(64 * 1024)
#define WBUF_SIZE	(256 * 1024)

/* shaped like opsd.status's result, so the bytes moved are the same */
static const char reply_head[] =
    "{\"jsonrpc\":\"2.0\",\"result\":{\"version\":\"0.1.0\",\"protocol\":1,"
    "\"pid\":42424,\"uptime_seconds\":12,\"started\":\"2026-01-01T00:00:00Z\","
    "\"config\":\"/tmp/opsd-bench.XXXXXX/opsd.conf\",\"state_dir\":"
    "\"/tmp/opsd-bench.XXXXXX/state\",\"socket\":"
    "\"/tmp/opsd-bench.XXXXXX/opsd.sock\",\"socket_activated\":false,"
    "\"log_level\":\"warning\",\"log_target\":\"stderr\",\"objects\":{},"
    "\"loop\":{\"connections\":17,\"lag_ms\":0.050999999999999997,"
    "\"lag_max_ms\":0.0,\"cpu_percent\":99.233841005757441},"
    "\"requests_total\":1234567,\"reloads\":0,"
    "\"watchdog_usec\":0,\"stopping\":false,\"summary\":\"running; 17 "
    "clients; config /tmp/opsd-bench.XXXXXX/opsd.conf\"},\"id\":";

struct conn {
	int	 fd;
	char	 rbuf[RBUF_SIZE];
	size_t	 rlen;
	char	*wbuf;		/* only when a write came up short */
	size_t	 wlen, woff;
};

static volatile sig_atomic_t	stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c->wbuf);
	free(c);
}

/* Queues what did not fit in the socket; -1 if the connection is dead. */
static int
conn_write(int ep, struct conn *c, const char *p, size_t len)
{
	struct epoll_event	ev;
	ssize_t			n;

	if (c->wlen == c->woff) {
		while (len > 0) {
			n = write(c->fd, p, len);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				break;
			if (n == -1)
				return (-1);
			p += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return (0);
		c->wlen = c->woff = 0;
	}
	if (c->wbuf == NULL && (c->wbuf = malloc(WBUF_SIZE)) == NULL)
		return (-1);
	if (c->wlen + len > WBUF_SIZE)
		return (-1);	/* client not reading: drop it */
	memcpy(c->wbuf + c->wlen, p, len);
	c->wlen += len;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	return (0);
}

static int
conn_flush(int ep, struct conn *c)
{
	struct epoll_event	ev;
	ssize_t			n;

	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return (0);
		if (n == -1)
			return (-1);
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	return (0);
}

/* Answers every complete line; -1 if the connection is finished. */
static int
conn_read(int ep, struct conn *c)
{
	char	 out[WBUF_SIZE / 4], *p, *nl, *id, *end;
	size_t	 olen = 0, left, idlen;
	ssize_t	 n;

	n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return (0);
	if (n <= 0)
		return (-1);
	c->rlen += (size_t)n;
	p = c->rbuf;
	while ((nl = memchr(p, '\n', c->rlen - (size_t)(p - c->rbuf))) !=
	    NULL) {
		/* the id: whatever follows "id": up to ',' or '}' */
		id = memmem(p, (size_t)(nl - p), "\"id\":", 5);
		if (id != NULL) {
			id += 5;
			for (end = id; end < nl && *end != ',' && *end != '}';
			    end++)
				;
			idlen = (size_t)(end - id);
		} else {
			id = "null";
			idlen = 4;
		}
		if (olen + sizeof reply_head + idlen + 2 > sizeof out) {
			if (conn_write(ep, c, out, olen) == -1)
				return (-1);
			olen = 0;
		}
		memcpy(out + olen, reply_head, sizeof reply_head - 1);
		olen += sizeof reply_head - 1;
		memcpy(out + olen, id, idlen);
		olen += idlen;
		out[olen++] = '}';
		out[olen++] = '\n';
		p = nl + 1;
	}
	left = c->rlen - (size_t)(p - c->rbuf);
	if (left == RBUF_SIZE)
		return (-1);	/* line too long */
	memmove(c->rbuf, p, left);
	c->rlen = left;
	if (olen > 0 && conn_write(ep, c, out, olen) == -1)
		return (-1);
	return (0);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun;
	struct epoll_event	 ev, evs[64];
	struct sigaction	 sa;
	struct conn		*c;
	int			 lfd, fd, ep, n, i;

	if (argc != 2) {
		fprintf(stderr, "usage: echo-baseline SOCKET_PATH\n");
		return (2);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;	/* no SA_RESTART: epoll_wait returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(argv[1]) >= sizeof sun.sun_path) {
		fprintf(stderr, "echo-baseline: socket path too long\n");
		return (2);
	}
	strcpy(sun.sun_path, argv[1]);
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    listen(lfd, SOMAXCONN) == -1) {
		perror("echo-baseline: listen");
		return (1);
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("echo-baseline: epoll_create1");
		return (1);
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;		/* NULL marks the listener */
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	while (!stop) {
		n = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), -1);
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			if (c == NULL) {
				while ((fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
					if ((c = calloc(1, sizeof *c)) == NULL) {
						close(fd);
						continue;
					}
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if ((evs[i].events & EPOLLOUT) &&
			    conn_flush(ep, c) == -1) {
				conn_close(c);
				continue;
			}
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    conn_read(ep, c) == -1)
				conn_close(c);
		}
	}
	unlink(argv[1]);
	return (0);
}
