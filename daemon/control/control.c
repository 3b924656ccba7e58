/*
 * The control socket. Every connection is a bufferevent; requests are read
 * with the line framer and answered in order. Limits keep clients from
 * hurting each other: a connection whose unsent output passes
 * client_buffer is not read again until it drains (so a client that sends
 * but never reads holds at most that much memory), nor is one that is
 * behind at all while the output of all connections passes
 * output_buffer_total (so 4,096 of them do not hold 4 GiB); a connection
 * with no traffic for idle_timeout, in either direction, is closed.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "jsonrpc.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "state.h"
#include "util.h"

struct ctl_conn {
	struct opsd		*opsd;
	struct bufferevent	*bev;
	struct evbuffer_cb_entry *out_cb;	/* counts into out_total */
	struct frame_reader	 fr;
	struct peer		 peer;
	int			 comm_read;
	int			 throttled;	/* output over the limit */
	size_t			 turn;		/* output of this turn */
	int			 waiting;	/* in waitq, for a turn */
	int			 draining;	/* close once output is sent */
	LIST_HEAD(, rpc_pending) pending;	/* deferred calls */
	TAILQ_ENTRY(ctl_conn)	 entry;
	TAILQ_ENTRY(ctl_conn)	 wait_entry;
};

struct control {
	struct evconnlistener	*listener;
	char			*path;
	int			 activated;	/* fd from systemd */
	int			 created;	/* we made the path: unlink it */
	unsigned int		 nconns;
	uint64_t		 out_total;	/* unsent bytes, all conns */
	struct event		*ev_resume;	/* after an accept error */
	int			 reserve_fd;	/* /dev/null, for EMFILE */
	int			 refuse_fd;	/* accepted with the reserve */
	struct event		*ev_refuse;
	int			 fd_short;	/* out of fds, logged */
	struct event		*ev_reap;	/* frees drained connections */
	size_t			 round_out;	/* output, and... */
	unsigned int		 round_accepts;	/* ...accepts this round */
	int			 accept_paused;	/* for the next round */
	struct event		*ev_round;	/* the loop's next round */
	struct event		*ev_serve;	/* turns of the waitq */
	TAILQ_HEAD(, ctl_conn)	 conns;
	TAILQ_HEAD(, ctl_conn)	 waitq;		/* input left, in turn */
};

static void	conn_process(struct ctl_conn *);

/*
 * Reply bytes one connection may render before the others get a turn: a
 * few replies. 200 clients with a backlog of requests each would
 * otherwise render megabytes each in one loop iteration, and a new
 * client waits for all of it.
 */
#define CONN_TURN	(16 * 1024)

/*
 * Reply bytes all connections together render in one loop iteration:
 * turns alone do not bound it, since every connection's turn may come in
 * the same iteration (100 clients that never read, each refilling with
 * 56 KB probe lists, stalled the loop 95 ms in bench/soak; a budget of
 * 128 KiB still let 26 ms through). Past it, the rest waits for the next
 * iteration, so timers and probes run between.
 */
#define CTL_ITER_BUDGET	(32 * 1024)

/*
 * Connections accepted in one loop iteration. libevent's listener accepts
 * until the backlog is empty, and 4,000 clients connecting at once cost
 * 160 ms in one callback; past this many the listener waits for the next
 * iteration (their first requests wait for their turns anyway).
 */
#define CTL_ACCEPT_BURST 32

/*
 * A round lasts until the loop next runs its due timers. Output is counted
 * against the budget until ev_round, a timer due at once, fires in the
 * next iteration: libevent runs an iteration's I/O callbacks before its
 * timers, so a client that becomes readable meanwhile finds the budget
 * spent and joins the queue, and no more than a budget (and the reply
 * that crossed it) is rendered between two runs of the timers. The loop's
 * cached time, compared here before, does not tell iterations apart:
 * libevent reads CLOCK_MONOTONIC_COARSE, which moves every 4 ms with
 * HZ=250, so the budget was one per 4 ms and waiting connections spun
 * through their turn timers until the clock moved. The first output of a
 * round arms ev_round, so that a round is one iteration: when the count
 * carried on over iterations, 16 clients each with one call at a time
 * spent a budget every 48 replies, and each client that found it spent
 * was queued, which cost an epoll_ctl to stop reading and one to start
 * again (7.5% of opsd's samples, bench/rpc at 16 clients).
 */
