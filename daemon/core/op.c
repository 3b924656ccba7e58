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
 */
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

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
#include "state.h"
#include "util.h"

const struct evt_type EVT_OP_STEP = {
	"op.step", "4b6284395d9f4c5cabd2a664f23c22ee", LOG_INFO };
const struct evt_type EVT_OP_FINISHED = {
	"op.finished", "1efaf230a3014047aa8d53973c91ef01", LOG_INFO };
const struct evt_type EVT_OP_INTERRUPTED = {
	"op.interrupted", "10fa6c5bb33f490fa1ab64b273430ed5", LOG_WARNING };

#define OP_FORMAT		1
#define OP_ID_LEN		25	/* 20261201T123456Z-3f2a9c1b */
#define OP_TIME_LEN		20	/* 2026-12-01T12:34:56Z */
#define OP_NSTEPS_MAX		64	/* steps kept per op: the last ones */
#define OP_ERROR_MAX		1024
#define OP_FILE_MAX		(64 * 1024)
#define OP_HISTORY_FILE_MAX	(8 * 1024 * 1024)
#define OP_HISTORY_FILE		"ops-history.json"

struct op_stepat {
	char	*name;
	time_t	 at;
};

struct op_datum {
	char	*key;
	char	*value;
};

struct op {
	struct op_journal	*j;		/* NULL: from a parser */
	const struct op_kind	*kind;		/* NULL: none registered */
	char			 id[OP_ID_LEN + 1];
	char			*kind_name;
	char			*object;
	unsigned int		 step;		/* into kind->steps */
	char			*step_name;	/* "" before the first */
	time_t			 started;
	time_t			 finished;
	enum op_outcome		 state;
	char			*error;
	int			 recovered;	/* left by a previous opsd */
	int			 dispatched;	/* handed to its kind */
	int			 persisted;	/* op-<id>.json written */
	uint64_t		 seq;		/* for a stable order */
	struct op_stepat	*steps;
	unsigned int		 nsteps;
	struct op_datum		 data[OP_NDATA_MAX];
	unsigned int		 ndata;
	op_listener		 listener;
	void			*listener_arg;
	TAILQ_ENTRY(op)		 entry;
};
TAILQ_HEAD(op_list, op);

struct op_journal {
	struct opsd		 *opsd;
	char			 *dir;
	const struct op_kind	**kinds;
	unsigned int		  nkinds;
	struct op_list		  running;
	struct op		**hist;		/* oldest first */
	size_t			  nhist;
	uint64_t		  seq;
};

static const char *const outcome_names[] = {
	"running", "ok", "failed", "rolled_back", "abandoned"
};

/* --- names, times and text -------------------------------------------- */

static int
charset_ok(const char *s, size_t max, const char *extra, int upper)
{
	size_t	n = 0;

	for (; *s != '\0'; s++, n++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    (upper && *s >= 'A' && *s <= 'Z') ||
		    strchr(extra, *s) != NULL)
			continue;
		return (0);
	}
	return (n > 0 && n <= max);
}

static int
kind_name_ok(const char *s)
{
	return (charset_ok(s, OP_NAME_MAX, "_.-", 0));
}

/* The config's name rule; never a path, but keep '/' out all the same. */
static int
object_ok(const char *s)
{
	return (charset_ok(s, OP_NAME_MAX, "_.-", 1));
}

static int
key_ok(const char *s)
{
	return (charset_ok(s, OP_KEY_MAX, "_", 0));
}

static char	*clean_text(const char *, size_t);

/* Printable UTF-8, at most OP_NAME_MAX bytes: details end up in logs. */
static int
value_ok(const char *s)
{
	char	*c;
	int	 ok;

	if (strlen(s) > OP_NAME_MAX)
		return (0);
	c = clean_text(s, OP_NAME_MAX);
	ok = strcmp(c, s) == 0;
	free(c);
	return (ok);
}

static int
digits(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (0);
	}
	return (1);
}

