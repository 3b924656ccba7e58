/*
 * A child is done when it has been reaped and both pipes are at EOF (or
 * closed after the kill), whichever comes last, so its output is complete
 * when the callback runs.
 */
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "child.h"
#include "daemon.h"
#include "evt.h"
#include "util.h"

#define KILL_GRACE_MS	2000
#define ERR_TAIL	4096

extern char **environ;

struct child {
	pid_t			 pid;
	int			 reaped;
	int			 status;
	int			 timed_out;
	int			 killed;
	int			 out_fd;
	int			 err_fd;
	struct event		*ev_out;
	struct event		*ev_err;
	struct event		*ev_timer;
	int			 timer_stage;	/* 0 timeout, 1 grace */
	char			*out;
	size_t			 outlen;
	size_t			 outmax;
	char			 errtail[ERR_TAIL];
	size_t			 errlen;
	child_done_cb		 done;
	child_data_cb		 on_stdout;
	void			*arg;
	uint64_t		 start;
	LIST_ENTRY(child)	 entry;
};

/* The daemon's children (o->children). */
struct child_set {
	struct event_base	*base;
	struct event		*ev_sigchld;
	LIST_HEAD(, child)	 children;
};

static void
child_free(struct child *c)
{
	LIST_REMOVE(c, entry);
	if (c->ev_out != NULL)
		event_free(c->ev_out);
	if (c->ev_err != NULL)
		event_free(c->ev_err);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	if (c->out_fd != -1)
		close(c->out_fd);
	if (c->err_fd != -1)
		close(c->err_fd);
	free(c->out);
	free(c);
}

static void
child_maybe_done(struct child *c)
{
	struct child_result	r;

	if (!c->reaped || c->out_fd != -1 || c->err_fd != -1)
		return;
	memset(&r, 0, sizeof r);
	r.status = c->status;
	r.timed_out = c->timed_out;
	r.killed = c->killed;
	r.out = c->out != NULL ? c->out : "";
	r.outlen = c->outlen;
	r.err = c->errtail;
	r.errlen = c->errlen;
	r.usec = now_usec() - c->start;
	if (c->done != NULL)
		c->done(c, &r, c->arg);
	child_free(c);
}

static void
close_pipe(struct child *c, int *fd, struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

static void
child_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child	*c = arg;
	char		 buf[65536];
	ssize_t		 n;
	size_t		 keep, room;
	int		 is_out = fd == c->out_fd;

	(void)what;
	n = read(fd, buf, sizeof buf);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (is_out)
			close_pipe(c, &c->out_fd, &c->ev_out);
		else
			close_pipe(c, &c->err_fd, &c->ev_err);
		child_maybe_done(c);
		return;
	}
	if (!is_out) {
		/* keep the tail: the last lines of stderr say what failed */
		keep = (size_t)n;
		if (keep >= ERR_TAIL) {
			memcpy(c->errtail, buf + keep - ERR_TAIL, ERR_TAIL);
			c->errlen = ERR_TAIL;
		} else {
			if (c->errlen + keep > ERR_TAIL) {
				size_t drop = c->errlen + keep - ERR_TAIL;
				memmove(c->errtail, c->errtail + drop,
				    c->errlen - drop);
				c->errlen -= drop;
			}
			memcpy(c->errtail + c->errlen, buf, keep);
			c->errlen += keep;
		}
		return;
	}
	if (c->on_stdout != NULL) {
		if (!c->killed && c->on_stdout(c, buf, (size_t)n, c->arg) != 0)
			child_kill(c);
		return;
	}
	room = c->outmax - c->outlen;
	keep = (size_t)n < room ? (size_t)n : room;
	if (keep > 0) {
		memcpy(c->out + c->outlen, buf, keep);
		c->outlen += keep;
		c->out[c->outlen] = '\0';
	}
}

static void
child_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child	*c = arg;
	struct timeval	 tv = { KILL_GRACE_MS / 1000, 0 };

	(void)fd;
	(void)what;
	if (c->reaped) {
		/* exited but a grandchild holds the pipes: stop waiting */
		close_pipe(c, &c->out_fd, &c->ev_out);
		close_pipe(c, &c->err_fd, &c->ev_err);
		kill(-c->pid, SIGKILL);
		child_maybe_done(c);
		return;
	}
	if (c->timer_stage == 0) {
		c->timed_out = 1;
		child_kill(c);
		return;
	}
	kill(-c->pid, SIGKILL);
	evtimer_add(c->ev_timer, &tv);
}

void
child_kill(struct child *c)
{
	struct timeval	tv = { KILL_GRACE_MS / 1000, 0 };

	if (c->killed)
		return;
	c->killed = 1;
	if (!c->reaped)
		kill(-c->pid, SIGTERM);
	c->timer_stage = 1;
	evtimer_add(c->ev_timer, &tv);
}

void
child_abandon(struct child *c)
{
	c->done = NULL;
	c->on_stdout = NULL;
	child_kill(c);
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct child_set	*cs = arg;
	struct child	*c, *next;
	struct timeval	 tv = { 0, 200 * 1000 };
	pid_t		 pid;
	int		 status;

	(void)sig;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (c = LIST_FIRST(&cs->children); c != NULL; c = next) {
			next = LIST_NEXT(c, entry);
			if (c->pid != pid)
				continue;
			c->reaped = 1;
			c->status = status;
			/*
			 * Output still in the pipes is read first; if a
			 * grandchild keeps them open, stop after a moment.
			 */
			c->timer_stage = 2;
			evtimer_add(c->ev_timer, &tv);
			child_maybe_done(c);
			break;
		}
	}
}

