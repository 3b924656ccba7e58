/*
 * The INI reader behind opsd.conf. It reads the whole buffer, never stops
 * at the first error, and leaves the caller's objects half-filled only on
 * failure, when the caller throws them away.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evt.h"
#include "ini.h"
#include "opsd-parse.h"
#include "util.h"

#define INI_MAX_ERRORS	100
/* A name this close to a known one is offered as "did you mean". */
#define INI_SUGGEST_DIST	2

struct seen {
	const char	*type;
	char		*name;
	int		 line;
};

void
ini_error(struct config_errors *errs, const char *file, int line,
    const char *fmt, ...)
{
	char	*msg;
	va_list	 ap;

	if (errs->n >= INI_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	errs->v = xreallocarray(errs->v, errs->n + 1, sizeof *errs->v);
	if (errs->n + 1 == INI_MAX_ERRORS)
		xasprintf(&errs->v[errs->n++], "%s: too many errors, "
		    "giving up", file);
	else if (line > 0)
		xasprintf(&errs->v[errs->n++], "%s:%d: %s", file, line, msg);
	else
		xasprintf(&errs->v[errs->n++], "%s: %s", file, msg);
	free(msg);
}

static int
key_cmp(const void *a, const void *b)
{
	return (strcmp(a, ((const struct ini_key *)b)->name));
}

static const char *
kind_hint(enum ini_kind kind)
{
	switch (kind) {
	case INI_DURATION:
		return ("a duration such as 30s, 5m, 2h or 7d");
	case INI_SIZE:
		return ("a size such as 512K or 1G");
	case INI_UINT:
		return ("a whole number");
	case INI_MODE:
		return ("an octal mode such as 0660");
	case INI_BOOL:
		return ("yes or no");
	case INI_LOGLEVEL:
		return ("one of error, warning, notice, info, debug");
	case INI_ENUM:
		return ("one of the listed choices");
	case INI_PATH:
		return ("an absolute path");
	default:
		return ("a value");
	}
}

/*
 * Edit distance with adjacent transpositions (optimal string alignment),
 * capped: anything above INI_SUGGEST_DIST reads as INI_SUGGEST_DIST + 1.
 * Names are short (keys, section types), so the O(n*m) table is tiny.
 */
static unsigned int
edit_distance(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b), i, j;
	unsigned int	 d[3][65], *prev2 = d[0], *prev = d[1], *cur = d[2];
	unsigned int	*t, best, v;

	if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) >
	    INI_SUGGEST_DIST)
		return (INI_SUGGEST_DIST + 1);
	for (j = 0; j <= lb; j++)
		prev[j] = (unsigned int)j;
	for (i = 1; i <= la; i++) {
		cur[0] = (unsigned int)i;
		best = cur[0];
		for (j = 1; j <= lb; j++) {
			v = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (prev[j] + 1 < v)
				v = prev[j] + 1;
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
			if (v < best)
				best = v;
		}
		if (best > INI_SUGGEST_DIST)
			return (INI_SUGGEST_DIST + 1);
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return (prev[lb] > INI_SUGGEST_DIST ? INI_SUGGEST_DIST + 1 : prev[lb]);
}

/*
 * The nearest of n names (each at base + i * stride) within
 * INI_SUGGEST_DIST of word, or NULL. A word of one or two letters is
 * within two edits of too much to suggest anything.
 */
static const char *
suggest(const char *word, const void *base, size_t n, size_t stride)
{
	const char	*best = NULL, *name;
	unsigned int	 bestd = INI_SUGGEST_DIST + 1, d;
	size_t		 i;

	for (i = 0; i < n; i++) {
		name = *(const char *const *)((const char *)base + i * stride);
		d = edit_distance(word, name);
		if (d < bestd && d < strlen(word)) {
			bestd = d;
			best = name;
		}
	}
	return (best);
}

