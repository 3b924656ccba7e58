/*
 * The op journal (see op.h). Each unfinished op is one small JSON file,
 * replaced atomically at every step; finished ops go to one bounded
 * history file, written on op_finish() only. Both are read back at start-up
 * through pure parsers that check every field: the state directory is not
 * trusted, so a file that does not parse is moved aside, never followed.
 *
 * Order on finish: the history is written first (its rename and directory
 * fsync also make the op's outcome durable), then the op file is removed.
 * A crash between the two leaves an op file whose id is in the history;
 * loading removes it instead of recovering the op twice.
 *
 * This file is the journal in memory: begin, step and finish, listeners,
 * loading and recovery at start-up, and what op.list and op.show answer.
 * The parsers, the JSON and the file writes are in op-file.c.
 */
#include <sys/queue.h>
#include <sys/random.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "op.h"
#include "op-int.h"
#include "state.h"
#include "util.h"

const struct evt_type EVT_OP_STEP = {
	"op.step", "4b6284395d9f4c5cabd2a664f23c22ee", LOG_INFO };
const struct evt_type EVT_OP_FINISHED = {
	"op.finished", "1efaf230a3014047aa8d53973c91ef01", LOG_INFO };
const struct evt_type EVT_OP_INTERRUPTED = {
	"op.interrupted", "10fa6c5bb33f490fa1ab64b273430ed5", LOG_WARNING };

/* --- the history in memory -------------------------------------------- */

static void
history_remove(struct op_journal *j, size_t i)
{
	op_free(j->hist[i]);
	memmove(&j->hist[i], &j->hist[i + 1],
	    (j->nhist - i - 1) * sizeof *j->hist);
	j->nhist--;
}

/* Appends op and drops the oldest beyond the bounds. */
static void
history_add(struct op_journal *j, struct op *op)
{
	size_t	i, same = 0;

	j->hist = xreallocarray(j->hist, j->nhist + 1, sizeof *j->hist);
	j->hist[j->nhist++] = op;
	for (i = 0; i < j->nhist; i++) {
		if (strcmp(j->hist[i]->kind_name, op->kind_name) == 0 &&
		    strcmp(j->hist[i]->object, op->object) == 0)
			same++;
	}
	for (i = 0; i < j->nhist && same > OP_HISTORY_PER_OBJECT; ) {
		if (strcmp(j->hist[i]->kind_name, op->kind_name) == 0 &&
		    strcmp(j->hist[i]->object, op->object) == 0) {
			history_remove(j, i);
			same--;
		} else
			i++;
	}
	while (j->nhist > OP_HISTORY_MAX)
		history_remove(j, 0);
}

static struct op *
history_find(struct op_journal *j, const char *id)
{
	size_t	i;

	for (i = 0; i < j->nhist; i++) {
		if (strcmp(j->hist[i]->id, id) == 0)
			return (j->hist[i]);
	}
	return (NULL);
}

/* --- fault injection (test builds) -------------------------------------- */

#ifdef OPSD_FAULT_INJECTION
/*
 * OPSD_FAULT=KIND:STEP exits right after STEP is persisted, before the
 * caller's side effect; KIND:STEP:after when the op leaves STEP (at the
 * next step or the finish, before that is persisted), after its effect.
 */
static void
op_fault(const struct op *op, const char *step, int after)
{
	const char	*f = getenv("OPSD_FAULT"), *p;
	size_t		 kl, sl;

	if (f == NULL || step == NULL || *step == '\0')
		return;
	kl = strlen(op->kind_name);
	sl = strlen(step);
	if (strncmp(f, op->kind_name, kl) != 0 || f[kl] != ':')
		return;
	p = f + kl + 1;
	if (strncmp(p, step, sl) != 0)
		return;
	p += sl;
	if ((after && strcmp(p, ":after") == 0) || (!after && *p == '\0')) {
		log_notice("op.fault", "OPSD_FAULT=%s: exiting in op %s", f,
		    op->id);
		_exit(77);
	}
}
#else
#define op_fault(op, step, after)	do { } while (0)
#endif

/* --- events ------------------------------------------------------------ */

static struct evt *
op_evt(const struct evt_type *type, const struct op *op)
{
	struct evt	*ev;
	char		 room[32];
	size_t		 len;

	ev = evt_new(type);
	evt_add(ev, "op_id", "%s", op->id);
	evt_add(ev, "op_kind", "%s", op->kind_name);
	evt_add(ev, "op_object", "%s", op->object);
	evt_add(ev, "op_step", "%s", op->step_name);
	/*
	 * And under the room's own field: the steps of "backup.run" on app
	 * carry backup=app, so `journalctl OPSD_BACKUP=app` finds them.
	 */
	len = strcspn(op->kind_name, ".");
	if (len > 0 && len < sizeof room && op->kind_name[len] == '.') {
		memcpy(room, op->kind_name, len);
		room[len] = '\0';
		evt_add(ev, room, "%s", op->object);
	}
	return (ev);
}

