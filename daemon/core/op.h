/*
 * The op journal: one record for every change to the outside world made
 * in several steps (a backup run, a rotation, a cutover, a renewal).
 *
 * A kind (struct op_kind) names its steps. Its code calls op_begin(), then
 * op_step() before each step's side effect: the new step is on disk (an
 * atomic state file) before anything it covers happens, then it is told as
 * an op.step event. op_finish() records the outcome in a bounded history
 * and removes the unfinished-op file. At start-up op_recover_all() hands
 * every op that a previous opsd left unfinished to its kind's resume or
 * rollback callback; an op of a kind nobody registered is abandoned.
 *
 * What an op persists is a hint, not a trust anchor: the state directory
 * may hold anything. Details saved with op_set() are small (ids, names the
 * kind chose), and on recovery a kind derives every path and every name
 * it acts on again from its configuration and op_id()/op_object(); it
 * never unlinks, opens or runs anything it read from op_get().
 *
 * Files in state_dir (formats in opsd(8), FILES):
 *	op-<id>.json		one per unfinished op, rewritten at each step
 *	ops-history.json	the finished ops, bounded
 */
#ifndef OPSD_OP_H
#define OPSD_OP_H

#include <stddef.h>

#include <jansson.h>

#include "evt.h"

struct opsd;
struct op;
struct op_journal;

/* Documented in docs/opsd.catalog. */
extern const struct evt_type EVT_OP_STEP;
extern const struct evt_type EVT_OP_FINISHED;
extern const struct evt_type EVT_OP_INTERRUPTED;

enum op_outcome {
	OP_RUNNING,		/* not finished yet: never passed to op_finish */
	OP_OK,
	OP_FAILED,
	OP_ROLLED_BACK,
	OP_ABANDONED,		/* left alone: nothing was resumed or undone */
};

/* op_step_index() before the first op_step() */
#define OP_NO_STEP	((unsigned int)-1)

/* Bounds of what an op carries; longer values are refused. */
#define OP_NAME_MAX	128	/* kind, object, step names, op_set values */
#define OP_KEY_MAX	32	/* op_set keys: [a-z0-9_] */
#define OP_NDATA_MAX	16	/* op_set keys per op */

/* History kept: per kind and object, and over all. */
#define OP_HISTORY_PER_OBJECT	20
#define OP_HISTORY_MAX		500

struct op_kind {
	const char		*name;		/* "backup.run": [a-z0-9_.-] */
	const char *const	*steps;		/* step names, in order */
	unsigned int		 nsteps;
	/*
	 * For an op found unfinished at start-up, at op_step_index(op).
	 * resume is called if set (it may undo instead, by the step it
	 * reads); rollback only when there is no resume. With neither the
	 * op is abandoned. The callback owns op and must op_finish() it,
	 * now or later (asynchronously, from the loop).
	 */
	void			(*resume)(struct opsd *, struct op *);
	void			(*rollback)(struct opsd *, struct op *);
	/*
	 * Set for kinds that act on a running service (a cutover, a
	 * rotation, a probe's restart): such ops on one object exclude
	 * each other whatever their kinds, so that a restart never fights
	 * a deploy of the same service. Other kinds lock only themselves.
	 */
	int			 service_lock;
};

/*
 * Called after each op_step() (persisted, event emitted) and once from
 * op_finish() (op_state() is then the outcome; op is freed right after).
 * A run uses it to forward steps to clients following it.
 */
typedef void (*op_listener)(struct op *, void *arg);

/*
 * The journal of o->conf->state_dir at start-up (a reload does not move
 * it): loads the unfinished ops and the history, moves malformed files
 * aside as NAME.bad. Sets o->ops; 0, or -errno if the directory could not
 * be read (o->ops is then an empty journal, and opsd runs on).
 */
int	 op_journal_open(struct opsd *);
/* Frees the journal; unfinished ops stay on disk for the next start. */
void	 op_journal_close(struct opsd *);

/* Kinds must be registered before op_recover_all() and op_begin(). */
void	 op_kind_register(struct opsd *, const struct op_kind *);
void	 op_kind_register_all(struct opsd *, const struct op_kind *const *);

/* Once, after the subsystems are configured. */
void	 op_recover_all(struct opsd *);

/*
 * Starts an op of kind on object (a configured name: letters, digits,
 * '-', '_', '.'). Nothing is written before the first op_step(), so do no
 * side effect before it. 0 with *opp set; -EBUSY when an op of this kind
 * (or, for a service_lock kind, of any such kind) on this object is
 * unfinished, -EINVAL for a bad object or a kind not
 * registered, -ENODEV without a journal; *err (free() it) says why.
 */
int	 op_begin(struct opsd *, const struct op_kind *, const char *object,
	    struct op **opp, char **err);
/*
 * Makes step (an index into kind->steps) the current one: on disk, then an
 * op.step event, then the listener. 0, or -errno if it could not be
 * written: then the caller must not do the step's side effect, and should
 * op_finish() the op as failed.
 */
int	 op_step(struct op *, unsigned int step);
/*
 * Sets a small detail persisted with the op (at once if a step was taken,
 * else with the first step). Not a path to trust later: see above.
 * value NULL removes key. 0, -EINVAL (bad key, value too long, too many)
 * or -errno of the write.
 */
int	 op_set(struct op *, const char *key, const char *value);
/*
 * Records the outcome (not OP_RUNNING) and an error message for anything
 * but OP_OK (fmt may be NULL), appends to the history, removes the
 * unfinished-op file, emits op.finished. op is gone afterwards.
 */
void	 op_finish(struct op *, enum op_outcome, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

const char	*op_id(const struct op *);
const char	*op_object(const struct op *);
const char	*op_kind_name(const struct op *);
unsigned int	 op_step_index(const struct op *);	/* or OP_NO_STEP */
const char	*op_step_name(const struct op *);	/* "" before a step */
const char	*op_get(const struct op *, const char *key);	/* or NULL */
enum op_outcome	 op_state(const struct op *);
const char	*op_error(const struct op *);		/* or NULL */
int		 op_recovered(const struct op *);
void		 op_listen(struct op *, op_listener, void *arg);

const char	*op_outcome_name(enum op_outcome);	/* "rolled_back" */

/* The unfinished op of kind on object, or NULL. */
struct op	*op_find(struct opsd *, const char *kind, const char *object);
/* An unfinished op of a service_lock kind on object, or NULL. */
struct op	*op_find_service(struct opsd *, const char *object);

/*
 * For op.list and op.show (docs/protocol.md): {"ops": [...]} newest first,
 * filtered by kind and object when not NULL; and one op with its steps, or
 * NULL if there is no op of that id. New references.
 */
json_t	*op_journal_list(struct opsd *, const char *kind, const char *object,
	    size_t limit);
json_t	*op_journal_show(struct opsd *, const char *id);

/*
 * The parsers of the files, pure (bytes in, op or error out) for the tests
 * and the fuzz target: every field is checked against its pattern and its
 * bound; a file name is checked too. NULL with a reason in err.
 */
int	 op_file_name_ok(const char *name);	/* "op-<id>.json" */
int	 op_id_ok(const char *id);
struct op *op_parse(const char *buf, size_t len, char *err, size_t errlen);
/* The history: entries that do not parse are skipped and counted. */
struct op **op_history_parse(const char *buf, size_t len, size_t *n,
	    size_t *nbad, char *err, size_t errlen);
void	 op_free(struct op *);		/* only ops from the parsers */

#endif