/*
 * opsd.conf has no comments after a value: '#' is part of it (a URL's
 * fragment, a password). When a value is rejected and holds a '#' after
 * a blank, that was almost surely meant as a comment: say so.
 */
static int
has_trailing_comment(const char *value)
{
	const char	*p;

	for (p = strchr(value, '#'); p != NULL; p = strchr(p + 1, '#'))
		if (p > value && isspace((unsigned char)p[-1]))
			return (1);
	return (0);
}

/* Parses value into obj; returns NULL or a static error message. */
static const char *
ini_set(const struct ini_key *k, void *obj, const char *value, char *buf,
    size_t buflen)
{
	char		*base = obj;
	uint64_t	 n;
	mode_t		 mode;
	int		 b, r = 0;
	struct group	*gr;
	struct passwd	*pw;
	const char	*msg;
	char		***list;
	unsigned int	*count;
	size_t		 i, off;

	if (k->validate != NULL && (msg = k->validate(value, buf,
	    buflen)) != NULL)
		return (msg);
	switch (k->kind) {
	case INI_ENUM:
		for (i = 0; k->choices[i] != NULL; i++) {
			if (strcmp(k->choices[i], value) == 0) {
				*(int *)(base + k->off) = (int)i;
				return (NULL);
			}
		}
		off = (size_t)snprintf(buf, buflen, "invalid value '%s': "
		    "expected one of", value);
		for (i = 0; k->choices[i] != NULL && off < buflen; i++)
			off += (size_t)snprintf(buf + off, buflen - off,
			    "%s %s", i ? "," : "", k->choices[i]);
		return (buf);
	case INI_LIST:
		list = (char ***)(base + k->off);
		count = (unsigned int *)(base + k->off2);
		*list = xreallocarray(*list, *count + 1, sizeof **list);
		(*list)[(*count)++] = xstrdup(value);
		return (NULL);
	case INI_PATH:
		if (value[0] != '/')
			return ("must be an absolute path");
		/* FALLTHROUGH */
	case INI_STRING:
		free(*(char **)(base + k->off));
		*(char **)(base + k->off) = xstrdup(value);
		return (NULL);
	case INI_GROUP:
		/*
		 * Local lookup at load time, so a typo fails the config. It
		 * may block (NSS: LDAP, sssd), but it runs only while a config
		 * is read: at start, for --check-config and at a reload, never
		 * on a timer or for a client.
		 */
		errno = 0;
		if ((gr = getgrnam(value)) == NULL) {
			snprintf(buf, buflen, "unknown group '%s'", value);
			return (buf);
		}
		free(*(char **)(base + k->off));
		*(char **)(base + k->off) = xstrdup(value);
		*(gid_t *)(base + k->off2) = gr->gr_gid;
		return (NULL);
	case INI_USER:
		/* the same local lookup, at load time only (above) */
		errno = 0;
		if ((pw = getpwnam(value)) == NULL) {
			snprintf(buf, buflen, "unknown user '%s'", value);
			return (buf);
		}
		free(*(char **)(base + k->off));
		*(char **)(base + k->off) = xstrdup(value);
		*(uid_t *)(base + k->off2) = pw->pw_uid;
		return (NULL);
	case INI_DURATION:
		r = parse_duration(value, &n);
		break;
	case INI_SIZE:
		r = parse_size(value, &n);
		break;
	case INI_UINT:
		r = parse_uint(value, 0, UINT64_MAX, &n);
		break;
	case INI_MODE:
		if (parse_mode(value, &mode) != 0)
			goto bad;
		*(mode_t *)(base + k->off) = mode;
		return (NULL);
	case INI_BOOL:
		if (parse_bool(value, &b) != 0)
			goto bad;
		*(int *)(base + k->off) = b;
		return (NULL);
	case INI_LOGLEVEL:
		if ((b = log_level_parse(value)) < 0 || b < LOG_ERR)
			goto bad;
		*(int *)(base + k->off) = b;
		return (NULL);
	}
	if (r == -ERANGE) {
		snprintf(buf, buflen, "value '%s' is too large", value);
		return (buf);
	}
	if (r != 0)
		goto bad;
	if (n < k->min || (k->max != 0 && n > k->max)) {
		char lo[32], hi[32];

		if (k->kind == INI_DURATION) {
			format_duration(k->min, lo, sizeof lo);
			format_duration(k->max, hi, sizeof hi);
		} else {
			snprintf(lo, sizeof lo, "%llu",
			    (unsigned long long)k->min);
			snprintf(hi, sizeof hi, "%llu",
			    (unsigned long long)k->max);
		}
		if (k->max != 0)
			snprintf(buf, buflen, "'%s' is out of range (%s to %s)",
			    value, lo, hi);
		else
			snprintf(buf, buflen, "'%s' is below the minimum %s",
			    value, lo);
		return (buf);
	}
	*(uint64_t *)(base + k->off) = n;
	return (NULL);
bad:
	snprintf(buf, buflen, "invalid value '%s': expected %s", value,
	    kind_hint(k->kind));
	return (buf);
}

