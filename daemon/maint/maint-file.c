/*
 * state_dir/maintenance.json, the open windows: its parser is pure (bytes
 * in, windows or a reason out) so that the unit tests and fuzz/fuzz-maint
 * run it on anything the state directory might hold. Every field is
 * checked against the shape opsd writes; a file that does not parse is
 * moved aside by the caller, and opsd starts with no window.
 *
 *	{"version": 1, "windows": [{"name": "api", "source": "cli",
 *	  "reason": "...", "started": 1764612000, "until": 1764613800,
 *	  "uid": 0}]}
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "maint.h"
#include "util.h"

int
maint_name_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (strcmp(s, "*") == 0)
		return (1);
	if (n == 0 || n > MAINT_NAME_MAX)
		return (0);
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return (0);
	return (1);
}

int
maint_reason_ok(const char *s)
{
	size_t	i, n = strlen(s);

	if (n > MAINT_REASON_MAX || !util_utf8_valid(s, n))
		return (0);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (0);
	return (1);
}

static int
source_ok(const char *s)
{
	return (strcmp(s, "cli") == 0 || strcmp(s, "deploy") == 0);
}

#define FAIL(...)	do { snprintf(err, errlen, __VA_ARGS__); \
			    goto bad; } while (0)

int
maint_parse(const char *buf, size_t len, struct maint_window *v,
    unsigned int *n, char *err, size_t errlen)
{
	json_t		*root, *list, *w, *f;
	json_error_t	 je;
	const char	*s;
	size_t		 i, j;

	*n = 0;
	if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) ==
	    NULL) {
		snprintf(err, errlen, "not JSON: %s", je.text);
		memset(v, 0, sizeof *v * MAINT_MAX);
		return (-1);
	}
	if (!json_is_object(root))
		FAIL("not an object");
	if ((f = json_object_get(root, "version")) == NULL ||
	    !json_is_integer(f) || json_integer_value(f) != 1)
		FAIL("version is not 1");
	if ((list = json_object_get(root, "windows")) == NULL ||
	    !json_is_array(list))
		FAIL("windows is not a list");
	if (json_array_size(list) > MAINT_MAX)
		FAIL("more than %d windows", MAINT_MAX);
	json_array_foreach(list, i, w) {
		struct maint_window	*m = &v[i];

		memset(m, 0, sizeof *m);
		if (!json_is_object(w))
			FAIL("window %zu is not an object", i);
		if ((s = json_string_value(json_object_get(w, "name"))) ==
		    NULL || !maint_name_ok(s))
			FAIL("window %zu: bad name", i);
		snprintf(m->name, sizeof m->name, "%s", s);
		if ((s = json_string_value(json_object_get(w, "source"))) ==
		    NULL || !source_ok(s))
			FAIL("window %zu: bad source", i);
		snprintf(m->source, sizeof m->source, "%s", s);
		if ((f = json_object_get(w, "reason")) != NULL) {
			if ((s = json_string_value(f)) == NULL ||
			    !maint_reason_ok(s))
				FAIL("window %zu: bad reason", i);
			snprintf(m->reason, sizeof m->reason, "%s", s);
		}
		if (!json_is_integer(f = json_object_get(w, "started")) ||
		    json_integer_value(f) < 0)
			FAIL("window %zu: bad started", i);
		m->started = json_integer_value(f);
		if (!json_is_integer(f = json_object_get(w, "until")) ||
		    json_integer_value(f) < 0 || (json_integer_value(f) != 0 &&
		    json_integer_value(f) < m->started))
			FAIL("window %zu: bad until", i);
		m->until = json_integer_value(f);
		if (!json_is_integer(f = json_object_get(w, "uid")) ||
		    json_integer_value(f) < -1 ||
		    json_integer_value(f) > 0xffffffffLL)
			FAIL("window %zu: bad uid", i);
		m->uid = json_integer_value(f);
		for (j = 0; j < i; j++)
			if (strcmp(v[j].name, m->name) == 0 &&
			    strcmp(v[j].source, m->source) == 0)
				FAIL("window %zu: %s twice", i, m->name);
		*n = (unsigned int)i + 1;
	}
	json_decref(root);
	return (0);
bad:
	json_decref(root);
	memset(v, 0, sizeof *v * MAINT_MAX);
	*n = 0;
	return (-1);
}

json_t *
maint_window_json(const struct maint_window *m)
{
	return (json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "name", m->name,
	    "source", m->source, "reason", m->reason,
	    "started", (json_int_t)m->started, "until", (json_int_t)m->until,
	    "uid", (json_int_t)m->uid));
}

json_t *
maint_file_json(const struct maint_window *v, unsigned int n)
{
	json_t		*list = json_array();
	unsigned int	 i;

	for (i = 0; i < n; i++)
		json_array_append_new(list, maint_window_json(&v[i]));
	return (json_pack("{s:i, s:o}", "version", 1, "windows", list));
}
