/*
 * The deploy room's files in state_dir/deploy/ (mode 0700):
 *
 *   NAME.json   which slot serves which version, the slot that served
 *               before (warm until a time, or stopped), a degraded
 *               state, the counters and the last deploys
 *   NAME.prev   the upstream include file's bytes as they were before
 *               the cutover named by NAME.json's "pending": what a
 *               failure (or a restart in the middle) puts back
 *
 * Both are written atomically (state.h). NAME.json is read as outside
 * input by a pure parser (deploy_state_parse); a file that does not
 * parse is moved aside and the deploy starts from its configuration.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "deploy-int.h"
#include "evt.h"
#include "op.h"
#include "state.h"
#include "util.h"

#define STATE_FORMAT	1
#define TIME_MAX	((int64_t)1 << 40)
#define COUNT_MAX	((int64_t)1 << 53)

/* --- the parser ------------------------------------------------------------- */

/* 0 if key is absent (and not required) or a string that fits; 1 if not. */
static int
get_str(json_t *o, const char *key, char *dst, size_t size, int required)
{
	json_t	*v = json_object_get(o, key);

	dst[0] = '\0';
	if (v == NULL)
		return (required);
	if (!json_is_string(v) || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return (1);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return (0);
}

static int
get_int(json_t *o, const char *key, int64_t *dst, int64_t min, int64_t max,
    int required)
{
	json_t	*v = json_object_get(o, key);

	*dst = 0;
	if (v == NULL)
		return (required);
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return (1);
	*dst = (int64_t)json_integer_value(v);
	return (0);
}

static int
get_bool(json_t *o, const char *key, int *dst)
{
	json_t	*v = json_object_get(o, key);

	*dst = 0;
	if (v == NULL)
		return (0);
	if (!json_is_boolean(v))
		return (1);
	*dst = json_is_true(v);
	return (0);
}

static int
get_slot(json_t *o, const char *key, int *dst)
{
	char	buf[8];

	if (get_str(o, key, buf, sizeof buf, 1) != 0)
		return (1);
	return ((*dst = deploy_slot_parse(buf)) < 0);
}

/* A version, or "" where allow_empty (nothing known). */
static int
version_fits(const char *v, int allow_empty)
{
	return ((allow_empty && v[0] == '\0') || deploy_version_ok(v));
}

static int
word_in(const char *w, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strcmp(w, *set) == 0)
			return (1);
	return (0);
}

static const char *const results[] = { "ok", "failed", "rolled_back", NULL };
static const char *const modes[] = { "deploy", "rollback", NULL };

/* Step names: [a-z_], short. The run table decides what they mean. */
static int
step_word_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((*s < 'a' || *s > 'z') && *s != '_')
			return (0);
	return (1);
}

static const char *
parse_entry(json_t *e, struct deploy_entry *h)
{
	int64_t	 v;

	memset(h, 0, sizeof *h);
	if (!json_is_object(e))
		return ("a history entry is not an object");
	if (get_str(e, "op", h->op, sizeof h->op, 1) || !op_id_ok(h->op))
		return ("a history entry has no op id");
	if (get_str(e, "mode", h->mode, sizeof h->mode, 1) ||
	    !word_in(h->mode, modes))
		return ("a history entry's mode is not deploy or rollback");
	if (get_str(e, "version", h->version, sizeof h->version, 1) ||
	    !version_fits(h->version, 0))
		return ("a history entry's version is malformed");
	if (get_str(e, "from_version", h->from_version,
	    sizeof h->from_version, 0) || !version_fits(h->from_version, 1))
		return ("a history entry's from_version is malformed");
	if (get_slot(e, "slot", &h->slot))
		return ("a history entry's slot is not blue or green");
	if (get_str(e, "result", h->result, sizeof h->result, 1) ||
	    !word_in(h->result, results))
		return ("a history entry's result is not ok, failed or "
		    "rolled_back");
	if (get_str(e, "step", h->step, sizeof h->step, 0) ||
	    !step_word_ok(h->step))
		return ("a history entry's step is malformed");
	if (get_int(e, "started", &h->started, 0, TIME_MAX, 1))
		return ("a history entry's started is not a time");
	if (get_int(e, "duration_ms", &h->duration_ms, 0, TIME_MAX, 1))
		return ("a history entry's duration_ms is malformed");
	if (get_int(e, "cutover_ms", &v, -1, TIME_MAX, 0))
		return ("a history entry's cutover_ms is malformed");
	h->cutover_ms = json_object_get(e, "cutover_ms") != NULL ? v : -1;
	if (get_str(e, "error", h->error, sizeof h->error, 0))
		return ("a history entry's error is malformed");
	return (NULL);
}