int
ini_defaults(const struct ini_section *sec, void *obj)
{
	char	buf[256];
	size_t	i;

	for (i = 0; i < sec->nkeys; i++) {
		if (sec->keys[i].dflt == NULL)
			continue;
		if (ini_set(&sec->keys[i], obj, sec->keys[i].dflt, buf,
		    sizeof buf) != NULL)
			return (-1);
	}
	return (0);
}

void *
ini_copy(const struct ini_section *sec, const void *src, size_t size)
{
	char		*base;
	size_t		 i;
	unsigned int	 j, n;

	base = xmalloc(size);
	memcpy(base, src, size);
	for (i = 0; i < sec->nkeys; i++) {
		const struct ini_key *k = &sec->keys[i];

		switch (k->kind) {
		case INI_STRING:
		case INI_PATH:
		case INI_USER:
		case INI_GROUP: {
			char **s = (char **)(base + k->off);

			if (*s != NULL)
				*s = xstrdup(*s);
			break;
		}
		case INI_LIST: {
			char ***l = (char ***)(base + k->off), **copy;

			n = *(unsigned int *)(base + k->off2);
			copy = xcalloc(n + 1, sizeof *copy);
			for (j = 0; j < n; j++)
				copy[j] = xstrdup((*l)[j]);
			*l = copy;
			break;
		}
		default:
			break;
		}
	}
	return (base);
}

static int
str_eq(const char *a, const char *b)
{
	return ((a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0));
}

int
ini_equal(const struct ini_section *sec, const void *a, const void *b)
{
	const char	*pa = a, *pb = b;
	size_t		 i;
	unsigned int	 j, n;

	for (i = 0; i < sec->nkeys; i++) {
		const struct ini_key *k = &sec->keys[i];

		switch (k->kind) {
		case INI_STRING:
		case INI_PATH:
			if (!str_eq(*(char *const *)(pa + k->off),
			    *(char *const *)(pb + k->off)))
				return (0);
			break;
		case INI_GROUP:
			if (!str_eq(*(char *const *)(pa + k->off),
			    *(char *const *)(pb + k->off)) ||
			    *(const gid_t *)(pa + k->off2) !=
			    *(const gid_t *)(pb + k->off2))
				return (0);
			break;
		case INI_USER:
			if (!str_eq(*(char *const *)(pa + k->off),
			    *(char *const *)(pb + k->off)) ||
			    *(const uid_t *)(pa + k->off2) !=
			    *(const uid_t *)(pb + k->off2))
				return (0);
			break;
		case INI_LIST:
			n = *(const unsigned int *)(pa + k->off2);
			if (n != *(const unsigned int *)(pb + k->off2))
				return (0);
			for (j = 0; j < n; j++)
				if (strcmp((*(char **const *)(pa + k->off))[j],
				    (*(char **const *)(pb + k->off))[j]) != 0)
					return (0);
			break;
		case INI_DURATION:
		case INI_SIZE:
		case INI_UINT:
			if (*(const uint64_t *)(pa + k->off) !=
			    *(const uint64_t *)(pb + k->off))
				return (0);
			break;
		case INI_MODE:
			if (*(const mode_t *)(pa + k->off) !=
			    *(const mode_t *)(pb + k->off))
				return (0);
			break;
		case INI_BOOL:
		case INI_LOGLEVEL:
		case INI_ENUM:
			if (*(const int *)(pa + k->off) !=
			    *(const int *)(pb + k->off))
				return (0);
			break;
		}
	}
	return (1);
}