static void
ctl_next_round(struct control *ctl)
{
	static const struct timeval	now = { 0, 0 };

	if (!evtimer_pending(ctl->ev_round, NULL))
		evtimer_add(ctl->ev_round, &now);
}

/* Counts output against this round's budget; 1 once it is spent. */
static int
ctl_budget_spent(struct control *ctl, size_t len)
{
	if (ctl->round_out == 0 && len > 0)
		ctl_next_round(ctl);	/* the round ends with the iteration */
	ctl->round_out += len;
	if (ctl->round_out < CTL_ITER_BUDGET)
		return (0);
	ctl_next_round(ctl);
	return (1);
}

/*
 * c has requests left and waits for its turn, not reading meanwhile, so
 * its input stays bounded and an EOF does not overtake the requests
 * before it. The queue is served in order, a budget's worth a round.
 */
static void
conn_queue(struct ctl_conn *c)
{
	struct control	*ctl = c->opsd->control;

	bufferevent_disable(c->bev, EV_READ);
	if (!c->waiting) {
		c->waiting = 1;
		TAILQ_INSERT_TAIL(&ctl->waitq, c, wait_entry);
	}
	ctl_next_round(ctl);
}

static void
conn_unqueue(struct ctl_conn *c)
{
	if (c->waiting) {
		c->waiting = 0;
		TAILQ_REMOVE(&c->opsd->control->waitq, c, wait_entry);
	}
}

/* Accepting again, unless something else holds the listener back. */
static void
listener_resume(struct opsd *o)
{
	struct control	*ctl = o->control;

	if (ctl->listener != NULL && !o->stopping && ctl->ev_refuse == NULL &&
	    !evtimer_pending(ctl->ev_resume, NULL) &&
	    ctl->nconns < o->conf->max_connections)
		evconnlistener_enable(ctl->listener);
}

/*
 * The loop went round: a new budget. The queue's turns come after the
 * timers due now (event_active puts them behind those already active),
 * so the timers of this iteration do not wait for them.
 */
static void
round_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;
	struct control	*ctl = o->control;

	(void)fd;
	(void)what;
	ctl->round_out = 0;
	ctl->round_accepts = 0;
	if (!TAILQ_EMPTY(&ctl->waitq))
		event_active(ctl->ev_serve, EV_TIMEOUT, 1);
	if (ctl->accept_paused) {
		ctl->accept_paused = 0;
		listener_resume(o);
	}
}

static void
serve_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control	*ctl = ((struct opsd *)arg)->control;
	struct ctl_conn	*c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&ctl->waitq)) != NULL &&
	    ctl->round_out < CTL_ITER_BUDGET) {
		conn_unqueue(c);
		/* throttled: conn_write_cb resumes it; draining: stopping */
		if (c->throttled || c->draining)
			continue;
		bufferevent_enable(c->bev, EV_READ);
		conn_process(c);	/* back in the queue if input is left */
	}
	if (!TAILQ_EMPTY(&ctl->waitq))
		ctl_next_round(ctl);
}

const struct peer *
control_peer(struct ctl_conn *c)
{
	char	 path[64];
	ssize_t	 n;
	int	 fd;

	if (!c->comm_read) {
		/* Read lazily: only audited calls need it. */
		c->comm_read = 1;
		snprintf(path, sizeof path, "/proc/%d/comm", (int)c->peer.pid);
		strcpy(c->peer.comm, "?");
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) != -1) {
			n = read(fd, c->peer.comm, sizeof c->peer.comm - 1);
			if (n > 0) {
				c->peer.comm[n] = '\0';
				c->peer.comm[strcspn(c->peer.comm, "\n")] =
				    '\0';
			}
			close(fd);
		}
	}
	return (&c->peer);
}