/* --- the journal ------------------------------------------------------- */

static struct op_journal *
journal(struct opsd *o)
{
	return (o->ops);
}

static void
move_aside(struct op_journal *j, int dfd, const char *name, const char *why)
{
	char	*bad;

	xasprintf(&bad, "%s.bad", name);
	if (renameat(dfd, name, dfd, bad) == -1)
		log_warn("op.load", "%s/%s: %s; cannot move it aside: %s",
		    j->dir, name, why, strerror(errno));
	else
		log_warn("op.load", "%s/%s: %s; moved aside to %s", j->dir,
		    name, why, bad);
	free(bad);
}

static void
history_load(struct op_journal *j, int dfd)
{
	struct op	**v;
	char		 *buf, err[160];
	size_t		  len, n, nbad, i;
	int		  r;

	if ((r = op_read_small(dfd, OP_HISTORY_FILE, OP_HISTORY_FILE_MAX, &buf,
	    &len)) != 0) {
		if (r != -ENOENT)
			move_aside(j, dfd, OP_HISTORY_FILE, strerror(-r));
		return;
	}
	v = op_history_parse(buf, len, &n, &nbad, err, sizeof err);
	free(buf);
	if (v == NULL) {
		move_aside(j, dfd, OP_HISTORY_FILE, err);
		return;
	}
	if (nbad > 0)
		log_warn("op.load", "%s/%s: skipped %zu malformed entries",
		    j->dir, OP_HISTORY_FILE, nbad);
	for (i = 0; i < n; i++) {
		if (history_find(j, v[i]->id) != NULL) {
			op_free(v[i]);
			continue;
		}
		v[i]->seq = ++j->seq;
		j->hist = xreallocarray(j->hist, j->nhist + 1,
		    sizeof *j->hist);
		j->hist[j->nhist++] = v[i];
	}
	free(v);
}

static struct op *
running_find_id(struct op_journal *j, const char *id)
{
	struct op	*op;

	TAILQ_FOREACH(op, &j->running, entry) {
		if (strcmp(op->id, id) == 0)
			return (op);
	}
	return (NULL);
}

static void
op_file_load(struct op_journal *j, int dfd, const char *name)
{
	struct op	*op;
	char		*buf, err[160];
	size_t		 len;
	int		 r;

	if (!op_file_name_ok(name)) {
		move_aside(j, dfd, name, "not an op file name");
		return;
	}
	if ((r = op_read_small(dfd, name, OP_FILE_MAX, &buf, &len)) != 0) {
		if (r != -ENOENT)
			move_aside(j, dfd, name, strerror(-r));
		return;
	}
	op = op_parse(buf, len, err, sizeof err);
	free(buf);
	if (op == NULL) {
		move_aside(j, dfd, name, err);
		return;
	}
	if (strncmp(name + 3, op->id, OP_ID_LEN) != 0 ||
	    running_find_id(j, op->id) != NULL) {
		move_aside(j, dfd, name, "its id is not its file name's");
		op_free(op);
		return;
	}
	if (history_find(j, op->id) != NULL) {
		/* finished, but the removal did not reach the disk */
		log_info("op.load", "%s/%s: op already finished; removing",
		    j->dir, name);
		if (unlinkat(dfd, name, 0) == -1)
			log_warn("op.load", "cannot remove %s/%s: %s", j->dir,
			    name, strerror(errno));
		op_free(op);
		return;
	}
	op->j = j;
	op->recovered = 1;
	op->persisted = 1;
	op->seq = ++j->seq;
	TAILQ_INSERT_TAIL(&j->running, op, entry);
}

int
op_journal_open(struct opsd *o)
{
	struct op_journal	*j;
	struct dirent		*de;
	DIR			*d;
	char			**names = NULL;
	size_t			  n = 0, i, len;
	int			  dfd, r = 0;

	j = xcalloc(1, sizeof *j);
	j->opsd = o;
	j->dir = xstrdup(o->conf->state_dir);
	TAILQ_INIT(&j->running);
	o->ops = j;

	dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1 || (d = fdopendir(dup(dfd))) == NULL) {
		r = -errno;
		log_warn("op.load", "cannot read %s: %s", j->dir,
		    strerror(-r));
		if (dfd != -1)
			close(dfd);
		return (r);
	}
	history_load(j, dfd);
	/* names first: loading renames files in the directory being read */
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (strncmp(de->d_name, "op-", 3) != 0 || len < 8 ||
		    strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		names = xreallocarray(names, n + 1, sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		op_file_load(j, dfd, names[i]);
		free(names[i]);
	}
	free(names);
	close(dfd);
	return (0);
}