void
ini_free(const struct ini_section *sec, void *obj)
{
	char	*base = obj;
	size_t	 i;

	for (i = 0; i < sec->nkeys; i++) {
		switch (sec->keys[i].kind) {
		case INI_LIST: {
			char		***list = (char ***)(base +
			    sec->keys[i].off);
			unsigned int	  *count = (unsigned int *)(base +
			    sec->keys[i].off2), j;

			for (j = 0; j < *count; j++)
				free((*list)[j]);
			free(*list);
			*list = NULL;
			*count = 0;
			break;
		}
		case INI_STRING:
		case INI_PATH:
		case INI_USER:
		case INI_GROUP:
			free(*(char **)(base + sec->keys[i].off));
			*(char **)(base + sec->keys[i].off) = NULL;
			break;
		default:
			break;
		}
	}
}

int
ini_keyline(const struct ini_section *sec, const int *keylines,
    const char *key)
{
	const struct ini_key	*k;

	k = bsearch(key, sec->keys, sec->nkeys, sizeof *sec->keys, key_cmp);
	return (k != NULL ? keylines[k - sec->keys] : 0);
}

static char *
trim(char *s, char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return (s);
}

static int
valid_name(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return (0);
	}
	return (1);
}

struct cursec {
	const struct ini_section	*type;
	void				*obj;
	int				 line;
	int				*keyline;	/* per key, 0 if unset */
	char				**raw;		/* per key, as written */
	char				*name;		/* NULL if unnamed */
};

/* The section whose check callback runs now, for ini_written(). */
static const struct cursec *checking;

const char *
ini_written(const struct ini_section *sec, const int *keylines,
    const char *key)
{
	const struct ini_key	*k;

	/* sec may be a copy of the table entry (config.c sorts copies) */
	if (checking == NULL || checking->type->keys != sec->keys ||
	    checking->keyline != keylines)
		return (NULL);
	k = bsearch(key, sec->keys, sec->nkeys, sizeof *sec->keys, key_cmp);
	return (k != NULL ? checking->raw[k - sec->keys] : NULL);
}

static void
close_section(struct cursec *cs, const char *file, void *ctx,
    struct config_errors *errs)
{
	size_t	i;

	if (cs->type == NULL)
		return;
	for (i = 0; i < cs->type->nkeys; i++) {
		if ((cs->type->keys[i].flags & INI_REQUIRED) &&
		    cs->keyline[i] == 0)
			ini_error(errs, file, cs->line,
			    "[%s%s%s] is missing the required key '%s'",
			    cs->type->name, cs->name ? " " : "",
			    cs->name ? cs->name : "", cs->type->keys[i].name);
	}
	if (cs->type->check != NULL && cs->obj != NULL) {
		checking = cs;
		cs->type->check(ctx, cs->obj, file, cs->line, cs->keyline,
		    errs);
		checking = NULL;
	}
	for (i = 0; i < cs->type->nkeys; i++)
		free(cs->raw[i]);
	free(cs->raw);
	free(cs->keyline);
	free(cs->name);
	memset(cs, 0, sizeof *cs);
}

static void
open_section(struct cursec *cs, char *hdr, int line, const char *file,
    const struct ini_section *types, size_t ntypes, void *ctx,
    struct seen **seen, size_t *nseen, struct config_errors *errs)
{
	char		*type, *name, *p;
	const char	*hint;
	size_t		 i;