int
deploy_state_parse(const char *buf, size_t len, struct deploy_state *st,
    char *err, size_t errlen)
{
	json_error_t	 je;
	json_t		*root, *a, *p, *c, *h, *e;
	const char	*bad = NULL;
	int64_t		 v, x, y, z;
	size_t		 i;

	memset(st, 0, sizeof *st);
	if (len > DEPLOY_STATE_MAX) {
		snprintf(err, errlen, "larger than %d bytes", DEPLOY_STATE_MAX);
		return (-EBADMSG);
	}
	if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) ==
	    NULL) {
		snprintf(err, errlen, "not JSON: %s (line %d)", je.text,
		    je.line);
		return (-EBADMSG);
	}
	if (!json_is_object(root))
		bad = "not a JSON object";
	else if (get_int(root, "format", &v, 1, 1000, 1) || v != STATE_FORMAT)
		bad = "format is not 1";
	else if ((a = json_object_get(root, "active")) == NULL ||
	    !json_is_object(a))
		bad = "active is missing";
	else if (get_slot(a, "slot", &st->active_slot))
		bad = "active.slot is not blue or green";
	else if (get_str(a, "version", st->active_version,
	    sizeof st->active_version, 0) ||
	    !version_fits(st->active_version, 1))
		bad = "active.version is malformed";
	else if (get_int(a, "since", &st->active_since, 0, TIME_MAX, 0))
		bad = "active.since is not a time";
	else if (get_bool(a, "irreversible", &st->irreversible))
		bad = "active.irreversible is not true or false";
	if (bad == NULL && (p = json_object_get(root, "previous")) != NULL &&
	    !json_is_null(p)) {
		st->has_previous = 1;
		if (!json_is_object(p) || get_slot(p, "slot", &st->prev_slot))
			bad = "previous.slot is not blue or green";
		else if (st->prev_slot == st->active_slot)
			bad = "previous and active are the same slot";
		else if (get_str(p, "version", st->prev_version,
		    sizeof st->prev_version, 1) ||
		    !version_fits(st->prev_version, 0))
			bad = "previous.version is malformed";
		else if (get_bool(p, "running", &st->prev_running))
			bad = "previous.running is not true or false";
		else if (get_int(p, "until", &st->prev_until, 0, TIME_MAX, 0))
			bad = "previous.until is not a time";
	}
	if (bad == NULL && get_str(root, "degraded", st->degraded,
	    sizeof st->degraded, 0))
		bad = "degraded is not a short text";
	if (bad == NULL && (p = json_object_get(root, "pending")) != NULL) {
		if (!json_is_object(p) || get_str(p, "op", st->pending_op,
		    sizeof st->pending_op, 1) || !op_id_ok(st->pending_op))
			bad = "pending.op is not an op id";
		else if (get_bool(p, "existed", &st->pending_existed))
			bad = "pending.existed is not true or false";
	}
	if (bad == NULL && (c = json_object_get(root, "counts")) != NULL) {
		if (!json_is_object(c) || get_int(c, "ok", &x, 0, COUNT_MAX, 0)
		    || get_int(c, "failed", &y, 0, COUNT_MAX, 0) ||
		    get_int(c, "rolled_back", &z, 0, COUNT_MAX, 0))
			bad = "counts is malformed";
		else {
			st->n_ok = (uint64_t)x;
			st->n_failed = (uint64_t)y;
			st->n_rolled_back = (uint64_t)z;
		}
	}
	if (bad == NULL && (h = json_object_get(root, "history")) != NULL) {
		if (!json_is_array(h) || json_array_size(h) > DEPLOY_HISTORY)
			bad = "history is not a list of at most 20 deploys";
		json_array_foreach(h, i, e) {
			if (bad != NULL)
				break;
			if ((bad = parse_entry(e, &st->hist[st->nhist])) ==
			    NULL)
				st->nhist++;
		}
	}
	json_decref(root);
	if (bad != NULL) {
		snprintf(err, errlen, "%s", bad);
		memset(st, 0, sizeof *st);
		return (-EBADMSG);
	}
	st->known = 1;
	return (0);
}