static int
num(const char *s, size_t n)
{
	int	v = 0;
	size_t	i;

	for (i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return (v);
}

int
op_id_ok(const char *id)
{
	struct tm	tm;
	time_t		t;
	size_t		i;

	if (strlen(id) != OP_ID_LEN || !digits(id, 8) || id[8] != 'T' ||
	    !digits(id + 9, 6) || id[15] != 'Z' || id[16] != '-')
		return (0);
	for (i = 17; i < OP_ID_LEN; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return (0);
	}
	memset(&tm, 0, sizeof tm);
	tm.tm_year = num(id, 4) - 1900;
	tm.tm_mon = num(id + 4, 2) - 1;
	tm.tm_mday = num(id + 6, 2);
	tm.tm_hour = num(id + 9, 2);
	tm.tm_min = num(id + 11, 2);
	tm.tm_sec = num(id + 13, 2);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return (0);
	t = timegm(&tm);
	return (t != (time_t)-1);
}

int
op_file_name_ok(const char *name)
{
	char	id[OP_ID_LEN + 1];
	size_t	n = strlen(name);

	if (n != 3 + OP_ID_LEN + 5 || strncmp(name, "op-", 3) != 0 ||
	    strcmp(name + 3 + OP_ID_LEN, ".json") != 0)
		return (0);
	memcpy(id, name + 3, OP_ID_LEN);
	id[OP_ID_LEN] = '\0';
	return (op_id_ok(id));
}

static void
fmt_time(time_t t, char *buf, size_t len)
{
	struct tm	tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Exactly YYYY-MM-DDTHH:MM:SSZ and a real date; -1 if not. */
static int
parse_time(const char *s, time_t *t)
{
	struct tm	tm;
	char		back[OP_TIME_LEN + 1];

	if (strlen(s) != OP_TIME_LEN || !digits(s, 4) || s[4] != '-' ||
	    !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
	    s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
	    !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2) ||
	    s[19] != 'Z')
		return (-1);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = num(s, 4) - 1900;
	tm.tm_mon = num(s + 5, 2) - 1;
	tm.tm_mday = num(s + 8, 2);
	tm.tm_hour = num(s + 11, 2);
	tm.tm_min = num(s + 14, 2);
	tm.tm_sec = num(s + 17, 2);
	if ((*t = timegm(&tm)) == (time_t)-1)
		return (-1);
	/* 2026-02-30 normalizes to March: not a date we wrote */
	fmt_time(*t, back, sizeof back);
	return (strcmp(back, s) == 0 ? 0 : -1);
}

/*
 * Error text comes from anywhere (a server's message, a path): keep it
 * to max bytes of valid UTF-8 without control characters, so that the
 * history always encodes.
 */
static char *
clean_text(const char *s, size_t max)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out, *q;
	size_t			 n, i;

	out = q = xmalloc(max + 1);
	while (*p != '\0') {
		n = 0;
		if (*p >= 0x20 && *p < 0x7f)
			n = 1;
		/* C1 controls (U+0080..U+009F) are left out too */
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			n = 0;
		else if (*p >= 0xc2 && *p <= 0xdf)
			n = 2;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 3;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 4;
		for (i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80) {
				n = 0;
				break;
			}
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 3 && p[0] == 0xe0 && p[1] < 0xa0) ||
		    (n == 3 && p[0] == 0xed && p[1] > 0x9f) ||
		    (n == 4 && p[0] == 0xf0 && p[1] < 0x90) ||
		    (n == 4 && p[0] == 0xf4 && p[1] > 0x8f))
			n = 0;
		if ((size_t)(q - out) + (n == 0 ? 1 : n) > max)
			break;
		if (n == 0) {
			*q++ = *p == '\t' || *p == '\n' ? ' ' : '?';
			p++;
			continue;
		}
		memcpy(q, p, n);
		q += n;
		p += n;
	}
	*q = '\0';
	return (out);
}

const char *
op_outcome_name(enum op_outcome o)
{
	if ((unsigned int)o >= nitems(outcome_names))
		return ("?");
	return (outcome_names[o]);
}

static int
outcome_parse(const char *s, enum op_outcome *o)
{
	unsigned int	i;

	for (i = 0; i < nitems(outcome_names); i++) {
		if (strcmp(s, outcome_names[i]) == 0) {
			*o = (enum op_outcome)i;
			return (0);
		}
	}
	return (-1);
}

/* --- ops in memory ----------------------------------------------------- */

static struct op *
op_new(void)
{
	struct op	*op;

	op = xcalloc(1, sizeof *op);
	op->step = OP_NO_STEP;
	op->step_name = xstrdup("");
	op->state = OP_RUNNING;
	return (op);
}

void
op_free(struct op *op)
{
	unsigned int	i;

	if (op == NULL)
		return;
	for (i = 0; i < op->nsteps; i++)
		free(op->steps[i].name);
	free(op->steps);
	for (i = 0; i < op->ndata; i++) {
		free(op->data[i].key);
		free(op->data[i].value);
	}
	free(op->kind_name);
	free(op->object);
	free(op->step_name);
	free(op->error);
	free(op);
}

