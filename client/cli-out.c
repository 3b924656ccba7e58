/*
 * The output module: everything opsd-cli prints about a result goes
 * through here, so that --json, tables, key/value blocks and the way
 * sizes and times read are decided in one place. Commands hand over the
 * decoded result; with --json it is printed as the daemon sent it and the
 * command's own printer is never called.
 *
 * Tables are buffered so that a column can be as wide as its widest cell;
 * a column with a fixed width behaves like printf's "%-8s" (a longer cell
 * pushes the rest of its row to the right) and the last column is never
 * padded, so no line ends in blanks.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "opsd-proto.h"

#define OUT_KEY_WIDTH	14
#define OUT_REAL_DIGITS	3	/* decimals of a real shown as JSON */

const char *
out_str(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return (json_is_string(v) ? json_string_value(v) : "-");
}

long long
out_int(json_t *o, const char *key)
{
	return ((long long)json_integer_value(json_object_get(o, key)));
}

double
out_real(json_t *o, const char *key)
{
	return (json_number_value(json_object_get(o, key)));
}

int
out_true(json_t *o, const char *key)
{
	return (json_is_true(json_object_get(o, key)));
}

static int	out_utc;

/* --utc: times in UTC rather than the local zone. */
void
out_set_utc(int on)
{
	out_utc = on;
}

/*
 * "2026-11-27T23:54:57Z" -> "2026-11-28 00:54:57 +0100" in the local zone
 * (TZ), or "2026-11-27 23:54:57 UTC" with --utc or where the local zone is
 * UTC: a time is never printed without its zone. A number is taken as
 * Unix time (the secrets' results carry those). Anything else the daemon
 * sends (null, another format) is printed as it came, "-" for none.
 * Several may appear in one printf.
 */
const char *
out_when(json_t *o, const char *key)
{
	static char	 bufs[4][48];
	static int	 next;
	char		*buf = bufs[next++ % 4];
	json_t		*v = json_object_get(o, key);
	const char	*s = out_str(o, key), *end;
	struct tm	 tm;
	time_t		 t;
	double		 d;

	snprintf(buf, sizeof bufs[0], "%s", s);
	memset(&tm, 0, sizeof tm);
	if (json_is_number(v)) {
		d = json_number_value(v);
		/* beyond year 9999 or before 1970: as it came */
		if (!isfinite(d) || d < 0 || d > 253402300799.0) {
			snprintf(buf, sizeof bufs[0], "%.0f", d);
			return (buf);
		}
		t = (time_t)d;
	} else if (strlen(s) != 20 || (end = strptime(s,
	    "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return (buf);
	else
		t = timegm(&tm);
	if (out_utc) {
		if (gmtime_r(&t, &tm) == NULL)
			return (buf);
	} else if (localtime_r(&t, &tm) == NULL)
		return (buf);
	if (out_utc || tm.tm_gmtoff == 0)
		strftime(buf, sizeof bufs[0], "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		strftime(buf, sizeof bufs[0], "%Y-%m-%d %H:%M:%S %z", &tm);
	return (buf);
}

void
out_bytes(double n, char *buf, size_t len)
{
	const char	*u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int		 i = 0;

	/* 1048575 bytes is "1.0 MiB", not "1024.0 KiB" */
	while (i < 4 && (n >= 1024 || n >= (i > 0 ? 1023.95 : 1023.5))) {
		n /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", n, u[i]);
}

void
out_uptime(long long s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh %lldm", s / 86400,
		    s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%llds", s);
}

/* --- JSON ---------------------------------------------------------------- */

/* A result on one line, for scripts. */
void
out_json_result(json_t *v)
{
	char	*s;

	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
	    JSON_REAL_PRECISION(10));
	printf("%s\n", s != NULL ? s : "null");
	free(s);
}

/*
 * For a person, a measurement such as 0.19712345 seconds reads 0.197:
 * every real rounded to OUT_REAL_DIGITS decimals, in place. --json never
 * comes here and keeps the daemon's values.
 */
static void
out_round_reals(json_t *v)
{
	const char	*key;
	json_t		*x;
	size_t		 i;
	double		 d, m = 1;

	for (i = 0; i < OUT_REAL_DIGITS; i++)
		m *= 10;
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (isfinite(d) && fabs(d) < 1e15 / m)
			json_real_set(v, round(d * m) / m);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, x)
			out_round_reals(x);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			out_round_reals(x);
	}
}

/* A printer for results best read as the JSON itself (manifests). */
int
out_show_json(json_t *v)
{
	char	*s;

	out_round_reals(v);
	s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY |
	    JSON_REAL_PRECISION(15));
	printf("%s\n", s != NULL ? s : "null");
	free(s);
	return (EXIT_OK);
}

/* A whole message (error object, notification) echoed on one line. */
void
out_json_message(json_t *v)
{
	char	*s;

	s = json_dumps(v, JSON_COMPACT);
	printf("%s\n", s != NULL ? s : "null");
	fflush(stdout);
	free(s);
}

/* --json: the result as is; otherwise the command's printer. */
int
out_result(struct cli *cli, json_t *result, int (*show)(json_t *))
{
	if (cli->json || show == NULL) {
		out_json_result(result);
		return (EXIT_OK);
	}
	return (show(result));
}

int
out_rpc_error(struct cli *cli, json_t *reply, const char *method, int code,
    const char *message)
{
	json_t	*err, *v;
	size_t	 i;

	err = json_object_get(reply, "error");
	if (cli->json) {
		out_json_message(err);
		return (EXIT_RPC);
	}
	fprintf(stderr, "opsd-cli: %s: %s (%s, %d)\n", method, out_clean(message),
	    rpc_error_name(code), code);
	/* a rejected reload lists its configuration errors */
	json_array_foreach(json_object_get(json_object_get(err, "data"),
	    "errors"), i, v)
		fprintf(stderr, "  %s\n", out_clean(json_string_value(v)));
	return (EXIT_RPC);
}

/*
 * Text from the daemon (a reason, a pg_dump error) may hold line breaks
 * and other control characters, and libpq's messages come with runs of
 * blanks ("FATAL:  password authentication failed") and a final newline:
 * on one line of a table, a key/value block or a message, each run of
 * blanks and control characters becomes one space and none is left at
 * either end, so a message never breaks the layout or moves the
 * terminal's cursor.
 */
static void
out_flatten(char *s)
{
	char	*w = s, *start = s;
	int	 blank = 0;

	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
			blank = 1;
			continue;
		}
		if (blank && w != start)
			*w++ = ' ';
		blank = 0;
		*w++ = *s;
	}
	*w = '\0';
}