int
control_may_admin(struct opsd *o, struct ctl_conn *c)
{
	int	i;

	if (c->peer.uid == 0)
		return (1);
	if (o->conf->admin_group == NULL)
		return (0);
	if (c->peer.gid == o->conf->admin_gid)
		return (1);
	for (i = 0; i < c->peer.ngroups; i++) {
		if (c->peer.groups[i] == o->conf->admin_gid)
			return (1);
	}
	return (0);
}

unsigned int
control_nconns(struct opsd *o)
{
	return (o->control != NULL ? o->control->nconns : 0);
}

int
control_activated(struct opsd *o)
{
	return (o->control != NULL && o->control->activated);
}

const char *
control_path(struct opsd *o)
{
	return (o->control != NULL ? o->control->path : o->conf->socket);
}

static void
conn_free(struct ctl_conn *c)
{
	struct opsd		*o = c->opsd;
	struct control		*ctl = o->control;
	struct rpc_pending	*p;

	while ((p = LIST_FIRST(&c->pending)) != NULL) {
		LIST_REMOVE(p, entry);
		p->conn = NULL;		/* the answer has nowhere to go */
	}
	conn_unqueue(c);
	TAILQ_REMOVE(&ctl->conns, c, entry);
	ctl->nconns--;
	evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
	ctl->out_total -= evbuffer_get_length(bufferevent_get_output(c->bev));
	bufferevent_free(c->bev);
	frame_free(&c->fr);
	free(c->peer.groups);
	free(c);
	if (o->stopping) {
		opsd_maybe_exit(o);
		return;
	}
	/* A slot is free again if accepting was paused at the limit. */
	if (ctl->listener != NULL && !o->stopping &&
	    ctl->nconns < o->conf->max_connections)
		evconnlistener_enable(ctl->listener);
}

/*
 * Queues one line. Nothing queued before it: hand it to the socket now.
 * Through the bufferevent it costs an epoll_ctl to watch for
 * writability, a loop round and an epoll_ctl to stop watching, for a
 * write that would not have blocked. What the socket does not take goes
 * the usual way. Not while draining: conn_write_cb closes the connection
 * once the output buffer has been sent.
 */
static void
conn_send_line(struct ctl_conn *c, const char *s, size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	struct iovec	 iov[2];
	ssize_t		 n = 0;

	c->turn += len + 1;
	ctl_budget_spent(c->opsd->control, len + 1);
	if (!c->draining && evbuffer_get_length(out) == 0) {
		iov[0].iov_base = (void *)s;
		iov[0].iov_len = len;
		iov[1].iov_base = (void *)"\n";
		iov[1].iov_len = 1;
		n = writev(bufferevent_getfd(c->bev), iov, 2);
		if (n < 0)
			n = 0;
	}
	if ((size_t)n < len) {
		evbuffer_add(out, s + n, len - (size_t)n);
		evbuffer_add(out, "\n", 1);
	} else if ((size_t)n == len)
		evbuffer_add(out, "\n", 1);
}

static int
conn_write(struct ctl_conn *c, json_t *msg)
{
	char		 buf[16384], *s;
	size_t		 len;

	/* Most replies fit on the stack: no allocation, no strlen. */
	if ((s = jsonrpc_dumpb(msg, buf, sizeof buf, &len)) == NULL)
		return (-ENOMEM);
	if (len > OPSD_MAX_MESSAGE) {
		/* the protocol promises no line longer than that */
		json_t	*e;

		if (s != buf)
			free(s);
		e = jsonrpc_error(json_is_object(msg) ?
		    json_object_get(msg, "id") : NULL, RPC_INTERNAL_ERROR,
		    "reply longer than the message limit", NULL);
		s = jsonrpc_dumpb(e, buf, sizeof buf, &len);
		json_decref(e);
		if (s == NULL)
			return (-ENOMEM);
	}
	conn_send_line(c, s, len);
	if (s != buf)
		free(s);
	return (0);
}