static json_t *
entry_json(const struct deploy_entry *h)
{
	json_t	*e;

	e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "op", h->op,
	    "mode", h->mode, "version", h->version, "slot",
	    deploy_slot_name(h->slot), "result", h->result, "step", h->step,
	    "started", (json_int_t)h->started, "duration_ms",
	    (json_int_t)h->duration_ms);
	if (e == NULL)
		fatalx("deploy: cannot build a history entry");
	if (h->from_version[0] != '\0')
		json_object_set_new(e, "from_version",
		    json_string(h->from_version));
	if (h->cutover_ms >= 0)
		json_object_set_new(e, "cutover_ms",
		    json_integer(h->cutover_ms));
	if (h->error[0] != '\0')
		json_object_set_new(e, "error", json_string(h->error));
	return (e);
}

json_t *
deploy_state_json(const struct deploy_state *st)
{
	json_t		*o, *h;
	unsigned int	 i;

	o = json_pack("{s:i, s:{s:s, s:s, s:I, s:b}, s:{s:I, s:I, s:I}}",
	    "format", STATE_FORMAT, "active", "slot",
	    deploy_slot_name(st->active_slot), "version", st->active_version,
	    "since", (json_int_t)st->active_since, "irreversible",
	    st->irreversible, "counts", "ok", (json_int_t)st->n_ok, "failed",
	    (json_int_t)st->n_failed, "rolled_back",
	    (json_int_t)st->n_rolled_back);
	if (o == NULL)
		fatalx("deploy: cannot build the state");
	if (st->has_previous)
		json_object_set_new(o, "previous", json_pack("{s:s, s:s, s:b, "
		    "s:I}", "slot", deploy_slot_name(st->prev_slot), "version",
		    st->prev_version, "running", st->prev_running, "until",
		    (json_int_t)st->prev_until));
	if (st->degraded[0] != '\0')
		json_object_set_new(o, "degraded", json_string(st->degraded));
	if (st->pending_op[0] != '\0')
		json_object_set_new(o, "pending", json_pack("{s:s, s:b}", "op",
		    st->pending_op, "existed", st->pending_existed));
	h = json_array();
	for (i = 0; i < st->nhist; i++)
		json_array_append_new(h, entry_json(&st->hist[i]));
	json_object_set_new(o, "history", h);
	return (o);
}

void
deploy_state_add(struct deploy_state *st, const struct deploy_entry *e)
{
	memmove(&st->hist[1], &st->hist[0], sizeof st->hist[0] *
	    (DEPLOY_HISTORY - 1));
	st->hist[0] = *e;
	if (st->nhist < DEPLOY_HISTORY)
		st->nhist++;
}

/* --- files ------------------------------------------------------------------ */

char *
deploy_state_dir(struct opsd *o)
{
	char	*dir;

	xasprintf(&dir, "%s/deploy", o->conf->state_dir);
	return (dir);
}