static void
op_add_step(struct op *op, const char *name, time_t at)
{
	if (op->nsteps == OP_NSTEPS_MAX) {
		/* a step repeated by retries: keep the latest ones */
		free(op->steps[0].name);
		memmove(&op->steps[0], &op->steps[1],
		    (op->nsteps - 1) * sizeof *op->steps);
		op->nsteps--;
	}
	op->steps = xreallocarray(op->steps, op->nsteps + 1,
	    sizeof *op->steps);
	op->steps[op->nsteps].name = xstrdup(name);
	op->steps[op->nsteps].at = at;
	op->nsteps++;
}

static int
op_set_datum(struct op *op, const char *key, const char *value)
{
	unsigned int	i;

	for (i = 0; i < op->ndata; i++) {
		if (strcmp(op->data[i].key, key) != 0)
			continue;
		free(op->data[i].value);
		if (value == NULL) {
			free(op->data[i].key);
			op->data[i] = op->data[--op->ndata];
		} else
			op->data[i].value = xstrdup(value);
		return (0);
	}
	if (value == NULL)
		return (0);
	if (op->ndata == OP_NDATA_MAX)
		return (-EINVAL);
	op->data[op->ndata].key = xstrdup(key);
	op->data[op->ndata].value = xstrdup(value);
	op->ndata++;
	return (0);
}

/* --- the parsers ------------------------------------------------------- */

static const char *
get_str(json_t *o, const char *key)
{
	return (json_string_value(json_object_get(o, key)));
}

/*
 * One op from its JSON: an op file's object, or an entry of the history
 * (finished: with state, finished, error and recovered).
 */
static struct op *
op_from_json(json_t *o, int finished, char *err, size_t errlen)
{
	struct op	*op;
	const char	*s, *key;
	json_t		*v, *a;
	time_t		 t;
	size_t		 i;

#define BAD(...) do {							\
	snprintf(err, errlen, __VA_ARGS__);				\
	op_free(op);							\
	return (NULL);							\
} while (0)

	op = op_new();
	if (!json_is_object(o))
		BAD("not a JSON object");
	if (!finished && json_integer_value(json_object_get(o, "format")) !=
	    OP_FORMAT)
		BAD("no \"format\": %d", OP_FORMAT);
	if ((s = get_str(o, "id")) == NULL || !op_id_ok(s))
		BAD("no valid \"id\"");
	memcpy(op->id, s, OP_ID_LEN + 1);
	if ((s = get_str(o, "kind")) == NULL || !kind_name_ok(s))
		BAD("no valid \"kind\"");
	op->kind_name = xstrdup(s);
	if ((s = get_str(o, "object")) == NULL || !object_ok(s))
		BAD("no valid \"object\"");
	op->object = xstrdup(s);
	if ((s = get_str(o, "started")) == NULL || parse_time(s, &t) != 0)
		BAD("no valid \"started\"");
	op->started = t;
	s = get_str(o, "step");
	if (s == NULL || (*s != '\0' && !kind_name_ok(s)) ||
	    (!finished && *s == '\0'))
		BAD("no valid \"step\"");
	free(op->step_name);
	op->step_name = xstrdup(s);
	if ((a = json_object_get(o, "steps")) != NULL) {
		if (!json_is_array(a) || json_array_size(a) > OP_NSTEPS_MAX)
			BAD("\"steps\" is not an array of at most %d",
			    OP_NSTEPS_MAX);
		json_array_foreach(a, i, v) {
			if ((s = get_str(v, "at")) == NULL ||
			    parse_time(s, &t) != 0)
				BAD("steps[%zu] has no valid \"at\"", i);
			if ((s = get_str(v, "name")) == NULL ||
			    !kind_name_ok(s))
				BAD("steps[%zu] has no valid \"name\"", i);
			op_add_step(op, s, t);
		}
	}
	if ((a = json_object_get(o, "data")) != NULL) {
		if (!json_is_object(a) || json_object_size(a) > OP_NDATA_MAX)
			BAD("\"data\" is not an object of at most %d",
			    OP_NDATA_MAX);
		json_object_foreach(a, key, v) {
			if (!key_ok(key) || (s = json_string_value(v)) ==
			    NULL || !value_ok(s))
				BAD("\"data\" has a bad member");
			op_set_datum(op, key, s);
		}
	}
	if (!finished)
		return (op);

	if ((s = get_str(o, "state")) == NULL ||
	    outcome_parse(s, &op->state) != 0 || op->state == OP_RUNNING)
		BAD("no valid \"state\"");
	if ((s = get_str(o, "finished")) == NULL || parse_time(s, &t) != 0)
		BAD("no valid \"finished\"");
	op->finished = t;
	v = json_object_get(o, "error");
	if (v != NULL && !json_is_null(v)) {
		if ((s = json_string_value(v)) == NULL ||
		    strlen(s) > OP_ERROR_MAX)
			BAD("\"error\" is not a string of at most %d bytes",
			    OP_ERROR_MAX);
		op->error = clean_text(s, OP_ERROR_MAX);
	}
	v = json_object_get(o, "recovered");
	if (v != NULL && !json_is_boolean(v))
		BAD("\"recovered\" is not a boolean");
	op->recovered = json_is_true(v);
	return (op);