static void	conn_set_timeouts(struct opsd *, struct ctl_conn *);

/*
 * A client waiting for an answer (a restore, a followed backup) is not
 * idle: the idle timeout applies only while nothing is pending.
 */
void
control_track(struct ctl_conn *c, struct rpc_pending *p)
{
	int	was_empty = LIST_EMPTY(&c->pending);

	LIST_INSERT_HEAD(&c->pending, p, entry);
	if (was_empty)
		conn_set_timeouts(c->opsd, c);
}

/*
 * The last call a draining connection waited for is done. Its reply, if it
 * has one, is queued right after this returns (so the connection cannot be
 * freed here); a notification has none, and then nothing would ever wake
 * the connection up again: the reaper frees it from the loop.
 */
void
control_untrack(struct rpc_pending *p)
{
	struct ctl_conn	*c = p->conn;

	LIST_REMOVE(p, entry);
	p->conn = NULL;
	if (c == NULL || !LIST_EMPTY(&c->pending))
		return;
	if (c->draining)
		event_active(c->opsd->control->ev_reap, EV_TIMEOUT, 1);
	else
		conn_set_timeouts(c->opsd, c);
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;
	struct ctl_conn	*c, *next;

	(void)fd;
	(void)what;
	for (c = TAILQ_FIRST(&o->control->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->draining && LIST_EMPTY(&c->pending) &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
	}
}

/*
 * Whether the client closed its socket, not only its sending side: then
 * nothing sent can reach it. A nonblocking poll; Linux reports POLLHUP on
 * an AF_UNIX stream once the peer shut down both directions.
 */
static int
conn_peer_gone(struct ctl_conn *c)
{
	struct pollfd	pfd;

	pfd.fd = bufferevent_getfd(c->bev);
	pfd.events = 0;
	pfd.revents = 0;
	return (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)));
}

int
control_send(struct ctl_conn *c, json_t *msg)
{
	/* also while draining: a half-closed client still reads */
	return (conn_write(c, msg));
}

static void
conn_reply_error(struct ctl_conn *c, int code, const char *message)
{
	json_t	*e;

	e = jsonrpc_error(NULL, code, message, NULL);
	conn_write(c, e);
	json_decref(e);
}

/*
 * Every byte added to or sent from a connection's output buffer, so that
 * the total is known without walking the connections.
 */
static void
conn_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct ctl_conn	*c = arg;

	(void)buf;
	c->opsd->control->out_total += info->n_added;
	c->opsd->control->out_total -= info->n_deleted;
}

/*
 * Whether to stop reading c until its output drains (conn_write_cb). One
 * connection may hold client_buffer; all of them together
 * output_buffer_total, past which any connection that is behind at all
 * waits for its client. A connection with nothing queued is never held
 * back: its replies go straight to the socket, so a client that reads is
 * served however many others do not.
 */
static int
conn_over_limit(struct ctl_conn *c)
{
	struct opsd	*o = c->opsd;
	size_t		 len;

	len = evbuffer_get_length(bufferevent_get_output(c->bev));
	return (len > o->conf->client_buffer || (len > 0 &&
	    o->control->out_total > o->conf->output_buffer_total));
}

static int
conn_line(void *arg, enum frame_kind kind, const char *line, size_t len)
{
	struct ctl_conn	*c = arg;
	json_t		*msg, *reply;
	char		 err[256], *text = NULL;
	size_t		 i, textlen = 0;

	if (kind == FRAME_TOO_LONG) {
		snprintf(err, sizeof err, "request longer than %d bytes; the "
		    "rest of the line is skipped", OPSD_MAX_MESSAGE);
		conn_reply_error(c, RPC_INVALID_REQUEST, err);
		goto out;
	}
	for (i = 0; i < len; i++) {
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			break;
	}
	if (i == len)		/* blank line: nothing to answer */
		return (0);
	if ((msg = jsonrpc_load(line, len, err, sizeof err)) == NULL) {
		conn_reply_error(c, RPC_PARSE_ERROR, err);
		goto out;
	}
	reply = rpc_handle_text(c->opsd, c, msg, &text, &textlen);
	json_decref(msg);
	if (text != NULL) {
		/* a result already in text (opsd.status): no re-encoding */
		conn_send_line(c, text, textlen);
		free(text);
	} else if (reply != NULL) {
		conn_write(c, reply);
		json_decref(reply);
	}
out:
	/* Pause reading while the client is behind on its replies. */
	if (conn_over_limit(c))
		return (1);
	return (c->turn >= CONN_TURN || ctl_budget_spent(c->opsd->control,
	    0) ? 2 : 0);
}