void
op_journal_close(struct opsd *o)
{
	struct op_journal	*j = journal(o);
	struct op		*op;
	size_t			 i;

	if (j == NULL)
		return;
	while ((op = TAILQ_FIRST(&j->running)) != NULL) {
		TAILQ_REMOVE(&j->running, op, entry);
		op_free(op);
	}
	for (i = 0; i < j->nhist; i++)
		op_free(j->hist[i]);
	free(j->hist);
	free(j->kinds);
	free(j->dir);
	free(j);
	o->ops = NULL;
}

static const struct op_kind *
kind_find(struct op_journal *j, const char *name)
{
	unsigned int	i;

	for (i = 0; i < j->nkinds; i++) {
		if (strcmp(j->kinds[i]->name, name) == 0)
			return (j->kinds[i]);
	}
	return (NULL);
}

void
op_kind_register(struct opsd *o, const struct op_kind *k)
{
	struct op_journal	*j = journal(o);
	const struct op_kind	*have;
	unsigned int		 i;

	if (j == NULL)
		return;
	if (!op_kind_name_ok(k->name) || k->nsteps == 0)
		fatalx("op kind '%s': bad name or no steps", k->name);
	for (i = 0; i < k->nsteps; i++) {
		if (!op_kind_name_ok(k->steps[i]))
			fatalx("op kind %s: bad step name '%s'", k->name,
			    k->steps[i]);
	}
	if ((have = kind_find(j, k->name)) != NULL) {
		if (have != k)
			fatalx("op kind %s registered twice", k->name);
		return;
	}
	j->kinds = xreallocarray(j->kinds, j->nkinds + 1, sizeof *j->kinds);
	j->kinds[j->nkinds++] = k;
}

void
op_kind_register_all(struct opsd *o, const struct op_kind *const *k)
{
	for (; *k != NULL; k++)
		op_kind_register(o, *k);
}

static unsigned int
step_find(const struct op_kind *k, const char *name)
{
	unsigned int	i;

	for (i = 0; i < k->nsteps; i++) {
		if (strcmp(k->steps[i], name) == 0)
			return (i);
	}
	return (OP_NO_STEP);
}

void
op_recover_all(struct opsd *o)
{
	struct op_journal	*j = journal(o);
	struct op		*op, **v = NULL;
	struct evt		*ev;
	const char		*action, *what;
	size_t			 n = 0, i;

	if (j == NULL)
		return;
	/* a callback may finish its op at once: take the list first */
	TAILQ_FOREACH(op, &j->running, entry) {
		if (!op->recovered || op->dispatched)
			continue;
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n++] = op;
	}
	for (i = 0; i < n; i++) {
		op = v[i];
		op->dispatched = 1;
		op->kind = kind_find(j, op->kind_name);
		if (op->kind != NULL)
			op->step = step_find(op->kind, op->step_name);
		if (op->kind == NULL || op->step == OP_NO_STEP ||
		    (op->kind->resume == NULL && op->kind->rollback == NULL)) {
			action = "abandon";
			what = "leaving it as it is";
		} else if (op->kind->resume != NULL) {
			action = "resume";
			what = "resuming it";
		} else {
			action = "rollback";
			what = "rolling it back";
		}
		ev = op_evt(&EVT_OP_INTERRUPTED, op);
		evt_add(ev, "action", "%s", action);
		evt_emit(ev, "%s %s: op %s was interrupted at step %s; %s",
		    op->kind_name, op->object, op->id, op->step_name, what);
		if (op->kind == NULL)
			op_finish(op, OP_ABANDONED, "no op kind %s in this "
			    "opsd", op->kind_name);
		else if (op->step == OP_NO_STEP)
			op_finish(op, OP_ABANDONED, "%s is not a step of %s "
			    "in this opsd", op->step_name, op->kind_name);
		else if (op->kind->resume != NULL)
			op->kind->resume(o, op);
		else if (op->kind->rollback != NULL)
			op->kind->rollback(o, op);
		else
			op_finish(op, OP_ABANDONED, "%s can neither resume "
			    "nor roll back", op->kind_name);
	}
	free(v);
}