/*
 * The same for text printed on a line of its own; the result lasts
 * until the 4th call after, so several may appear in one printf.
 */
const char *
out_clean(const char *s)
{
	static char	*bufs[4];
	static int	 next;
	char		**buf = &bufs[next++ % 4];
	size_t		 len;

	if (s == NULL)
		s = "-";
	len = strlen(s);

	free(*buf);
	*buf = xmalloc(len + 1);
	memcpy(*buf, s, len + 1);
	out_flatten(*buf);
	return (*buf);
}

/* --- key/value blocks ---------------------------------------------------- */

void
out_kv(const char *key, const char *fmt, ...)
{
	va_list	 ap;
	char	*v;

	va_start(ap, fmt);
	v = xvasprintf(fmt, ap);
	va_end(ap);
	out_flatten(v);
	printf("%-*s%s\n", OUT_KEY_WIDTH, key, v);
	free(v);
}

/* --- tables -------------------------------------------------------------- */

struct out_row {
	char		**cells;	/* ncols, NULL where none was given */
	char		**notes;	/* lines printed under the row */
	size_t		  nnotes;
	size_t		 *note_col;
};

struct out_table {
	const struct out_col	*cols;
	size_t			 ncols;
	const char		*indent;
	struct out_row		*rows;
	size_t			 nrows;
	size_t			 ncell;		/* next cell of the last row */
	int			*width;
};

struct out_table *
out_table_new(const struct out_col *cols, size_t ncols, const char *indent)
{
	struct out_table	*t;
	size_t			 i;

	t = xmalloc(sizeof *t);
	memset(t, 0, sizeof *t);
	t->cols = cols;
	t->ncols = ncols;
	t->indent = indent != NULL ? indent : "";
	t->width = xmalloc(ncols * sizeof *t->width);
	for (i = 0; i < ncols; i++) {
		t->width[i] = cols[i].width;
		/* a column of "-" still sits under its title */
		if ((cols[i].flags & OUT_GROW) &&
		    (int)strlen(cols[i].title) > t->width[i])
			t->width[i] = (int)strlen(cols[i].title);
	}
	return (t);
}