static void
conn_process(struct ctl_conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec	 v[4];
	size_t			 used;
	int			 i, n, r = 0;

	c->turn = 0;
	/* this round's output is spent: all of it waits for the next */
	if (evbuffer_get_length(in) > 0 && ctl_budget_spent(c->opsd->control,
	    0))
		r = 2;
	while (r == 0 && evbuffer_get_length(in) > 0) {
		n = evbuffer_peek(in, -1, NULL, v, nitems(v));
		if (n > (int)nitems(v))
			n = nitems(v);
		for (i = 0; i < n && r == 0; i++) {
			r = frame_feed(&c->fr, v[i].iov_base, v[i].iov_len,
			    conn_line, c, &used);
			evbuffer_drain(in, used);
		}
	}
	if (r == 1 && !c->throttled) {
		c->throttled = 1;
		bufferevent_disable(c->bev, EV_READ);
	} else if (r == 2 && evbuffer_get_length(in) > 0) {
		/* requests are left: the rest after the others' turns */
		conn_queue(c);
	}
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn	*c = arg;
	struct evbuffer	*out = bufferevent_get_output(bev);

	if (c->draining) {
		if (evbuffer_get_length(out) == 0 &&
		    LIST_EMPTY(&c->pending))
			conn_free(c);
		return;
	}
	if (c->throttled) {
		c->throttled = 0;
		bufferevent_enable(bev, EV_READ);
		conn_process(c);	/* what was left in the input */
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn	*c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_debug("control.idle", "closing idle connection of pid %d",
		    (int)c->peer.pid);
	else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    (evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
	    !LIST_EMPTY(&c->pending)) && !c->opsd->stopping &&
	    !conn_peer_gone(c)) {
		/*
		 * Client shut down its side: send what it asked for, then
		 * close (conn_write_cb, or the reaper once the last call it
		 * waits for is done). A client that closed altogether gets
		 * nothing: its pending calls lose their connection.
		 */
		c->draining = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	conn_free(c);
}

static void
conn_set_timeouts(struct opsd *o, struct ctl_conn *c)
{
	struct timeval	tv;

	/* below half the limit again: the write callback resumes reading */
	bufferevent_setwatermark(c->bev, EV_WRITE,
	    o->conf->client_buffer / 2, 0);
	if (o->conf->idle_timeout == 0) {
		bufferevent_set_timeouts(c->bev, NULL, NULL);
		return;
	}
	tv.tv_sec = (time_t)(o->conf->idle_timeout / 1000);
	tv.tv_usec = (suseconds_t)(o->conf->idle_timeout % 1000) * 1000;
	/* the write timeout stays: a client that stops reading is cut off */
	bufferevent_set_timeouts(c->bev, LIST_EMPTY(&c->pending) ? &tv : NULL,
	    &tv);
}

static int
peer_credentials(int fd, struct peer *p)
{
	struct ucred	cred;
	socklen_t	len = sizeof cred;
	gid_t		buf[64];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return (-errno);
	p->uid = cred.uid;
	p->gid = cred.gid;
	p->pid = cred.pid;
	len = sizeof buf;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) == 0) {
		p->ngroups = (int)(len / sizeof buf[0]);
		p->groups = xcalloc((size_t)p->ngroups + 1, sizeof buf[0]);
		memcpy(p->groups, buf, len);
	} else if (errno == ERANGE) {
		p->groups = xmalloc(len);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups,
		    &len) == 0)
			p->ngroups = (int)(len / sizeof buf[0]);
	}
	return (0);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct opsd	*o = arg;
	struct control	*ctl = o->control;
	struct ctl_conn	*c;
	static const char busy[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":"
	    "-32003,\"message\":\"too many connections; try again\"},"
	    "\"id\":null}\n";
	ssize_t		 n;

	(void)sa;
	(void)salen;
	if (ctl->nconns >= o->conf->max_connections) {
		char	drain[4096];

		/*
		 * Best effort: read what the client already sent (closing
		 * with unread input resets the connection and the client
		 * would never see the reply), answer, then close our side.
		 */
		while (recv(fd, drain, sizeof drain, MSG_DONTWAIT) > 0)
			;
		n = write(fd, busy, sizeof busy - 1);
		(void)n;
		shutdown(fd, SHUT_WR);
		close(fd);
		log_warn("control.limit", "connection limit %llu reached; "
		    "not accepting until one closes",
		    (unsigned long long)o->conf->max_connections);
		evconnlistener_disable(l);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->opsd = o;
	LIST_INIT(&c->pending);
	if (peer_credentials(fd, &c->peer) != 0) {
		log_warn("control.accept", "cannot read peer credentials: %s",
		    strerror(errno));
		close(fd);
		free(c);
		return;
	}
	c->bev = bufferevent_socket_new(o->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c->peer.groups);
		free(c);
		return;
	}
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev),
	    conn_out_cb, c);
	if (c->out_cb == NULL) {
		bufferevent_free(c->bev);	/* closes fd */
		free(c->peer.groups);
		free(c);
		return;
	}
	frame_init(&c->fr, OPSD_MAX_MESSAGE);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	conn_set_timeouts(o, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&ctl->conns, c, entry);
	ctl->nconns++;
	ctl->fd_short = 0;
	if (++ctl->round_accepts >= CTL_ACCEPT_BURST) {
		/* the rest of the backlog in the next round */
		evconnlistener_disable(l);
		ctl->accept_paused = 1;
		ctl_next_round(ctl);
	}
}