	type = hdr;
	for (p = hdr; *p != '\0' && !isspace((unsigned char)*p); p++)
		;
	name = NULL;
	if (*p != '\0') {
		*p++ = '\0';
		name = trim(p, p + strlen(p));
		if (*name == '"' && strlen(name) >= 2 &&
		    name[strlen(name) - 1] == '"') {
			name[strlen(name) - 1] = '\0';
			name++;
		}
	}
	for (i = 0; i < ntypes; i++) {
		if (strcmp(types[i].name, type) == 0)
			break;
	}
	if (i == ntypes) {
		char	known[256] = "";
		size_t	off = 0;

		for (i = 0; i < ntypes && off < sizeof known; i++)
			off += (size_t)snprintf(known + off, sizeof known - off,
			    "%s%s", i > 0 ? ", " : "", types[i].name);
		if ((hint = suggest(type, types, ntypes,
		    sizeof *types)) != NULL)
			ini_error(errs, file, line, "unknown section [%s]; did "
			    "you mean [%s%s%s]?", type, hint, name ? " " : "",
			    name ? name : "");
		else
			ini_error(errs, file, line, "unknown section [%s] "
			    "(known sections: %s)", type, known);
		return;
	}
	if (types[i].named && (name == NULL || *name == '\0')) {
		ini_error(errs, file, line,
		    "section [%s] needs a name, as in [%s NAME]", type, type);
		return;
	}
	if (!types[i].named && name != NULL) {
		ini_error(errs, file, line, "section [%s] takes no name",
		    type);
		return;
	}
	if (name != NULL && !valid_name(name)) {
		ini_error(errs, file, line, "invalid name '%s': use letters, "
		    "digits, '-', '_' and '.'", name);
		return;
	}
	for (i = 0; i < *nseen; i++) {
		if (strcmp((*seen)[i].type, type) == 0 &&
		    ((name == NULL && (*seen)[i].name == NULL) ||
		    (name != NULL && (*seen)[i].name != NULL &&
		    strcmp((*seen)[i].name, name) == 0))) {
			ini_error(errs, file, line, "duplicate section [%s%s%s]"
			    " (first defined on line %d)", type,
			    name ? " " : "", name ? name : "",
			    (*seen)[i].line);
			return;
		}
	}
	for (i = 0; strcmp(types[i].name, type) != 0; i++)
		;
	*seen = xreallocarray(*seen, *nseen + 1, sizeof **seen);
	(*seen)[*nseen].type = types[i].name;
	(*seen)[*nseen].name = name ? xstrdup(name) : NULL;
	(*seen)[*nseen].line = line;
	(*nseen)++;

	cs->type = &types[i];
	cs->line = line;
	cs->keyline = xcalloc(types[i].nkeys + 1, sizeof *cs->keyline);
	cs->raw = xcalloc(types[i].nkeys + 1, sizeof *cs->raw);
	cs->obj = types[i].open(ctx, name);
	cs->name = name != NULL ? xstrdup(name) : NULL;
}

int
ini_parse(const char *file, const char *buf, size_t len,
    const struct ini_section *types, size_t ntypes, void *ctx,
    struct config_errors *errs)
{
	struct cursec		 cs;
	struct seen		*seen = NULL;
	size_t			 nseen = 0, i;
	const struct ini_key	*k;
	char			*copy, *line, *next, *eq, *key, *value, *end;
	char			 msgbuf[512];
	const char		*msg;
	int			 lineno = 0, sawheader = 0;
	unsigned int		 before = errs->n;

	for (i = 0; i < ntypes; i++) {
		for (size_t j = 1; j < types[i].nkeys; j++) {
			if (strcmp(types[i].keys[j - 1].name,
			    types[i].keys[j].name) >= 0)
				fatalx("ini: keys of [%s] not sorted at %s",
				    types[i].name, types[i].keys[j].name);
		}
	}
	memset(&cs, 0, sizeof cs);
	copy = xmalloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = '\0';

