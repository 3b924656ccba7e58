/*
 * The status page (status.h). One document, two renderings: the JSON for
 * scripts and the HTML for people, the latter written from the former so
 * that a column the page shows is always a member a script can read.
 *
 * The HTML is one table per section with a small inline stylesheet and no
 * script at all; below 700 px the rows become cards (each cell labelled
 * by its column), so nothing is wider than a phone's screen. The
 * stylesheet's hash goes in the Content-Security-Policy, so the page needs
 * no 'unsafe-inline' and nothing injected could style or script it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "config.h"
#include "daemon.h"
#include "op.h"
#include "status.h"
#include "subsys.h"
#include "util.h"

#define STATUS_OPS	10	/* operations shown */

static const char stylesheet[] =
    ":root{color-scheme:light dark;--ok:#1a7f37;--warn:#9a6700;"
    "--crit:#cf222e;--unk:#6e7781;--line:#d0d7de}"
    "*{box-sizing:border-box}"
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;padding:1em;"
    "max-width:1400px}"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 "
    ".4em}h2 small{font-weight:normal;color:var(--unk)}"
    "p.meta{margin:0;color:var(--unk)}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid "
    "var(--line);vertical-align:top;overflow-wrap:break-word}"
    "td.w{overflow-wrap:anywhere}"
    "th{font-weight:600;white-space:nowrap}"
    "tr.critical td:first-child{border-left:4px solid var(--crit)}"
    "tr.warning td:first-child{border-left:4px solid var(--warn)}"
    "tr.ok td:first-child{border-left:4px solid var(--ok)}"
    "tr.unknown td:first-child{border-left:4px solid var(--unk)}"
    ".badge{display:inline-block;padding:0 .5em;border-radius:.8em;"
    "color:#fff;font-weight:600}"
    ".b-ok{background:var(--ok)}.b-warning{background:var(--warn)}"
    ".b-critical{background:var(--crit)}.b-unknown{background:var(--unk)}"
    "ul.problems{padding-left:1.2em;color:var(--crit);font-weight:600}"
    "ul.counts{padding-left:1.2em}"
    ".spark{font-family:monospace;letter-spacing:-1px;white-space:nowrap}"
    ".s-ok{color:var(--ok)}.s-bad{color:var(--crit)}.s-unk{color:var(--unk)}"
    ".empty{color:var(--unk)}"
    "@media (max-width:700px){table,tbody,tr,td{display:block;width:100%}"
    "thead{display:none}tr{border:1px solid var(--line);margin:.5em 0;"
    "padding:.2em 0}td{border:0;padding:.1em .5em}"
    "td::before{font-weight:600}"
    "tr.critical td:first-child,tr.warning td:first-child,"
    "tr.ok td:first-child,tr.unknown td:first-child{border-left:0}"
    "tr.critical{border-left:4px solid var(--crit)}"
    "tr.warning{border-left:4px solid var(--warn)}"
    "tr.ok{border-left:4px solid var(--ok)}"
    "tr.unknown{border-left:4px solid var(--unk)}"
    ".spark{white-space:normal;overflow-wrap:anywhere}}";

/* When each of scratches[] was rendered, for status_cache. */
static struct {
	int		valid;
	uint64_t	at;		/* now_usec() */
	unsigned int	reloads;
} cache[2];

/* 'sha256-...' of the stylesheet, for the CSP; computed once */
static char sheet_hash[64];

json_t *
status_section(const char *title, const char *empty)
{
	return (json_pack("{s:s, s:s, s:[]}", "title", title, "empty", empty,
	    "items"));
}

void
status_iso(int64_t t, char *buf, size_t len)
{
	static int64_t	last_t[8];
	static char	last[8][32];
	unsigned int	k = (unsigned int)((uint64_t)t % 8);

	if (t <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (last_t[k] != t) {
		util_iso_time(t, last[k], sizeof last[k]);
		last_t[k] = t;
	}
	snprintf(buf, len, "%s", last[k]);
}

void
status_age(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 120)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm", (long long)s / 60);
	else if (s < 72 * 3600)
		snprintf(buf, len, "%lldh", (long long)s / 3600);
	else
		snprintf(buf, len, "%lldd", (long long)s / 86400);
}

/* --- the document ------------------------------------------------------- */