static void
reserve_open(struct control *ctl)
{
	if (ctl->reserve_fd == -1)
		ctl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;

	(void)fd;
	(void)what;
	reserve_open(o->control);
	if (o->control->listener != NULL && !o->stopping)
		evconnlistener_enable(o->control->listener);
}

/*
 * The client refused for want of fds has sent its request (or had 50ms
 * to): read it, so that the close does not reset the connection before
 * the client has read the error line, then close, take the reserve back
 * and accept again.
 */
static void
refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;
	struct control	*ctl = o->control;
	char		 drain[4096];

	(void)what;
	while (recv(fd, drain, sizeof drain, MSG_DONTWAIT) > 0)
		;
	event_free(ctl->ev_refuse);
	ctl->ev_refuse = NULL;
	close(ctl->refuse_fd);
	ctl->refuse_fd = -1;
	reserve_open(ctl);
	if (ctl->listener != NULL && !o->stopping &&
	    ctl->nconns < o->conf->max_connections)
		evconnlistener_enable(ctl->listener);
}

/*
 * Out of file descriptors, the listener stays readable: accept would fail
 * at once, again and again, and the client would wait in the backlog with
 * no answer. Give up the reserve fd for one accept instead, tell that
 * client why, and close it; one at a time.
 */
static int
accept_with_reserve(struct opsd *o, struct evconnlistener *l)
{
	struct control	*ctl = o->control;
	struct timeval	 tv = { 0, 50 * 1000 };
	static const char nofd[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":"
	    "-32003,\"message\":\"opsd is out of file descriptors; try "
	    "again\"},\"id\":null}\n";
	char		 drain[4096];
	ssize_t		 n;
	int		 fd;

	if (ctl->reserve_fd == -1)
		return (-EMFILE);
	close(ctl->reserve_fd);
	ctl->reserve_fd = -1;
	fd = accept4(evconnlistener_get_fd(l), NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		n = -errno;
		reserve_open(ctl);
		return (n == -EAGAIN || n == -EWOULDBLOCK ? 0 : (int)n);
	}
	if (!ctl->fd_short) {
		ctl->fd_short = 1;
		log_warn("control.accept", "out of file descriptors (%u "
		    "control connections open): new connections are told so "
		    "and closed until some close; raise LimitNOFILE= or lower "
		    "max_connections", ctl->nconns);
	}
	n = write(fd, nofd, sizeof nofd - 1);
	(void)n;
	/* sent already (it waited in the backlog): close now */
	if (recv(fd, drain, sizeof drain, MSG_DONTWAIT | MSG_PEEK) > 0 ||
	    (ctl->ev_refuse = event_new(o->base, fd, EV_READ, refuse_cb,
	    o)) == NULL) {
		while (recv(fd, drain, sizeof drain, MSG_DONTWAIT) > 0)
			;
		close(fd);
		reserve_open(ctl);
		return (0);
	}
	ctl->refuse_fd = fd;
	evconnlistener_disable(l);
	event_add(ctl->ev_refuse, &tv);
	return (0);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct opsd	*o = arg;
	struct timeval	 tv = { 0, 100 * 1000 };
	int		 e = EVUTIL_SOCKET_ERROR();

	if ((e == EMFILE || e == ENFILE) && accept_with_reserve(o, l) == 0)
		return;
	/* No reserve either: back off briefly instead of spinning. */
	log_warn("control.accept", "accept failed: %s; pausing 100ms",
	    evutil_socket_error_to_string(e));
	evconnlistener_disable(l);
	evtimer_add(o->control->ev_resume, &tv);
}

static int
socket_in_use(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, r;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof sun.sun_path - 1);
	r = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
	close(fd);
	return (r);
}