/* Reads dir/file (a regular file, not a link) of at most max bytes. */
static int
read_small(const char *dir, const char *file, size_t max, char **buf,
    size_t *len)
{
	struct stat	 st;
	char		*path;
	ssize_t		 r;
	int		 fd, e;

	xasprintf(&path, "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd == -1)
		return (errno == ELOOP ? -EBADMSG : -errno);
	if (fstat(fd, &st) == -1) {
		e = -errno;
		close(fd);
		return (e);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return (-EBADMSG);
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return (-EFBIG);
	}
	*buf = xmalloc((size_t)st.st_size + 1);
	r = read(fd, *buf, (size_t)st.st_size);
	e = r == -1 ? -errno : 0;
	close(fd);
	if (r != st.st_size) {
		free(*buf);
		*buf = NULL;
		return (e != 0 ? e : -EIO);
	}
	(*buf)[r] = '\0';
	*len = (size_t)r;
	return (0);
}

int
deploy_state_load(struct opsd *o, const char *name, struct deploy_state *st,
    char *err, size_t errlen)
{
	char	*dir, *file, *buf = NULL, *from, *to;
	size_t	 len;
	int	 e;

	memset(st, 0, sizeof *st);
	err[0] = '\0';
	dir = deploy_state_dir(o);
	xasprintf(&file, "%s.json", name);
	e = read_small(dir, file, DEPLOY_STATE_MAX, &buf, &len);
	if (e == 0)
		e = deploy_state_parse(buf, len, st, err, errlen);
	else if (e != -ENOENT)
		snprintf(err, errlen, "%s", e == -EBADMSG ? "not a regular "
		    "file" : strerror(-e));
	if (e != 0 && e != -ENOENT) {
		xasprintf(&from, "%s/%s", dir, file);
		xasprintf(&to, "%s/%s.bad", dir, file);
		if (rename(from, to) != 0)
			evt_log_about(LOG_WARNING, "deploy.state", "deploy",
			    name, "deploy %s: cannot move %s aside: %s", name,
			    from, strerror(errno));
		free(from);
		free(to);
		e = -EBADMSG;
	}
	free(buf);
	free(file);
	free(dir);
	return (e);
}

int
deploy_state_save(struct opsd *o, const char *name,
    const struct deploy_state *st)
{
	json_t	*j;
	char	*dir, *file;
	int	 e;

	dir = deploy_state_dir(o);
	if ((e = state_mkdir(dir, 0700)) == 0) {
		xasprintf(&file, "%s.json", name);
		j = deploy_state_json(st);
		e = state_write_json(dir, file, j);
		json_decref(j);
		free(file);
	}
	free(dir);
	return (e);
}

int
deploy_prev_save(struct opsd *o, const char *name, const char *buf,
    size_t len)
{
	char	*dir, *file;
	int	 e;

	dir = deploy_state_dir(o);
	if ((e = state_mkdir(dir, 0700)) == 0) {
		xasprintf(&file, "%s.prev", name);
		e = state_write(dir, file, buf, len, 0600);
		free(file);
	}
	free(dir);
	return (e);
}

int
deploy_prev_load(struct opsd *o, const char *name, char **buf, size_t *len)
{
	char	*dir, *file;
	int	 e;

	dir = deploy_state_dir(o);
	xasprintf(&file, "%s.prev", name);
	e = read_small(dir, file, DEPLOY_INCLUDE_MAX, buf, len);
	free(file);
	free(dir);
	return (e);
}

void
deploy_prev_remove(struct opsd *o, const char *name)
{
	char	*path;

	xasprintf(&path, "%s/deploy/%s.prev", o->conf->state_dir, name);
	if (unlink(path) == -1 && errno != ENOENT)
		evt_log_about(LOG_WARNING, "deploy.state", "deploy", name,
		    "deploy %s: cannot remove %s: %s", name, path,
		    strerror(errno));
	free(path);
}