#undef BAD
}

static json_t *
load_bytes(const char *buf, size_t len, size_t max, char *err, size_t errlen)
{
	json_error_t	 jerr;
	json_t		*o;

	if (len > max) {
		snprintf(err, errlen, "larger than %zu bytes", max);
		return (NULL);
	}
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
		snprintf(err, errlen, "line %d: %s", jerr.line, jerr.text);
	return (o);
}

struct op *
op_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct op	*op;
	json_t		*o;

	if ((o = load_bytes(buf, len, OP_FILE_MAX, err, errlen)) == NULL)
		return (NULL);
	op = op_from_json(o, 0, err, errlen);
	json_decref(o);
	return (op);
}

struct op **
op_history_parse(const char *buf, size_t len, size_t *n, size_t *nbad,
    char *err, size_t errlen)
{
	struct op	**v = NULL, *op;
	json_t		 *o, *a, *e;
	char		  ignored[128];
	size_t		  i;

	*n = *nbad = 0;
	if ((o = load_bytes(buf, len, OP_HISTORY_FILE_MAX, err, errlen)) ==
	    NULL)
		return (NULL);
	if (json_integer_value(json_object_get(o, "format")) != OP_FORMAT ||
	    !json_is_array(a = json_object_get(o, "ops"))) {
		snprintf(err, errlen, "no \"format\": %d and \"ops\" array",
		    OP_FORMAT);
		json_decref(o);
		return (NULL);
	}
	/* an empty history is a valid one: return a non-NULL array */
	v = xcalloc(json_array_size(a) + 1, sizeof *v);
	json_array_foreach(a, i, e) {
		if (*n == OP_HISTORY_MAX ||
		    (op = op_from_json(e, 1, ignored, sizeof ignored)) ==
		    NULL) {
			(*nbad)++;
			continue;
		}
		v[(*n)++] = op;
	}
	json_decref(o);
	return (v);
}

/* --- writing ----------------------------------------------------------- */

static json_t *
steps_json(const struct op *op)
{
	json_t		*a;
	char		 at[OP_TIME_LEN + 1];
	unsigned int	 i;

	a = json_array();
	for (i = 0; i < op->nsteps; i++) {
		fmt_time(op->steps[i].at, at, sizeof at);
		json_array_append_new(a, json_pack("{s:s, s:s}", "name",
		    op->steps[i].name, "at", at));
	}
	return (a);
}

static json_t *
op_file_json(const struct op *op)
{
	json_t		*o, *d;
	char		 started[OP_TIME_LEN + 1];
	unsigned int	 i;

	fmt_time(op->started, started, sizeof started);
	d = json_object();
	for (i = 0; i < op->ndata; i++)
		json_object_set_new(d, op->data[i].key,
		    json_string(op->data[i].value));
	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o}",
	    "format", OP_FORMAT, "id", op->id, "kind", op->kind_name,
	    "object", op->object, "step", op->step_name, "started", started,
	    "pid", (json_int_t)getpid(), "steps", steps_json(op), "data", d);
	return (o);
}

/* What op.list and op.show answer, and a history entry. */
static json_t *
op_json(const struct op *op, int with_steps)
{
	json_t	*o;
	char	 started[OP_TIME_LEN + 1], finished[OP_TIME_LEN + 1];

	fmt_time(op->started, started, sizeof started);
	fmt_time(op->finished, finished, sizeof finished);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:b}",
	    "id", op->id, "kind", op->kind_name, "object", op->object,
	    "step", op->step_name, "state", op_outcome_name(op->state),
	    "started", started,
	    "finished", op->state == OP_RUNNING ? NULL : finished,
	    "error", op->error, "recovered", op->recovered);
	if (with_steps)
		json_object_set_new(o, "steps", steps_json(op));
	return (o);
}