static json_t *
ops_section(struct opsd *o)
{
	json_t	*sec, *list, *ops, *op, *items;
	size_t	 i;

	sec = status_section("Recent operations", "no operations yet");
	items = json_object_get(sec, "items");
	list = op_journal_list(o, NULL, NULL, STATUS_OPS);
	ops = json_object_get(list, "ops");
	json_array_foreach(ops, i, op) {
		const char *st = json_string_value(json_object_get(op,
		    "state"));

		json_object_set_new(op, "level", json_string(st == NULL ?
		    "unknown" : strcmp(st, "ok") == 0 ? "ok" :
		    strcmp(st, "running") == 0 ? "unknown" :
		    strcmp(st, "failed") == 0 ? "critical" : "warning"));
		json_array_append(items, op);
	}
	json_decref(list);
	return (sec);
}

/* 2 critical, 1 warning, 0 else */
static int
level_rank(const char *l)
{
	if (l == NULL)
		return (0);
	return (strcmp(l, "critical") == 0 ? 2 : strcmp(l, "warning") == 0);
}

/*
 * The summary: the problems the sections' items (and sections) carry, the
 * critical ones first, and the worst level among them. Each room judges
 * its items as its health callback does and words the problem the same
 * way, so the page and opsd.health agree without a second walk over
 * every object (which, at 1,000 probes, cost more than the page).
 */
static void
summary(struct opsd *o, json_t *doc, json_t *secs)
{
	static const char *const words[] = { "ok", "warning", "critical" };
	json_t		*problems = json_array(), *counts = json_object();
	json_t		*sec, *it, *crit;
	const char	*key, *l, *p;
	size_t		 i;
	int		 worst = 0, lv, n[4];
	char		*s;

	if (!o->last_reload_ok) {
		if (o->reload_errors != NULL && o->reload_errors->n > 0)
			xasprintf(&s, "reload failed: %s%s",
			    o->reload_errors->v[0], o->reload_errors->n > 1 ?
			    " (and more)" : "");
		else
			s = xstrdup("reload failed; running the previous "
			    "configuration");
		json_array_append_new(problems, util_jstring(s));
		free(s);
		worst = 1;
	}
	crit = json_array();
	json_object_foreach(secs, key, sec) {
		l = json_string_value(json_object_get(sec, "level"));
		p = json_string_value(json_object_get(sec, "problem"));
		lv = level_rank(l);
		if (p != NULL && lv > 0) {
			json_array_append_new(lv == 2 ? crit : problems,
			    json_string(p));
			if (lv > worst)
				worst = lv;
		}
		memset(n, 0, sizeof n);
		json_array_foreach(json_object_get(sec, "items"), i, it) {
			lv = level_rank(l = json_string_value(
			    json_object_get(it, "level")));
			n[l == NULL ? 3 : lv > 0 ? lv : strcmp(l, "ok") == 0 ?
			    0 : 3]++;
			if (lv == 0 || (p = json_string_value(
			    json_object_get(it, "problem"))) == NULL)
				continue;
			json_array_append_new(lv == 2 ? crit : problems,
			    json_string(p));
			if (lv > worst)
				worst = lv;
		}
		if (json_array_size(json_object_get(sec, "items")) > 0)
			json_object_set_new(counts, key, json_pack("{s:i, s:i, "
			    "s:i, s:i}", "ok", n[0], "warning", n[1],
			    "critical", n[2], "unknown", n[3]));
	}
	/* the critical ones first, each kind in registry order */
	json_array_extend(crit, problems);
	json_decref(problems);
	problems = crit;
	json_object_set_new(doc, "status", json_string(words[worst]));
	json_object_set_new(doc, "problems", problems);
	json_object_set_new(doc, "counts", counts);
}

json_t *
status_json(struct opsd *o)
{
	json_t		*doc, *secs, *s;
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 host[256], zone[16], off[8], at[32];
	unsigned int	 i;

	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	localtime_r(&now, &tm);
	strftime(zone, sizeof zone, "%Z", &tm);
	strftime(off, sizeof off, "%z", &tm);
	util_iso_time((int64_t)now, at, sizeof at);
	secs = json_object();
	for (i = 0; i < SUBSYS_N; i++) {
		if (subsys_table[i]->status == NULL)
			continue;
		if ((s = subsys_table[i]->status(o)) != NULL)
			json_object_set_new(secs, subsys_table[i]->name, s);
	}
	json_object_set_new(secs, "operations", ops_section(o));
	doc = json_pack("{s:o, s:s, s:s, s:s, s:s}", "host", util_jstring(host),
	    "version", OPSD_VERSION, "generated", at, "timezone", zone,
	    "utc_offset", off);
	summary(o, doc, secs);
	json_object_set_new(doc, "sections", secs);
	return (doc);
}