	for (line = copy; line <= copy + len; line = next) {
		lineno++;
		if ((end = memchr(line, '\n', (size_t)(copy + len - line))) ==
		    NULL)
			end = copy + len;
		*end = '\0';
		next = end + 1;
		if (memchr(line, '\0', (size_t)(end - line)) != NULL) {
			ini_error(errs, file, lineno, "NUL byte in line");
			continue;
		}
		line = trim(line, line + strlen(line));
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;

		if (*line == '[') {
			close_section(&cs, file, ctx, errs);
			sawheader = 1;
			end = strchr(line, ']');
			if (end == NULL || end[1] != '\0') {
				ini_error(errs, file, lineno,
				    "malformed section header: expected "
				    "[type] or [type NAME]");
				continue;
			}
			line = trim(line + 1, end);
			open_section(&cs, line, lineno, file, types, ntypes,
			    ctx, &seen, &nseen, errs);
			continue;
		}

		if ((eq = strchr(line, '=')) == NULL) {
			ini_error(errs, file, lineno, "expected 'key = value', "
			    "a [section] header or a comment");
			continue;
		}
		key = trim(line, eq);
		value = trim(eq + 1, eq + 1 + strlen(eq + 1));
		if (*key == '\0') {
			ini_error(errs, file, lineno, "missing key before '='");
			continue;
		}
		if (cs.type == NULL) {
			/* after a bad header: the error was reported there */
			if (!sawheader)
				ini_error(errs, file, lineno,
				    "key '%s' outside a section", key);
			continue;
		}
		k = bsearch(key, cs.type->keys, cs.type->nkeys,
		    sizeof *cs.type->keys, key_cmp);
		if (k == NULL) {
			msg = suggest(key, cs.type->keys, cs.type->nkeys,
			    sizeof *cs.type->keys);
			ini_error(errs, file, lineno, "unknown key '%s' in "
			    "[%s%s%s]%s%s%s", key, cs.type->name,
			    cs.name ? " " : "", cs.name ? cs.name : "",
			    msg ? "; did you mean '" : "", msg ? msg : "",
			    msg ? "'?" : "");
			continue;
		}
		i = (size_t)(k - cs.type->keys);
		if (cs.keyline[i] != 0 && k->kind != INI_LIST) {
			ini_error(errs, file, lineno, "duplicate key '%s' "
			    "(first set on line %d)", key, cs.keyline[i]);
			continue;
		}
		cs.keyline[i] = lineno;
		if (*value == '"' && strlen(value) >= 2 &&
		    value[strlen(value) - 1] == '"') {
			value[strlen(value) - 1] = '\0';
			value++;
		}
		if (*value == '\0' && k->kind != INI_STRING) {
			ini_error(errs, file, lineno, "empty value for '%s': "
			    "expected %s", key, kind_hint(k->kind));
			continue;
		}
		if (cs.obj == NULL)
			continue;
		free(cs.raw[i]);
		cs.raw[i] = xstrdup(value);
		if ((msg = ini_set(k, cs.obj, value, msgbuf,
		    sizeof msgbuf)) != NULL)
			ini_error(errs, file, lineno, "%s: %s%s", key, msg,
			    has_trailing_comment(value) ? " (comments go on "
			    "their own line: '#' after a value is part of "
			    "it)" : "");
	}
	close_section(&cs, file, ctx, errs);

	for (i = 0; i < nseen; i++)
		free(seen[i].name);
	free(seen);
	free(copy);
	return (errs->n == before ? 0 : -1);
}

const char *
ini_validate_readable(const char *value, char *buf, size_t len)
{
	if (value[0] != '/') {
		snprintf(buf, len, "must be an absolute path");
		return (buf);
	}
	if (access(value, R_OK) != 0) {
		snprintf(buf, len, "cannot read %s: %s", value,
		    strerror(errno));
		return (buf);
	}
	return (NULL);
}
