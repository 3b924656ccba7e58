/*
 * A rotation's state, shared by the files that run it: secret-rotate.c
 * (the forward steps, the end, starting), secret-rotate-db.c (ALTER ROLE
 * on the admin session) and secret-rotate-back.c (the rollback, and the
 * recovery after a crash). The steps are described in secret-rotate.c.
 */
#ifndef SECRET_ROT_INT_H
#define SECRET_ROT_INT_H

#include <stdint.h>

#include <event2/event.h>

#include "op.h"
#include "rpc.h"
#include "secret-int.h"

struct alter;
struct child;
struct pgq;

enum rot_step {
	ROT_GENERATE,
	ROT_SET_PASSWORD,
	ROT_TEST_LOGIN,
	ROT_WRITE_FILES,
	ROT_ON_ROTATE,
	ROT_VERIFY,
	ROT_PROMOTE,
	ROT_NSTEPS
};

extern const char *const secret_rot_step_names[ROT_NSTEPS];

#define RECOVER_RETRY_SEC	10

struct rot {
	struct secret		*s;
	struct op		*op;
	char			 op_id[64];
	int			 step;		/* -1 before the first */
	int			 next;		/* to take */
	int			 manual;
	int			 recovering;	/* after a crash */
	int			 db_retry;	/* the undo waits for the db */
	int			 rolling_back;
	int			 initial;	/* no version yet */
	int64_t			 version;	/* the new one */
	char			 pending[SECRET_VALUE_MAX];
	char			 current[SECRET_VALUE_MAX];
	int			 have_current;
	char			*prev[SECRET_KEEP_MAX
	    + 1];	/* newest first */
	unsigned int		 nprev;
	char			 target[SECRET_ROLE_MAX + 1];
	struct pgq		*q;
	struct alter		*alter;		/* an ALTER ROLE under way */
	struct
	    pgq		*lq;		/* the login with the new value */
	struct child		*child;
	unsigned int		 cmd;
	struct event		*timer;
	int64_t			 verify_from;	/* wall usec */
	int64_t			 verify_begin;	/* wall usec, the step began */
	uint64_t		 verify_deadline;	/* monotonic usec */
	int			 files_written;
	int			 db_changed;
	int			 alter_unknown;	/* may yet take effect */
	int			 on_rotate_ran;
	int			 changed;	/* anything outside the state */
	char			 error[SECRET_ERROR_MAX];
	int64_t			 started;
	struct rpc_followers	 followers;
};

typedef void (*alter_done)(struct rot *, const char *error);

/* secret-rotate.c */
struct opsd *secret_rot_opsd(struct rot *r);
int	secret_rot_is_pg(const struct rot *r);
int	secret_rot_load_values(struct rot *r);
const char *secret_other_role(const struct secret *s);
void	secret_rot_listener(struct op *op, void *arg);
void	secret_rot_timer_in(struct rot *r, uint64_t ms, event_callback_fn fn);
void	secret_rot_close_session(struct rot *r);
void	secret_rot_command(struct rot *r, int back);
void	secret_prune_versions(struct secret *s);
void	secret_rot_next(struct rot *r);
void	secret_rot_end(struct rot *r, enum op_outcome outcome);
struct rot *secret_rot_new(struct secret *s);

/* secret-rotate-db.c */
void	secret_alter_drop(struct alter *a);
void	secret_rot_alter(struct rot *r, const char *role, const char *password,
	    int lock, alter_done done);

/* secret-rotate-back.c */
void	secret_rb_next(struct rot *r);
void	secret_rot_fail(struct rot *r, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	secret_rotate_resume(struct opsd *o, struct op *op);

#endif
