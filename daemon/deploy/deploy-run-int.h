/*
 * A cutover's state, shared by the files that run it: deploy-run.c (the
 * sequence, failures, the end, starting), deploy-steps.c (the forward
 * steps) and deploy-back.c (the way back, and the recovery after a crash).
 * The overview of the steps is at the top of deploy-run.c.
 */
#ifndef DEPLOY_RUN_INT_H
#define DEPLOY_RUN_INT_H

#include <sys/types.h>

#include <stdint.h>

#include <event2/event.h>

#include "deploy-int.h"
#include "op.h"
#include "rpc.h"

struct child;

enum drun_step {
	DS_PREPARE,
	DS_START,
	DS_GATE,
	DS_MIGRATE,
	DS_RENDER,
	DS_SWITCH,
	DS_TEST,
	DS_RELOAD,
	DS_CONFIRM,
	DS_VERIFY,
	DS_WATCH,
	DS_DRAIN,
	DS_STOP_OLD,
	DS_RESTORE,
	DS_RELOAD_BACK,
	DS_CONFIRM_BACK,
	DS_STOP_NEW,
	DS_NSTEPS
};

/* How a failure is undone (op data "undo", for a restart meanwhile). */
enum undo {
	UNDO_NONE,
	UNDO_PRE,	/* stop the new slot: traffic never moved */
	UNDO_TEST,	/* include back, no reload, stop the new slot */
	UNDO_FULL,	/* include back, reload, confirm, stop the new slot */
};
extern const char *const deploy_undo_names[4];

#define VERIFY_PASSES		3	/* fresh connections in a row */
#define VERIFY_SPACING_MS	50
#define VERIFY_RETRY_MS		50
#define CONFIRM_POLL_MS		20

struct drun {
	struct deploy		*d;
	struct op		*op;
	char			 op_id[DEPLOY_OP_ID_MAX];
	int			 mode;
	int			 step;		/* -1 before the first */
	int			 next;
	int			 slot;		/* the new one */
	int			 old_slot;
	char			 version[DEPLOY_VERSION_MAX + 1];
	char			 old_version[DEPLOY_VERSION_MAX + 1];
	char			 prev_version[DEPLOY_VERSION_MAX + 1];
	int64_t			 old_since;
	int			 old_irreversible;
	int			 force;
	int			 reuse;		/* the slot runs it already */
	int			 recovering;
	int			 rolling_back;
	enum undo		 undo;
	int			 committed;	/* the state names it active */
	int			 irreversible;
	int			 aborted;
	int			 keep_new;	/* nginx unsure: keep both */
	char			*prev;		/* the include before */
	size_t			 prevlen;
	int			 prev_existed;
	int			 have_prev;
	struct child		*child;
	struct deploy_check	*check;
	struct event		*timer;		/* the next step */
	struct event		*tick;		/* checks, polls */
	uint64_t		 gate_from;	/* monotonic usec */
	uint64_t		 deadline;
	unsigned int		 passes;
	unsigned int		 fails;
	unsigned int		 nchecks;
	pid_t			 pid;		/* the slot's process */
	struct deploy_workers	 before;
	struct deploy_check_result kept[DEPLOY_CHECKS_KEPT];
	unsigned int		 nkept;
	char			 error[DEPLOY_ERROR_MAX];
	char			 fail_step[32];
	char			 verify_last[256];
	int64_t			 started;	/* unix */
	uint64_t		 t0;		/* monotonic usec */
	uint64_t		 healthy_at;
	uint64_t		 verified_at;
	int64_t			 switched_at;	/* unix */
	struct rpc_followers	 followers;
};

typedef void (*cmd_done)(struct drun *, int ok, const char *why, int status);

/* deploy-run.c */
struct opsd *deploy_run_opsd(struct drun *r);
const struct deploy_conf *deploy_run_conf(struct drun *r);
const char *deploy_step_name(int step);
void	deploy_timer_in(struct drun *r, struct event **ev, uint64_t ms,
	    event_callback_fn fn);
void	deploy_timer_off(struct event **ev);
void	deploy_notify(struct drun *r, const char *detail);
void	deploy_run_listener(struct op *op, void *arg);
void	deploy_keep_check(struct drun *r,
	    const struct deploy_check_result *res);
void	deploy_describe_check(const struct deploy_check_result *res, char *buf,
	    size_t len);
const char *deploy_want_version(const struct drun *r);
char *deploy_slot_expand(struct drun *r, const char *tmpl, int slot,
	    const char *version);
void	deploy_set_datum(struct drun *r, const char *key, const char *value);
void	deploy_run_cmd(struct drun *r, const char *what, const char *tmpl,
	    int slot, const char *version, uint64_t timeout, cmd_done done);
int	deploy_run_commit(struct drun *r);
int	deploy_next_of(struct drun *r, int step);
void	deploy_run_goto(struct drun *r, int step);
void	deploy_run_next(struct drun *r);
void	deploy_remove_render(struct drun *r);
void	deploy_run_fail(struct drun *r, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	deploy_run_end(struct drun *r, enum op_outcome outcome);
struct drun *deploy_run_new(struct deploy *d, int mode, int slot,
	    const char *version);

/* deploy-steps.c */
void	deploy_step_prepare(struct drun *r);
void	deploy_step_start(struct drun *r);
void	deploy_step_gate(struct drun *r);
void	deploy_step_migrate(struct drun *r);
void	deploy_include_paths(const struct deploy_conf *c, char **dir,
	    char **base, char **tmp);
void	deploy_step_render(struct drun *r);
int	deploy_fsync_dir(const char *dir);
void	deploy_step_switch(struct drun *r);
void	deploy_step_test(struct drun *r);
void	deploy_step_reload(struct drun *r);
void	deploy_step_confirm(struct drun *r);
void	deploy_step_verify(struct drun *r);
void	deploy_step_watch(struct drun *r);
void	deploy_step_drain(struct drun *r);
void	deploy_step_stop_old(struct drun *r);

/* deploy-back.c */
void	deploy_step_restore(struct drun *r);
void	deploy_step_reload_back(struct drun *r);
void	deploy_step_confirm_back(struct drun *r);
void	deploy_step_stop_new(struct drun *r);

#endif