static int
control_bind(struct opsd *o, const char *path)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			*dir, *slash;
	mode_t			 old;
	int			 fd, r;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if ((r = state_mkdir(dir, 0755)) != 0) {
			log_err("control.listen", "cannot create %s: %s", dir,
			    strerror(-r));
			free(dir);
			return (r);
		}
	}
	free(dir);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("control.listen", "%s exists and is not a "
			    "socket; remove it or set socket= elsewhere", path);
			return (-EEXIST);
		}
		if (socket_in_use(path)) {
			log_err("control.listen", "another process (opsd?) is "
			    "listening on %s; stop it first", path);
			return (-EADDRINUSE);
		}
		unlink(path);	/* stale, from a daemon that died */
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return (-errno);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof sun.sun_path - 1);
	/* born private; opened up to socket_mode once the group is set */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (r == -1 || listen(fd, SOMAXCONN) == -1) {
		r = -errno;
		log_err("control.listen", "cannot listen on %s: %s", path,
		    strerror(-r));
		close(fd);
		return (r);
	}
	return (fd);
}

static void
control_apply_mode(struct opsd *o)
{
	struct control	*ctl = o->control;

	if (ctl->activated)	/* the .socket unit owns mode and group */
		return;
	if (o->conf->socket_group != NULL &&
	    chown(ctl->path, (uid_t)-1, o->conf->socket_gid) == -1)
		log_warn("control.listen", "chown %s to group %s: %s",
		    ctl->path, o->conf->socket_group, strerror(errno));
	if (chmod(ctl->path, o->conf->socket_mode) == -1)
		log_warn("control.listen", "chmod %s: %s", ctl->path,
		    strerror(errno));
}

