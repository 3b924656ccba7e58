/*
 * The op journal's files (see op.c for the journal itself): the rules for
 * ids, names and values, the pure parsers of an op file and of the
 * history, which check every field because the state directory is not
 * trusted, the JSON written back, and reading and writing the files
 * (writes go through state.c: a temporary file renamed into place).
 * Nothing here keeps state; op_parse() and op_history_parse() are what
 * the fuzz target drives.
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon.h"
#include "op.h"
#include "op-int.h"
#include "state.h"
#include "util.h"

const char *const op_outcome_names[OP_NOUTCOMES] = {
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

int
op_kind_name_ok(const char *s)
{
	return (charset_ok(s, OP_NAME_MAX, "_.-", 0));
}

/* The config's name rule; never a path, but keep '/' out all the same. */
int
op_object_ok(const char *s)
{
	return (charset_ok(s, OP_NAME_MAX, "_.-", 1));
}

int
op_key_ok(const char *s)
{
	return (charset_ok(s, OP_KEY_MAX, "_", 0));
}


/* Printable UTF-8, at most OP_NAME_MAX bytes: details end up in logs. */
int
op_value_ok(const char *s)
{
	char	*c;
	int	 ok;

	if (strlen(s) > OP_NAME_MAX)
		return (0);
	c = op_clean_text(s, OP_NAME_MAX);
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
char *
op_clean_text(const char *s, size_t max)
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
	if ((unsigned int)o >= nitems(op_outcome_names))
		return ("?");
	return (op_outcome_names[o]);
}

static int
outcome_parse(const char *s, enum op_outcome *o)
{
	unsigned int	i;

	for (i = 0; i < nitems(op_outcome_names); i++) {
		if (strcmp(s, op_outcome_names[i]) == 0) {
			*o = (enum op_outcome)i;
			return (0);
		}
	}
	return (-1);
}

/* --- ops in memory ----------------------------------------------------- */

struct op *
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

void
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

int
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
	if ((s = get_str(o, "kind")) == NULL || !op_kind_name_ok(s))
		BAD("no valid \"kind\"");
	op->kind_name = xstrdup(s);
	if ((s = get_str(o, "object")) == NULL || !op_object_ok(s))
		BAD("no valid \"object\"");
	op->object = xstrdup(s);
	if ((s = get_str(o, "started")) == NULL || parse_time(s, &t) != 0)
		BAD("no valid \"started\"");
	op->started = t;
	s = get_str(o, "step");
	if (s == NULL || (*s != '\0' && !op_kind_name_ok(s)) ||
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
			    !op_kind_name_ok(s))
				BAD("steps[%zu] has no valid \"name\"", i);
			op_add_step(op, s, t);
		}
	}
	if ((a = json_object_get(o, "data")) != NULL) {
		if (!json_is_object(a) || json_object_size(a) > OP_NDATA_MAX)
			BAD("\"data\" is not an object of at most %d",
			    OP_NDATA_MAX);
		json_object_foreach(a, key, v) {
			if (!op_key_ok(key) || (s = json_string_value(v)) ==
			    NULL || !op_value_ok(s))
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
		op->error = op_clean_text(s, OP_ERROR_MAX);
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
json_t *
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

char *
op_file_name(const struct op *op)
{
	char	*name;

	xasprintf(&name, "op-%s.json", op->id);
	return (name);
}

int
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

void
op_history_write(struct op_journal *j)
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

/* --- reading ----------------------------------------------------------- */

/* Reads a regular file of at most max bytes without following links. */
int
op_read_small(int dfd, const char *name, size_t max, char **buf, size_t *len)
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