/* --- HTML ----------------------------------------------------------------- */

/*
 * The page is made of some 60,000 small pieces for 1,000 probes: they go
 * into one growing buffer, handed to libevent once, since an evbuffer
 * call per piece was a good part of a render's time.
 */
struct sb {
	char	*p;
	size_t	 len, cap;
};

#define SBLIT(b, s)	sb_add((b), (s), sizeof (s) - 1)

/*
 * The buffer is kept from one page to the next: a new one of half a
 * megabyte a render came from mmap() (past M_MMAP_THRESHOLD) and was paid
 * again in page faults, and its growth made malloc consolidate its free
 * lists every time.
 */
static struct sb	scratches[2];	/* the HTML, the JSON */

/* a page of a few probes after one of thousands: give the memory back */
static void
scratch_trim(struct sb *b)
{
	if (b->cap > 4 * b->len && b->cap > 1024 * 1024) {
		free(b->p);
		memset(b, 0, sizeof *b);
	}
}

static void
sb_grow(struct sb *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	while (b->len + n > b->cap)
		b->cap = b->cap == 0 ? 64 * 1024 : b->cap * 2;
	b->p = xreallocarray(b->p, b->cap, 1);
}

static void
sb_add(struct sb *b, const char *s, size_t n)
{
	sb_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
sb_printf(struct sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	sb_grow(b, 128);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		sb_grow(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void
esc(struct sb *b, const char *s)
{
	const char	*p;

	if (s == NULL)
		return;
	for (p = s; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			SBLIT(b, "&amp;");
			break;
		case '<':
			SBLIT(b, "&lt;");
			break;
		case '>':
			SBLIT(b, "&gt;");
			break;
		case '"':
			SBLIT(b, "&quot;");
			break;
		case '\'':
			SBLIT(b, "&#39;");
			break;
		default:
			/* runs of plain bytes in one call */
			{
				size_t n = strcspn(p, "&<>\"'");

				sb_add(b, p, n);
				p += n - 1;
			}
		}
	}
}

static int
digits(const char *s, int n)
{
	int	v = 0;

	for (; n > 0; n--, s++) {
		if (*s < '0' || *s > '9')
			return (-1);
		v = v * 10 + (*s - '0');
	}
	return (v);
}

/* Days since 1970-01-01 of a date of the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t	era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

/*
 * "1999-12-31T23:59:59Z" exactly: the form times take in the document.
 * By hand, not sscanf() and timegm(): a page has thousands of them.
 */
static int
iso_time(const char *s, size_t len, time_t *t)
{
	int	y, mo, d, h, mi, se;

	if (len != 20 || s[0] < '0' || s[0] > '9' || s[4] != '-' ||
	    s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != 'Z')
		return (0);
	if ((y = digits(s, 4)) < 0 || (mo = digits(s + 5, 2)) < 1 ||
	    mo > 12 || (d = digits(s + 8, 2)) < 1 || d > 31 ||
	    (h = digits(s + 11, 2)) < 0 || h > 23 ||
	    (mi = digits(s + 14, 2)) < 0 || mi > 59 ||
	    (se = digits(s + 17, 2)) < 0 || se > 60)
		return (0);
	*t = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
	    se);
	return (1);
}

/*
 * The times of one render, converted once each: 1,000 probes that run on
 * the same few-second grid share a handful of distinct seconds.
 */
#define TCACHE	32
static struct {
	time_t	t;
	int	used;
	char	text[96];
	size_t	len;
} tcache[TCACHE];

static void
local_time(struct sb *b, const char *iso, time_t t)
{
	struct tm	 tm;
	char		 buf[64];
	unsigned int	 k = (unsigned int)((uint64_t)t % TCACHE);
	int		 n;

	if (!tcache[k].used || tcache[k].t != t) {
		localtime_r(&t, &tm);
		strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
		/* iso has been checked: digits and punctuation only */
		n = snprintf(tcache[k].text, sizeof tcache[k].text,
		    "<time datetime=\"%s\">%s</time>", iso, buf);
		tcache[k].len = n > 0 && (size_t)n < sizeof tcache[k].text ?
		    (size_t)n : 0;
		tcache[k].t = t;
		tcache[k].used = 1;
	}
	sb_add(b, tcache[k].text, tcache[k].len);
}

/*
 * "history": one character a run, oldest first, '+' passed, '-' failed,
 * anything else no result. Drawn as ▆ and ▁ in runs of one colour.
 */
static void
sparkline(struct sb *b, const char *h)
{
	static const char *const cls[] = { "s-unk", "s-ok", "s-bad" };
	static const char *const glyph[] = { "\xc2\xb7", "\xe2\x96\x86",
	    "\xe2\x96\x81" };
	int	 cur = -1, k;

	SBLIT(b, "<span class=\"spark\" role=\"img\" aria-label=\"recent "
	    "results, oldest first\">");
	for (; *h != '\0'; h++) {
		k = *h == '+' ? 1 : *h == '-' ? 2 : 0;
		if (k != cur) {
			if (cur >= 0)
				SBLIT(b, "</span>");
			sb_printf(b, "<span class=\"%s\">", cls[k]);
			cur = k;
		}
		sb_add(b, glyph[k], strlen(glyph[k]));
	}
	if (cur >= 0)
		SBLIT(b, "</span>");
	SBLIT(b, "</span>");
}

/* --- rows kept from one page to the next -------------------------------- */

/*
 * An item's row of the page and its JSON text, kept while the item is:
 * the probes keep their items from page to page while they have not run
 * (probe-subsys.c), so a page of 1,000 probes writes only the few that
 * changed. The table holds a reference to each item, so an item's
 * address cannot be another's while its row is here; a row not used by
 * the last two pages is dropped, with its reference.
 */
struct row {
	json_t		*item;
	uint64_t	 sig;		/* of the columns its HTML is for */
	unsigned int	 used;		/* the page that used it last */
	char		*html;
	size_t		 hlen;
	char		*json;
	size_t		 jlen;
};

static struct row	*rowtab;
static size_t		 rowcap, nrows;	/* rowcap: 0 or a power of 2 */
static unsigned int	 pages;

static size_t
row_hash(const void *p)
{
	uint64_t	x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return ((size_t)x);
}

static void
row_free(struct row *r)
{
	json_decref(r->item);
	free(r->html);
	free(r->json);
	memset(r, 0, sizeof *r);
}

/* Into a table of cap slots, without the rows older than two pages. */
static void
rows_rebuild(size_t cap)
{
	struct row	*old = rowtab;
	size_t		 oldcap = rowcap, i, j;

	rowtab = xcalloc(cap, sizeof *rowtab);
	rowcap = cap;
	nrows = 0;
	for (i = 0; i < oldcap; i++) {
		if (old[i].item == NULL)
			continue;
		if (old[i].used + 2 < pages) {
			row_free(&old[i]);
			continue;
		}
		for (j = row_hash(old[i].item) & (cap - 1);
		    rowtab[j].item != NULL; j = (j + 1) & (cap - 1))
			;
		rowtab[j] = old[i];
		nrows++;
	}
	free(old);
}

/* The item's row, made if it has none; valid until the next row_get(). */
static struct row *
row_get(const json_t *item)
{
	size_t	i;

	if (rowcap == 0 || 2 * (nrows + 1) > rowcap)
		rows_rebuild(rowcap == 0 ? 256 : 2 * rowcap);
	for (i = row_hash(item) & (rowcap - 1); rowtab[i].item != NULL;
	    i = (i + 1) & (rowcap - 1))
		if (rowtab[i].item == item) {
			rowtab[i].used = pages;
			return (&rowtab[i]);
		}
	rowtab[i].item = json_incref((json_t *)item);
	rowtab[i].used = pages;
	nrows++;
	return (&rowtab[i]);
}

/* After each page: the next one, and the rows it did not use gone. */
static void
rows_page_done(void)
{
	pages++;
	if (rowcap > 0)
		rows_rebuild(rowcap > 256 && 8 * nrows < rowcap ? rowcap / 2 :
		    rowcap);
}

static void
row_keep(char **dst, size_t *dstlen, const char *p, size_t len)
{
	free(*dst);
	*dst = xmalloc(len > 0 ? len : 1);
	memcpy(*dst, p, len);
	*dstlen = len;
}

enum col_kind {
	COL_PLAIN,
	COL_HISTORY,	/* a sparkline */
	COL_STATE,	/* in bold */
};

static void
value(struct sb *b, enum col_kind kind, const json_t *v)
{
	const char	*s;
	time_t		 t;

	if (v == NULL) {	/* an item without the column's member */
		SBLIT(b, "-");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		if (kind == COL_HISTORY)
			sparkline(b, s);
		else if (iso_time(s, json_string_length(v), &t))
			local_time(b, s, t);
		else if (kind == COL_STATE) {
			SBLIT(b, "<b>");
			esc(b, s);
			SBLIT(b, "</b>");
		} else
			esc(b, s);
		break;
	case JSON_INTEGER:
		sb_printf(b, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		break;
	case JSON_REAL:
		sb_printf(b, "%.1f", json_real_value(v));
		break;
	case JSON_TRUE:
		SBLIT(b, "yes");
		break;
	case JSON_FALSE:
		SBLIT(b, "no");
		break;
	default:
		SBLIT(b, "-");
	}
}

static void
column_label(struct sb *b, const char *key)
{
	const char	*p;

	for (p = key; *p != '\0'; p++) {
		if (*p == '_')
			SBLIT(b, " ");
		else
			esc(b, (char[]){ *p, '\0' });
	}
}

static const char *
level_of(const json_t *item)
{
	const char	*l = json_string_value(json_object_get(item, "level"));

	if (l != NULL && (strcmp(l, "ok") == 0 || strcmp(l, "warning") == 0 ||
	    strcmp(l, "critical") == 0))
		return (l);
	return ("unknown");
}

#define MAX_COLS	24

/* strcmp() only where the first byte agrees: 30,000 cells a page */
static inline int
same_key(const char *a, const char *b)
{
	return (a[0] == b[0] && strcmp(a, b) == 0);
}

/* the members that are no column */
static inline int
skipped(const char *key)
{
	return ((key[0] == 'l' && strcmp(key, "level") == 0) ||
	    (key[0] == 'p' && strcmp(key, "problem") == 0));
}

/*
 * One rule of the labels the cells of a narrow page show before their
 * value: "#probe td:nth-child(3)::before{content:"state: "}". A label
 * has letters, digits and spaces only (anything else becomes '?'), so
 * nothing of a document can end the string or the stylesheet. Labels in
 * a stylesheet rather than a data-label attribute on each cell: those
 * were half of the page's bytes at 1,000 probes.
 */
static void
css_label(struct sb *css, const char *id, size_t nth, const char *key)
{
	const char	*p;
	char		 c;

	sb_printf(css, "#%s td:nth-child(%zu)::before{content:\"", id, nth);
	for (p = key; *p != '\0'; p++) {
		c = *p == '_' ? ' ' : (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ?
		    *p : '?';
		sb_add(css, &c, 1);
	}
	SBLIT(css, ": \"}");
}

static void
section(struct sb *b, struct sb *css, const char *id, const json_t *sec)
{
	const json_t	*items = json_object_get(sec, "items"), *it, *v;
	const char	*cols[MAX_COLS], *key;
	enum col_kind	 kind[MAX_COLS];
	size_t		 i, ncols = 0, k, start;
	void		*iter;
	struct row	*r;
	uint64_t	 sig;
	int		 css_ok;

	if (!json_is_object(sec))
		return;
	SBLIT(b, "<section id=\"");
	esc(b, id);
	SBLIT(b, "\"><h2>");
	esc(b, json_string_value(json_object_get(sec, "title")));
	sb_printf(b, " <small>(%zu)</small></h2>\n",
	    json_array_size(items));
	/* the columns: every member of any item, in order of appearance */
	json_array_foreach(items, i, it) {
		if (!json_is_object(it))
			continue;
		json_object_foreach((json_t *)it, key, v) {
			if (strcmp(key, "level") == 0 ||
			    strcmp(key, "problem") == 0)
				continue;
			for (k = 0; k < ncols && strcmp(cols[k], key) != 0;
			    k++)
				;
			if (k == ncols && ncols < MAX_COLS)
				cols[ncols++] = key;
		}
		/* items of a section share their members; look at a few */
		if (i >= 3 && ncols > 0)
			break;
	}
	if (ncols == 0) {
		SBLIT(b, "<p class=\"empty\">");
		esc(b, json_string_value(json_object_get(sec, "empty")));
		SBLIT(b, "</p></section>\n");
		return;
	}
	SBLIT(b, "<table><thead><tr>");
	/* the narrow layout's labels: a rule per column, in the page's end */
	css_ok = id[strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_-")] ==
	    '\0' && id[0] != '\0';
	for (k = 0; k < ncols; k++) {
		SBLIT(b, "<th>");
		column_label(b, cols[k]);
		SBLIT(b, "</th>");
		kind[k] = strcmp(cols[k], "history") == 0 ? COL_HISTORY :
		    strcmp(cols[k], "state") == 0 || strcmp(cols[k],
		    "status") == 0 ? COL_STATE : COL_PLAIN;
		if (css_ok)
			css_label(css, id, k + 1, cols[k]);
	}
	SBLIT(b, "</tr></thead><tbody>\n");
	/* the columns' signature: a kept row is for the same ones */
	sig = 1469598103934665603ULL;
	for (k = 0; k < ncols; k++)
		for (key = cols[k]; ; key++) {
			sig = (sig ^ (unsigned char)*key) * 1099511628211ULL;
			if (*key == '\0')
				break;
		}
	json_array_foreach(items, i, it) {
		if (!json_is_object(it))
			continue;
		r = row_get(it);
		if (r->html != NULL && r->sig == sig) {
			sb_add(b, r->html, r->hlen);
			continue;
		}
		start = b->len;
		sb_printf(b, "<tr class=\"%s\">", level_of(it));
		/*
		 * The members walked in step with the columns (an item has
		 * them in the same order as the first), a lookup only where
		 * it has not: hashing every key was a tenth of a render.
		 */
		iter = json_object_iter((json_t *)it);
		for (k = 0; k < ncols; k++) {
			while (iter != NULL && skipped(json_object_iter_key(
			    iter)))
				iter = json_object_iter_next((json_t *)it, iter);
			if (iter != NULL && same_key(json_object_iter_key(iter),
			    cols[k])) {
				v = json_object_iter_value(iter);
				iter = json_object_iter_next((json_t *)it, iter);
			} else
				v = json_object_get(it, cols[k]);
			/* long text may break anywhere, short words never */
			if (json_is_string(v) && json_string_length(v) > 24)
				SBLIT(b, "<td class=\"w\">");
			else
				SBLIT(b, "<td>");
			value(b, kind[k], v);
			SBLIT(b, "</td>");
		}
		SBLIT(b, "</tr>\n");
		r = row_get(it);	/* value() made none, but be plain */
		row_keep(&r->html, &r->hlen, b->p + start, b->len - start);
		r->sig = sig;
	}
	SBLIT(b, "</tbody></table></section>\n");
}

static void
list(struct sb *b, const char *cls, const json_t *a)
{
	const json_t	*v;
	size_t		 i;

	if (json_array_size(a) == 0)
		return;
	sb_printf(b, "<ul class=\"%s\">", cls);
	json_array_foreach(a, i, v) {
		SBLIT(b, "<li>");
		esc(b, json_string_value(v));
		SBLIT(b, "</li>");
	}
	SBLIT(b, "</ul>\n");
}

/* "Probes: 3 ok, 1 critical" for each section that has items */
static void
counts(struct sb *b, const json_t *secs, const json_t *counts)
{
	static const char *const levels[] = { "critical", "warning", "ok",
	    "unknown" };
	const json_t	*c;
	const char	*key;
	json_int_t	 n;
	size_t		 k;
	int		 first;

	SBLIT(b, "<ul class=\"counts\">");
	json_object_foreach((json_t *)counts, key, c) {
		SBLIT(b, "<li>");
		esc(b, json_string_value(json_object_get(json_object_get(secs,
		    key), "title")));
		SBLIT(b, ":");
		first = 1;
		for (k = 0; k < 4; k++) {
			if ((n = json_integer_value(json_object_get(c,
			    levels[k]))) == 0)
				continue;
			sb_printf(b, "%s %" JSON_INTEGER_FORMAT " %s",
			    first ? "" : ",", n, levels[k]);
			first = 0;
		}
		SBLIT(b, "</li>");
	}
	SBLIT(b, "</ul>\n");
}

/* "'sha256-...'" of bytes, for the Content-Security-Policy */
static void
style_hash(const char *p, size_t len, char *out, size_t outlen)
{
	unsigned char	md[SHA256_DIGEST_LENGTH];
	char		b64[48];

	SHA256((const unsigned char *)p, len, md);
	EVP_EncodeBlock((unsigned char *)b64, md, sizeof md);
	snprintf(out, outlen, "'sha256-%s'", b64);
}

/* the hash of the last page's label stylesheet (the page kept) */
static char		page_style[64];
static struct sb	labels;

static void
html(const json_t *doc, struct sb *b)
{
	const char	*host = json_string_value(json_object_get(doc, "host"));
	const char	*st = json_string_value(json_object_get(doc, "status"));
	const char	*key, *gen;
	const json_t	*secs, *sec;
	struct sb	*css = &labels;
	time_t		 t;

	memset(tcache, 0, sizeof tcache);
	sb_grow(b, 256 * 1024);
	if (host == NULL)
		host = "this host";
	if (st == NULL || (strcmp(st, "ok") != 0 && strcmp(st, "warning") !=
	    0 && strcmp(st, "critical") != 0))
		st = "unknown";
	SBLIT(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset="
	    "\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">"
	    "<title>");
	esc(b, st);
	SBLIT(b, " - opsd on ");
	esc(b, host);
	SBLIT(b, "</title><style>");
	sb_add(b, stylesheet, sizeof stylesheet - 1);
	SBLIT(b, "</style></head><body>\n<header><h1>opsd on ");
	esc(b, host);
	sb_printf(b, " <span class=\"badge b-%s\">%s</span></h1>"
	    "<p class=\"meta\">", st, st);
	gen = json_string_value(json_object_get(doc, "generated"));
	if (gen != NULL && iso_time(gen, strlen(gen), &t)) {
		SBLIT(b, "generated ");
		local_time(b, gen, t);
		SBLIT(b, " &middot; ");
	}
	SBLIT(b, "times in ");
	esc(b, json_string_value(json_object_get(doc, "timezone")));
	SBLIT(b, " (UTC");
	esc(b, json_string_value(json_object_get(doc, "utc_offset")));
	SBLIT(b, ") &middot; opsd ");
	esc(b, json_string_value(json_object_get(doc, "version")));
	SBLIT(b, " &middot; <a href=\"status.json\">status.json</a></p>"
	    "</header>\n<section id=\"summary\"><h2>Summary</h2>\n");
	if (json_array_size(json_object_get(doc, "problems")) == 0)
		SBLIT(b, "<p>Nothing is down, stale or overdue.</p>\n");
	list(b, "problems", json_object_get(doc, "problems"));
	secs = json_object_get(doc, "sections");
	counts(b, secs, json_object_get(doc, "counts"));
	SBLIT(b, "</section>\n");
	css->len = 0;
	SBLIT(css, "@media (max-width:700px){");
	json_object_foreach((json_t *)secs, key, sec)
		section(b, css, key, sec);
	SBLIT(css, "}");
	/* at the end: a style element applies wherever it is */
	SBLIT(b, "<style>");
	sb_add(b, css->p, css->len);
	SBLIT(b, "</style>\n</body></html>\n");
	style_hash(css->p, css->len, page_style, sizeof page_style);
}


void
status_html(const json_t *doc, struct evbuffer *out)
{
	struct sb	*b = &scratches[0];

	b->len = 0;
	html(doc, b);
	evbuffer_add(out, b->p, b->len);
	scratch_trim(b);
	rows_page_done();
}

/* --- JSON ---------------------------------------------------------------- */

/*
 * The document written as JSON into the page's buffer. json_dumps() took
 * twice the time of the whole HTML page for the same data (a callback a
 * few bytes); this writes runs of plain bytes at once. Strings from
 * jansson are valid UTF-8 already: only '"', '\\' and control bytes are
 * escaped.
 */
static void
jstr(struct sb *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t	i, run;
	char	e[6] = { '\\', 'u', '0', '0', 0, 0 };

	SBLIT(b, "\"");
	for (i = 0; i < len;) {
		for (run = i; run < len && (unsigned char)s[run] >= 0x20 &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		sb_add(b, s + i, run - i);
		if ((i = run) == len)
			break;
		if (s[i] == '"')
			SBLIT(b, "\\\"");
		else if (s[i] == '\\')
			SBLIT(b, "\\\\");
		else if (s[i] == '\n')
			SBLIT(b, "\\n");
		else if (s[i] == '\t')
			SBLIT(b, "\\t");
		else {
			e[4] = hex[((unsigned char)s[i] >> 4) & 0xf];
			e[5] = hex[(unsigned char)s[i] & 0xf];
			sb_add(b, e, sizeof e);
		}
		i++;
	}
	SBLIT(b, "\"");
}

static void	jvalue(struct sb *, const json_t *, int);

/* A section's items, each object's text kept with its row. */
static void
jitems(struct sb *b, const json_t *a, int depth)
{
	const json_t	*x;
	struct row	*r;
	size_t		 i, start;

	SBLIT(b, "[");
	json_array_foreach(a, i, x) {
		if (i > 0)
			SBLIT(b, ",");
		if (!json_is_object(x)) {
			jvalue(b, x, depth + 1);
			continue;
		}
		r = row_get(x);
		if (r->json != NULL) {
			sb_add(b, r->json, r->jlen);
			continue;
		}
		start = b->len;
		jvalue(b, x, depth + 1);
		r = row_get(x);
		row_keep(&r->json, &r->jlen, b->p + start, b->len - start);
	}
	SBLIT(b, "]");
}

static void
jvalue(struct sb *b, const json_t *v, int depth)
{
	const char	*key;
	const json_t	*x;
	size_t		 i, n;
	char		 num[64];
	int		 first = 1;

	if (depth > 32) {	/* the document is ours: never this deep */
		SBLIT(b, "null");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		SBLIT(b, "{");
		json_object_foreach((json_t *)v, key, x) {
			if (!first)
				SBLIT(b, ",");
			first = 0;
			jstr(b, key, strlen(key));
			SBLIT(b, ":");
			if (strcmp(key, "items") == 0 && json_is_array(x))
				jitems(b, x, depth + 1);
			else
				jvalue(b, x, depth + 1);
		}
		SBLIT(b, "}");
		break;
	case JSON_ARRAY:
		SBLIT(b, "[");
		json_array_foreach(v, i, x) {
			if (i > 0)
				SBLIT(b, ",");
			jvalue(b, x, depth + 1);
		}
		SBLIT(b, "]");
		break;
	case JSON_STRING:
		jstr(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		n = (size_t)snprintf(num, sizeof num, "%.6g",
		    json_real_value(v));
		/* a real stays one: 2 is written 2.0 */
		if (n < sizeof num - 2 && strspn(num, "-0123456789") == n) {
			num[n++] = '.';
			num[n++] = '0';
		}
		/* NaN and infinities are not JSON; a document never has them */
		if (strchr(num, 'n') != NULL || strchr(num, 'i') != NULL)
			SBLIT(b, "null");
		else
			sb_add(b, num, n);
		break;
	case JSON_TRUE:
		SBLIT(b, "true");
		break;
	case JSON_FALSE:
		SBLIT(b, "false");
		break;
	default:
		SBLIT(b, "null");
	}
}

void
status_dump(const json_t *doc, struct evbuffer *out)
{
	struct sb	*b = &scratches[1];

	b->len = 0;
	jvalue(b, doc, 0);
	SBLIT(b, "\n");
	evbuffer_add(out, b->p, b->len);
	scratch_trim(b);
	rows_page_done();
}

/* --- serving -------------------------------------------------------------- */

static const char *
csp_style_hash(void)
{
	if (sheet_hash[0] == '\0')
		style_hash(stylesheet, sizeof stylesheet - 1, sheet_hash,
		    sizeof sheet_hash);
	return (sheet_hash);
}

void
status_serve(struct opsd *o, struct evhttp_request *req, int html, int tls)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b;
	json_t			*doc;
	uint64_t		 now;
	char			 csp[384];
	int			 k;

	b = evbuffer_new();
	k = html ? 0 : 1;
	/*
	 * status_cache: a page rendered less than that ago (in this
	 * configuration) is sent again as it is; it says when it was made.
	 * At 50 pages a second that is one render a second instead of 50,
	 * and the probes' timers are not kept waiting behind them.
	 */
	now = now_usec();
	if (o->conf->status_cache > 0 && scratches[k].p != NULL &&
	    cache[k].valid && cache[k].reloads == o->reloads &&
	    now - cache[k].at < o->conf->status_cache * 1000) {
		evbuffer_add(b, scratches[k].p, scratches[k].len);
		doc = NULL;
	} else {
		doc = status_json(o);
		if (html)
			status_html(doc, b);
		else
			status_dump(doc, b);
		cache[k].valid = 1;
		cache[k].at = now;
		cache[k].reloads = o->reloads;
		json_decref(doc);
	}
	if (html) {
		snprintf(csp, sizeof csp, "default-src 'none'; style-src %s %s; "
		    "base-uri 'none'; form-action 'none'; frame-ancestors "
		    "'none'", csp_style_hash(), page_style);
		evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	} else {
		snprintf(csp, sizeof csp, "default-src 'none'; frame-ancestors "
		    "'none'");
		evhttp_add_header(h, "Content-Type", "application/json");
	}
	evhttp_add_header(h, "Content-Security-Policy", csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_add_header(h, "Permissions-Policy", "camera=(), microphone=(), "
	    "geolocation=(), payment=(), usb=()");
	if (tls)
		evhttp_add_header(h, "Strict-Transport-Security",
		    "max-age=31536000");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