void
out_table_row(struct out_table *t)
{
	struct out_row	*r;

	t->rows = xrealloc(t->rows, (t->nrows + 1) * sizeof *t->rows);
	r = &t->rows[t->nrows++];
	memset(r, 0, sizeof *r);
	r->cells = xmalloc(t->ncols * sizeof *r->cells);
	memset(r->cells, 0, t->ncols * sizeof *r->cells);
	t->ncell = 0;
}

void
out_table_cell(struct out_table *t, const char *fmt, ...)
{
	struct out_row	*r;
	va_list		 ap;
	int		 n;

	/* a printer that adds more cells than columns is broken */
	if (t->nrows == 0 || t->ncell >= t->ncols)
		abort();
	r = &t->rows[t->nrows - 1];
	va_start(ap, fmt);
	r->cells[t->ncell] = xvasprintf(fmt, ap);
	va_end(ap);
	out_flatten(r->cells[t->ncell]);
	if (*r->cells[t->ncell] == '\0') {
		free(r->cells[t->ncell]);
		r->cells[t->ncell] = xmalloc(2);
		memcpy(r->cells[t->ncell], "-", 2);
	}
	n = (int)strlen(r->cells[t->ncell]);
	if ((t->cols[t->ncell].flags & OUT_GROW) && n > t->width[t->ncell])
		t->width[t->ncell] = n;
	t->ncell++;
}

/* A line under the current row that starts where column col starts. */
void
out_table_note(struct out_table *t, size_t col, const char *fmt, ...)
{
	struct out_row	*r;
	va_list		 ap;

	if (t->nrows == 0)
		abort();
	r = &t->rows[t->nrows - 1];
	r->notes = xrealloc(r->notes, (r->nnotes + 1) * sizeof *r->notes);
	r->note_col = xrealloc(r->note_col, (r->nnotes + 1) *
	    sizeof *r->note_col);
	va_start(ap, fmt);
	r->notes[r->nnotes] = xvasprintf(fmt, ap);
	va_end(ap);
	out_flatten(r->notes[r->nnotes]);
	r->note_col[r->nnotes++] = col;
}

static void
out_table_line(struct out_table *t, const char *const *cells)
{
	const struct out_col	*c;
	const char		*s;
	size_t			 i;

	fputs(t->indent, stdout);
	for (i = 0; i < t->ncols; i++) {
		c = &t->cols[i];
		s = cells[i] != NULL ? cells[i] : "";
		if (i > 0)
			fputs("  ", stdout);
		if (i + 1 == t->ncols)
			fputs(s, stdout);
		else if (c->flags & OUT_RIGHT)
			printf("%*s", t->width[i], s);
		else
			printf("%-*s", t->width[i], s);
	}
	putchar('\n');
}

/* Prints the table (with its titles if header) and frees it. */
void
out_table_print(struct out_table *t, int header)
{
	const char	**titles;
	struct out_row	 *r;
	size_t		  i, j, k;
	int		  pad;

	if (header) {
		titles = xmalloc(t->ncols * sizeof *titles);
		for (i = 0; i < t->ncols; i++)
			titles[i] = t->cols[i].title;
		out_table_line(t, titles);
		free(titles);
	}
	for (i = 0; i < t->nrows; i++) {
		r = &t->rows[i];
		out_table_line(t, (const char *const *)r->cells);
		for (j = 0; j < r->nnotes; j++) {
			pad = 0;
			for (k = 0; k < r->note_col[j] && k < t->ncols; k++)
				pad += t->width[k] + 2;
			printf("%s%*s%s\n", t->indent, pad, "", r->notes[j]);
			free(r->notes[j]);
		}
		for (j = 0; j < t->ncols; j++)
			free(r->cells[j]);
		free(r->cells);
		free(r->notes);
		free(r->note_col);
	}
	free(t->rows);
	free(t->width);
	free(t);
}