static char *
op_file_name(const struct op *op)
{
	char	*name;

	xasprintf(&name, "op-%s.json", op->id);
	return (name);
}

static int
op_write(struct op *op)
{
	json_t	*o;
	char	*name;
	int	 r;

	o = op_file_json(op);
	name = op_file_name(op);
	if ((r = state_write_json(op->j->dir, name, o)) != 0)
		log_warn("op.write", "cannot write %s/%s: %s", op->j->dir,
		    name, strerror(-r));
	else
		op->persisted = 1;
	free(name);
	json_decref(o);
	return (r);
}

static void
history_write(struct op_journal *j)
{
	json_t	*o, *a;
	char	*s;
	size_t	 i;
	int	 r;

	a = json_array();
	for (i = 0; i < j->nhist; i++)
		json_array_append_new(a, op_json(j->hist[i], 1));
	o = json_pack("{s:i, s:o}", "format", OP_FORMAT, "ops", a);
	/* one op per line: small enough to read, cheap to write */
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL) {
		log_warn("op.history", "cannot encode the op history");
		return;
	}
	s = xreallocarray(s, strlen(s) + 2, 1);
	strcat(s, "\n");
	if ((r = state_write(j->dir, OP_HISTORY_FILE, s, strlen(s), 0640)) !=
	    0)
		log_warn("op.history", "cannot write %s/%s: %s", j->dir,
		    OP_HISTORY_FILE, strerror(-r));
	free(s);
}

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

	ev = evt_new(type);
	evt_add(ev, "op_id", "%s", op->id);
	evt_add(ev, "op_kind", "%s", op->kind_name);
	evt_add(ev, "op_object", "%s", op->object);
	evt_add(ev, "op_step", "%s", op->step_name);
	return (ev);
}

/* --- the journal ------------------------------------------------------- */

static struct op_journal *
journal(struct opsd *o)
{
	return (o->ops);
}

/* Reads a regular file of at most max bytes without following links. */
static int
read_small(int dfd, const char *name, size_t max, char **buf, size_t *len)
{
	struct stat	 st;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd, r = 0;

	*buf = NULL;
	*len = 0;
	/* never open a device or a FIFO planted here: opening has effects */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return (-errno);
	if (!S_ISREG(st.st_mode))
		return (-EINVAL);
	/* O_NONBLOCK: one swapped in since must not stall the loop either */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return (errno == ELOOP ? -EINVAL : -errno);
	if (fstat(fd, &st) == -1) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	*buf = xmalloc((size_t)st.st_size + 1);
	/* one byte more than the size: a file that grew is refused */
	while (off <= (size_t)st.st_size) {
		n = read(fd, *buf + off, (size_t)st.st_size + 1 - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	if (r == 0 && off > (size_t)st.st_size)
		r = -EFBIG;
	*len = off;
out:
	if (r != 0) {
		free(*buf);
		*buf = NULL;
	}
	close(fd);
	return (r);
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

	if ((r = read_small(dfd, OP_HISTORY_FILE, OP_HISTORY_FILE_MAX, &buf,
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
	if ((r = read_small(dfd, name, OP_FILE_MAX, &buf, &len)) != 0) {
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
	if (!kind_name_ok(k->name) || k->nsteps == 0)
		fatalx("op kind '%s': bad name or no steps", k->name);
	for (i = 0; i < k->nsteps; i++) {
		if (!kind_name_ok(k->steps[i]))
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
	if (!object_ok(object)) {
		xasprintf(err, "%s: invalid object name", k->name);
		return (-EINVAL);
	}
	if ((op = op_find(o, k->name, object)) != NULL) {
		xasprintf(err, "%s on %s is already in progress (op %s, step "
		    "%s)", k->name, object, op->id, *op->step_name != '\0' ?
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

	if (!key_ok(key) || (value != NULL && !value_ok(value)))
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
	    nitems(outcome_names))
		fatalx("op_finish: op %s with outcome %d", op->id, outcome);
	op_fault(op, op->step_name, 1);
	op->state = outcome;
	op->finished = time(NULL);
	if (fmt != NULL) {
		va_start(ap, fmt);
		xvasprintf(&msg, fmt, ap);
		va_end(ap);
		free(op->error);
		op->error = clean_text(msg, OP_ERROR_MAX);
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
	history_write(j);
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
