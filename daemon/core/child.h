/*
 * Child processes on the event loop: spawned with posix_spawn in their own
 * process group, stdin from /dev/null, stdout and stderr on non-blocking
 * pipes, a clean environment (PATH and LANG plus what the caller adds, so
 * no secret or systemd variable leaks by accident), reaped through SIGCHLD
 * as a libevent signal event, and killed (SIGTERM, then SIGKILL after a
 * grace period) when their timeout passes.
 */
#ifndef OPSD_CHILD_H
#define OPSD_CHILD_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

struct child;
struct opsd;

struct child_result {
	int		 status;	/* from waitpid */
	int		 timed_out;
	int		 killed;	/* child_kill() or timeout */
	const char	*out;		/* first bytes of stdout (collect mode) */
	size_t		 outlen;
	const char	*err;		/* last bytes of stderr */
	size_t		 errlen;
	uint64_t	 usec;		/* wall time */
};

typedef void (*child_done_cb)(struct child *, const struct child_result *,
    void *arg);
/* Streaming stdout; return non-zero to kill the child (e.g. disk full). */
typedef int (*child_data_cb)(struct child *, const char *, size_t, void *arg);

struct child_spec {
	const char *const	*argv;
	const char *const	*env;		/* added to PATH and LANG */
	uint64_t		 timeout_ms;	/* 0: none */
	size_t			 max_output;	/* stdout bytes kept */
	int			 merge_stderr;	/* stderr into stdout */
	child_data_cb		 on_stdout;	/* stream instead of keeping */
};

/* The daemon's set of children (o->children). */
int	 child_init(struct opsd *);
void	 child_shutdown(struct opsd *);	/* kill all, for exit */
/* Returns the child or NULL with *err = -errno (nothing started). */
struct child *child_spawn(struct opsd *, const struct child_spec *,
	    child_done_cb, void *arg, int *err);
/* Kills the child's process group; done_cb still runs once it is reaped. */
void	 child_kill(struct child *);
/* Kills it and forgets the callback: for owners that go away. */
void	 child_abandon(struct child *);
/*
 * 0 if the child exited with status 0; else 1, with how it ended and the
 * last of its stderr in buf ("exited with status 1: pg_dump: error: ...").
 */
int	 child_failed(const struct child_result *, char *buf, size_t len);
/* "exited with status 3", "killed by signal 9 (timeout)", ... */
void	 child_describe(const struct child_result *, char *buf, size_t len);

#endif