int
control_init(struct opsd *o)
{
	struct control		*ctl;
	struct sockaddr_un	 sun;
	socklen_t		 len;
	char			**names = NULL;
	int			 n, i, fd = -1;

	ctl = xcalloc(1, sizeof *ctl);
	TAILQ_INIT(&ctl->conns);
	TAILQ_INIT(&ctl->waitq);
	ctl->reserve_fd = ctl->refuse_fd = -1;
	o->control = ctl;

	n = sd_listen_fds_with_names(1, &names);
	for (i = 0; i < n; i++) {
		int cand = SD_LISTEN_FDS_START + i;

		if (fd == -1 && sd_is_socket_unix(cand, SOCK_STREAM, 1, NULL,
		    0) > 0)
			fd = cand;
		else
			close(cand);	/* not ours to use */
		free(names != NULL ? names[i] : NULL);
	}
	free(names);
	if (fd != -1) {
		ctl->activated = 1;
		len = sizeof sun;
		memset(&sun, 0, sizeof sun);
		if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 &&
		    sun.sun_path[0] != '\0')
			ctl->path = xstrdup(sun.sun_path);
		else
			ctl->path = xstrdup(o->conf->socket);
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
	} else {
		if ((fd = control_bind(o, o->conf->socket)) < 0) {
			free(ctl);
			o->control = NULL;
			return (fd);
		}
		ctl->path = xstrdup(o->conf->socket);
		ctl->created = 1;
	}
	ctl->listener = evconnlistener_new(o->base, accept_cb, o,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (ctl->listener == NULL)
		fatalx("control: evconnlistener_new failed");
	evconnlistener_set_error_cb(ctl->listener, accept_error_cb);
	ctl->ev_resume = evtimer_new(o->base, resume_cb, o);
	ctl->ev_reap = event_new(o->base, -1, 0, reap_cb, o);
	ctl->ev_round = evtimer_new(o->base, round_cb, o);
	ctl->ev_serve = event_new(o->base, -1, 0, serve_cb, o);
	if (ctl->ev_resume == NULL || ctl->ev_reap == NULL ||
	    ctl->ev_round == NULL || ctl->ev_serve == NULL)
		fatalx("control: event_new failed");
	/* one fd kept in reserve: the socket can always say it is full */
	reserve_open(ctl);
	control_apply_mode(o);
	return (0);
}

void
control_reconfigure(struct opsd *o)
{
	struct ctl_conn	*c;

	if (o->control == NULL)
		return;
	if (!o->control->activated && strcmp(o->conf->socket,
	    o->control->path) != 0)
		log_warn("control.listen", "socket changed to %s; the daemon "
		    "keeps listening on %s until it is restarted",
		    o->conf->socket, o->control->path);
	control_apply_mode(o);
	TAILQ_FOREACH(c, &o->control->conns, entry)
		conn_set_timeouts(o, c);
	/* a raised max_connections ends a pause at the old limit */
	if (o->control->listener != NULL &&
	    o->control->nconns < o->conf->max_connections)
		evconnlistener_enable(o->control->listener);
}

void
control_stop(struct opsd *o)
{
	struct control	*ctl = o->control;
	struct ctl_conn	*c, *next;

	if (ctl == NULL)
		return;
	if (ctl->listener != NULL) {
		evconnlistener_free(ctl->listener);
		ctl->listener = NULL;
		if (ctl->created)
			unlink(ctl->path);
	}
	if (ctl->ev_refuse != NULL) {
		event_free(ctl->ev_refuse);
		ctl->ev_refuse = NULL;
		close(ctl->refuse_fd);
		ctl->refuse_fd = -1;
	}
	/* Replies already queued are still delivered, then the close. */
	for (c = TAILQ_FIRST(&ctl->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
		else {
			c->draining = 1;
			bufferevent_disable(c->bev, EV_READ);
		}
	}
}

void
control_free(struct opsd *o)
{
	struct control	*ctl = o->control;
	struct ctl_conn	*c;

	if (ctl == NULL)
		return;
	control_stop(o);
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL)
		conn_free(c);
	if (ctl->ev_resume != NULL)
		event_free(ctl->ev_resume);
	if (ctl->ev_reap != NULL)
		event_free(ctl->ev_reap);
	if (ctl->ev_round != NULL)
		event_free(ctl->ev_round);
	if (ctl->ev_serve != NULL)
		event_free(ctl->ev_serve);
	if (ctl->reserve_fd != -1)
		close(ctl->reserve_fd);
	free(ctl->path);
	free(ctl);
	o->control = NULL;
}