struct op *
op_find(struct opsd *o, const char *kind, const char *object)
{
	struct op_journal	*j = journal(o);
	struct op		*op;

	if (j == NULL)
		return (NULL);
	TAILQ_FOREACH(op, &j->running, entry) {
		if (strcmp(op->kind_name, kind) == 0 &&
		    strcmp(op->object, object) == 0)
			return (op);
	}
	return (NULL);
}

struct op *
op_find_service(struct opsd *o, const char *object)
{
	struct op_journal	*j = journal(o);
	struct op		*op;

	if (j == NULL)
		return (NULL);
	TAILQ_FOREACH(op, &j->running, entry) {
		const struct op_kind *k = op->kind;

		/* an op loaded at start has its kind only once dispatched */
		if (k == NULL)
			k = kind_find(j, op->kind_name);
		if (k != NULL && k->service_lock &&
		    strcmp(op->object, object) == 0)
			return (op);
	}
	return (NULL);
}

static void
new_id(struct op_journal *j, char *id, time_t now)
{
	struct tm	tm;
	uint32_t	rnd;
	char		ts[17];

	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	do {
		if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) !=
		    (ssize_t)sizeof rnd)
			rnd = (uint32_t)(now_usec() ^ ((uint64_t)getpid() <<
			    16) ^ j->seq);
		snprintf(id, OP_ID_LEN + 1, "%s-%08x", ts, rnd);
	} while (running_find_id(j, id) != NULL || history_find(j, id) !=
	    NULL);
}

int
op_begin(struct opsd *o, const struct op_kind *k, const char *object,
    struct op **opp, char **err)
{
	struct op_journal	*j = journal(o);
	struct op		*op;

	*opp = NULL;
	if (j == NULL) {
		xasprintf(err, "no op journal");
		return (-ENODEV);
	}
	if (kind_find(j, k->name) != k) {
		xasprintf(err, "op kind %s is not registered", k->name);
		return (-EINVAL);
	}
	if (!op_object_ok(object)) {
		xasprintf(err, "%s: invalid object name", k->name);
		return (-EINVAL);
	}
	if ((op = op_find(o, k->name, object)) != NULL ||
	    (k->service_lock && (op = op_find_service(o, object)) != NULL)) {
		xasprintf(err, "%s on %s is already in progress (op %s, step "
		    "%s)", op->kind_name, object, op->id, *op->step_name != '\0' ?
		    op->step_name : "starting");
		return (-EBUSY);
	}
	op = op_new();
	op->j = j;
	op->kind = k;
	op->kind_name = xstrdup(k->name);
	op->object = xstrdup(object);
	op->started = time(NULL);
	op->seq = ++j->seq;
	op->dispatched = 1;
	new_id(j, op->id, op->started);
	TAILQ_INSERT_TAIL(&j->running, op, entry);
	*opp = op;
	return (0);
}

int
op_step(struct op *op, unsigned int step)
{
	struct evt	*ev;
	int		 r;

	if (op->kind == NULL || step >= op->kind->nsteps)
		fatalx("op_step: step %u of %s out of range", step,
		    op->kind_name);
	op_fault(op, op->step_name, 1);
	op->step = step;
	free(op->step_name);
	op->step_name = xstrdup(op->kind->steps[step]);
	op_add_step(op, op->step_name, time(NULL));
	if ((r = op_write(op)) != 0)
		return (r);
	ev = op_evt(&EVT_OP_STEP, op);
	evt_emit(ev, "%s %s: %s (op %s)", op->kind_name, op->object,
	    op->step_name, op->id);
	if (op->listener != NULL)
		op->listener(op, op->listener_arg);
	op_fault(op, op->step_name, 0);
	return (0);
}

int
op_set(struct op *op, const char *key, const char *value)
{
	int	r;

	if (!op_key_ok(key) || (value != NULL && !op_value_ok(value)))
		return (-EINVAL);
	if ((r = op_set_datum(op, key, value)) != 0)
		return (r);
	return (op->persisted ? op_write(op) : 0);
}