int
child_init(struct opsd *o)
{
	struct child_set	*cs;

	cs = o->children = xcalloc(1, sizeof *cs);
	cs->base = o->base;
	LIST_INIT(&cs->children);
	/* SIGCHLD is the process's: one set of children per process */
	cs->ev_sigchld = evsignal_new(o->base, SIGCHLD, sigchld_cb, cs);
	if (cs->ev_sigchld == NULL || evsignal_add(cs->ev_sigchld, NULL) != 0)
		return (-1);
	return (0);
}

void
child_shutdown(struct opsd *o)
{
	struct child_set	*cs = o->children;
	struct child		*c;

	if (cs == NULL)
		return;
	while ((c = LIST_FIRST(&cs->children)) != NULL) {
		kill(-c->pid, SIGKILL);
		if (!c->reaped)
			waitpid(c->pid, NULL, 0);
		c->done = NULL;
		child_free(c);
	}
	if (cs->ev_sigchld != NULL)
		event_free(cs->ev_sigchld);
	free(cs);
	o->children = NULL;
}

struct child *
child_spawn(struct opsd *o, const struct child_spec *spec, child_done_cb done,
    void *arg, int *err)
{
	struct child_set		*cs = o->children;
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	struct child			*c;
	struct timeval			 tv;
	sigset_t			 none, deflt;
	char				**envp;
	int				 outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	size_t				 n = 0, i;
	int				 r;

	/*
	 * Only opsd's read ends are non-blocking: a child whose stdout is
	 * non-blocking gets EAGAIN when opsd falls behind, and pg_dump
	 * treats that as a write error.
	 */
	if (pipe2(outp, O_CLOEXEC) == -1 ||
	    (!spec->merge_stderr && pipe2(errp, O_CLOEXEC) == -1)) {
		*err = -errno;
		if (outp[0] != -1) {
			close(outp[0]);
			close(outp[1]);
		}
		return (NULL);
	}
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	if (errp[0] != -1)
		fcntl(errp[0], F_SETFL, O_NONBLOCK);
	for (i = 0; spec->env != NULL && spec->env[i] != NULL; i++)
		n++;
	envp = xcalloc(n + 3, sizeof *envp);
	envp[0] = (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
	    "/usr/bin:/sbin:/bin";
	envp[1] = (char *)"LANG=C.UTF-8";
	for (i = 0; i < n; i++)
		envp[i + 2] = (char *)spec->env[i];

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, spec->merge_stderr ? outp[1] :
	    errp[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&deflt);
	/* SIGPIPE is ignored in opsd and ignoring survives exec: undo it */
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGCHLD);
	sigaddset(&deflt, SIGHUP);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGINT);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

	c = xcalloc(1, sizeof *c);
	c->out_fd = outp[0];
	c->err_fd = errp[0];
	r = posix_spawnp(&c->pid, spec->argv[0], &fa, &attr,
	    (char *const *)spec->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	close(outp[1]);
	if (errp[1] != -1)
		close(errp[1]);
	if (r != 0) {
		*err = -r;
		close(outp[0]);
		if (errp[0] != -1)
			close(errp[0]);
		free(c);
		return (NULL);
	}
	c->done = done;
	c->arg = arg;
	c->on_stdout = spec->on_stdout;
	c->start = now_usec();
	c->outmax = spec->max_output;
	c->out = xmalloc(c->outmax + 1);
	c->out[0] = '\0';
	c->ev_out = event_new(cs->base, c->out_fd, EV_READ | EV_PERSIST,
	    child_read_cb, c);
	event_add(c->ev_out, NULL);
	if (c->err_fd != -1) {
		c->ev_err = event_new(cs->base, c->err_fd, EV_READ | EV_PERSIST,
		    child_read_cb, c);
		event_add(c->ev_err, NULL);
	}
	c->ev_timer = evtimer_new(cs->base, child_timer_cb, c);
	if (spec->timeout_ms > 0) {
		tv.tv_sec = (time_t)(spec->timeout_ms / 1000);
		tv.tv_usec = (suseconds_t)(spec->timeout_ms % 1000) * 1000;
		evtimer_add(c->ev_timer, &tv);
	}
	LIST_INSERT_HEAD(&cs->children, c, entry);
	return (c);
}

void
child_describe(const struct child_result *r, char *buf, size_t len)
{
	if (WIFEXITED(r->status))
		snprintf(buf, len, "exited with status %d%s",
		    WEXITSTATUS(r->status), r->timed_out ?
		    " after it was stopped at its timeout" : "");
	else if (WIFSIGNALED(r->status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(r->status), strsignal(WTERMSIG(r->status)),
		    r->timed_out ? " after its timeout" : "");
	else
		snprintf(buf, len, "ended with wait status %d", r->status);
}

int
child_failed(const struct child_result *r, char *buf, size_t len)
{
	char	how[128];
	size_t	n;
	int	off;

	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0 &&
	    !r->timed_out)
		return (0);
	child_describe(r, how, sizeof how);
	off = snprintf(buf, len, "%s", how);
	/* the end of stderr says why, without the trailing newlines */
	n = r->errlen;
	while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
		n--;
	if (n > 0 && off > 0 && (size_t)off + 3 < len) {
		size_t room = len - (size_t)off - 3;
		size_t take = n < room ? n : room;

		snprintf(buf + off, len - (size_t)off, ": %.*s", (int)take,
		    r->err + n - take);
	}
	return (1);
}