void
op_finish(struct op *op, enum op_outcome outcome, const char *fmt, ...)
{
	struct op_journal	*j = op->j;
	struct evt		*ev;
	va_list			 ap;
	char			*msg = NULL, *name, *path;

	if (outcome == OP_RUNNING || (unsigned int)outcome >=
	    nitems(op_outcome_names))
		fatalx("op_finish: op %s with outcome %d", op->id, outcome);
	op_fault(op, op->step_name, 1);
	op->state = outcome;
	op->finished = time(NULL);
	if (fmt != NULL) {
		va_start(ap, fmt);
		xvasprintf(&msg, fmt, ap);
		va_end(ap);
		free(op->error);
		op->error = op_clean_text(msg, OP_ERROR_MAX);
		free(msg);
	}
	TAILQ_REMOVE(&j->running, op, entry);

	ev = op_evt(&EVT_OP_FINISHED, op);
	evt_add(ev, "outcome", "%s", op_outcome_name(outcome));
	if (op->error != NULL)
		evt_add(ev, "error", "%s", op->error);
	evt_add(ev, "recovered", "%s", op->recovered ? "true" : "false");
	if (outcome == OP_FAILED || outcome == OP_ABANDONED)
		evt_set_priority(ev, LOG_WARNING);
	else if (outcome == OP_ROLLED_BACK)
		evt_set_priority(ev, LOG_NOTICE);
	evt_emit(ev, "%s %s: %s%s%s (op %s%s)", op->kind_name, op->object,
	    op_outcome_name(outcome), op->error != NULL ? ": " : "",
	    op->error != NULL ? op->error : "", op->id,
	    op->recovered ? ", after a restart" : "");
	if (op->listener != NULL)
		op->listener(op, op->listener_arg);
	op->listener = NULL;

	/* history first: see the top of this file */
	history_add(j, op);
	op_history_write(j);
	if (op->persisted) {
		op->persisted = 0;
		name = op_file_name(op);
		xasprintf(&path, "%s/%s", j->dir, name);
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("op.finish", "cannot remove %s: %s", path,
			    strerror(errno));
		free(path);
		free(name);
	}
}

/* --- accessors --------------------------------------------------------- */

const char *
op_id(const struct op *op)
{
	return (op->id);
}

const char *
op_object(const struct op *op)
{
	return (op->object);
}

const char *
op_kind_name(const struct op *op)
{
	return (op->kind_name);
}

unsigned int
op_step_index(const struct op *op)
{
	return (op->step);
}

const char *
op_step_name(const struct op *op)
{
	return (op->step_name);
}

const char *
op_get(const struct op *op, const char *key)
{
	unsigned int	i;

	for (i = 0; i < op->ndata; i++) {
		if (strcmp(op->data[i].key, key) == 0)
			return (op->data[i].value);
	}
	return (NULL);
}

enum op_outcome
op_state(const struct op *op)
{
	return (op->state);
}

const char *
op_error(const struct op *op)
{
	return (op->error);
}

int
op_recovered(const struct op *op)
{
	return (op->recovered);
}

void
op_listen(struct op *op, op_listener fn, void *arg)
{
	op->listener = fn;
	op->listener_arg = arg;
}

/* --- op.list, op.show -------------------------------------------------- */

static int
newest_first(const void *a, const void *b)
{
	const struct op	*x = *(const struct op *const *)a;
	const struct op	*y = *(const struct op *const *)b;

	if (x->started != y->started)
		return (x->started > y->started ? -1 : 1);
	return (x->seq > y->seq ? -1 : x->seq < y->seq ? 1 : 0);
}

json_t *
op_journal_list(struct opsd *o, const char *kind, const char *object,
    size_t limit)
{
	struct op_journal	*j = journal(o);
	struct op		*op, **v;
	json_t			*a;
	size_t			 n = 0, i;

	a = json_array();
	if (j == NULL)
		return (json_pack("{s:o}", "ops", a));
	v = xcalloc(j->nhist + 1, sizeof *v);
	for (i = 0; i < j->nhist; i++)
		v[n++] = j->hist[i];
	TAILQ_FOREACH(op, &j->running, entry) {
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n++] = op;
	}
	qsort(v, n, sizeof *v, newest_first);
	for (i = 0; i < n && json_array_size(a) < limit; i++) {
		if ((kind != NULL && strcmp(v[i]->kind_name, kind) != 0) ||
		    (object != NULL && strcmp(v[i]->object, object) != 0))
			continue;
		json_array_append_new(a, op_json(v[i], 0));
	}
	free(v);
	return (json_pack("{s:o}", "ops", a));
}

json_t *
op_journal_show(struct opsd *o, const char *id)
{
	struct op_journal	*j = journal(o);
	struct op		*op;

	if (j == NULL || !op_id_ok(id))
		return (NULL);
	if ((op = running_find_id(j, id)) == NULL &&
	    (op = history_find(j, id)) == NULL)
		return (NULL);
	return (op_json(op, 1));
}
