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
#include <errno.h>
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

#define ADDLIT(b, s)	evbuffer_add((b), (s), sizeof (s) - 1)
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
    "ul.fine{padding-left:1.2em;color:var(--ok)}"
    ".spark{font-family:monospace;letter-spacing:-1px;white-space:nowrap}"
    ".s-ok{color:var(--ok)}.s-bad{color:var(--crit)}.s-unk{color:var(--unk)}"
    ".empty{color:var(--unk)}"
    "@media (max-width:700px){table,tbody,tr,td{display:block;width:100%}"
    "thead{display:none}tr{border:1px solid var(--line);margin:.5em 0;"
    "padding:.2em 0}td{border:0;padding:.1em .5em}"
    "td::before{content:attr(data-label) \": \";font-weight:600}"
    "tr.critical td:first-child,tr.warning td:first-child,"
    "tr.ok td:first-child,tr.unknown td:first-child{border-left:0}"
    "tr.critical{border-left:4px solid var(--crit)}"
    "tr.warning{border-left:4px solid var(--warn)}"
    "tr.ok{border-left:4px solid var(--ok)}"
    "tr.unknown{border-left:4px solid var(--unk)}"
    ".spark{white-space:normal;overflow-wrap:anywhere}}";

/* 'sha256-...' of the stylesheet, for the CSP; computed once */
static char style_hash[64];

json_t *
status_section(const char *title, const char *empty)
{
	return (json_pack("{s:s, s:s, s:[]}", "title", title, "empty", empty,
	    "items"));
}

json_t *
status_text(const char *s)
{
	json_t	*j;
	char	*t;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return (j);
	t = util_utf8_dup(s, strlen(s));
	j = json_string(t);
	free(t);
	if (j == NULL)
		fatalx("status: out of memory making a JSON string");
	return (j);
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

json_t *
status_json(struct opsd *o)
{
	json_t		*doc, *health, *secs, *s;
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
	health = health_collect(o);
	doc = json_pack("{s:s?, s:s, s:s, s:s, s:s, s:O?, s:O?, s:O?}",
	    "host", host, "version", OPSD_VERSION, "generated", at,
	    "timezone", zone, "utc_offset", off,
	    "status", json_object_get(health, "status"),
	    "problems", json_object_get(health, "problems"),
	    "fine", json_object_get(health, "fine"));
	if (doc == NULL)	/* a host name that is not UTF-8 */
		doc = json_pack("{s:s, s:s, s:s, s:s, s:O?, s:O?, s:O?}",
		    "version", OPSD_VERSION, "generated", at, "timezone", zone,
		    "utc_offset", off,
		    "status", json_object_get(health, "status"),
		    "problems", json_object_get(health, "problems"),
		    "fine", json_object_get(health, "fine"));
	json_decref(health);
	secs = json_object();
	for (i = 0; i < SUBSYS_N; i++) {
		if (subsys_table[i]->status == NULL)
			continue;
		if ((s = subsys_table[i]->status(o)) != NULL)
			json_object_set_new(secs, subsys_table[i]->name, s);
	}
	json_object_set_new(secs, "operations", ops_section(o));
	json_object_set_new(doc, "sections", secs);
	return (doc);
}

/* --- HTML ----------------------------------------------------------------- */

static void
esc(struct evbuffer *b, const char *s)
{
	const char	*p;

	if (s == NULL)
		return;
	for (p = s; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			ADDLIT(b, "&amp;");
			break;
		case '<':
			ADDLIT(b, "&lt;");
			break;
		case '>':
			ADDLIT(b, "&gt;");
			break;
		case '"':
			ADDLIT(b, "&quot;");
			break;
		case '\'':
			ADDLIT(b, "&#39;");
			break;
		default:
			/* runs of plain bytes in one call */
			{
				size_t n = strcspn(p, "&<>\"'");

				evbuffer_add(b, p, n);
				p += n - 1;
			}
		}
	}
}

/* "1999-12-31T23:59:59Z" exactly: the form times take in the document */
static int
iso_time(const char *s, time_t *t)
{
	struct tm	tm;
	int		n = 0;

	if (strlen(s) != 20 || s[4] != '-' || s[10] != 'T' || s[19] != 'Z')
		return (0);
	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 20)
		return (0);
	tm.tm_year -= 1900;
	tm.tm_mon--;
	*t = timegm(&tm);
	return (*t != (time_t)-1);
}

static void
local_time(struct evbuffer *b, const char *iso, time_t t)
{
	struct tm	tm;
	char		buf[64];

	localtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
	ADDLIT(b, "<time datetime=\"");
	esc(b, iso);
	ADDLIT(b, "\">");
	esc(b, buf);
	ADDLIT(b, "</time>");
}

/* ▆ for a pass, ▁ for a failure, · for no result; runs in one span */
static void
sparkline(struct evbuffer *b, const json_t *a)
{
	static const char *const cls[] = { "s-unk", "s-ok", "s-bad" };
	static const char *const glyph[] = { "\xc2\xb7", "\xe2\x96\x86",
	    "\xe2\x96\x81" };
	const json_t	*v;
	size_t		 i;
	int		 cur = -1, k;

	ADDLIT(b, "<span class=\"spark\" role=\"img\" aria-label=\"recent "
	    "results, oldest first\">");
	json_array_foreach(a, i, v) {
		k = json_is_true(v) ? 1 : json_is_false(v) ? 2 : 0;
		if (k != cur) {
			if (cur >= 0)
				ADDLIT(b, "</span>");
			evbuffer_add_printf(b, "<span class=\"%s\">", cls[k]);
			cur = k;
		}
		evbuffer_add(b, glyph[k], strlen(glyph[k]));
	}
	if (cur >= 0)
		ADDLIT(b, "</span>");
	ADDLIT(b, "</span>");
}

static void
value(struct evbuffer *b, const char *key, const json_t *v)
{
	const char	*s;
	time_t		 t;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		if (iso_time(s, &t))
			local_time(b, s, t);
		else if (strcmp(key, "state") == 0 || strcmp(key,
		    "status") == 0) {
			ADDLIT(b, "<b>");
			esc(b, s);
			ADDLIT(b, "</b>");
		} else
			esc(b, s);
		break;
	case JSON_INTEGER:
		evbuffer_add_printf(b, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		break;
	case JSON_REAL:
		evbuffer_add_printf(b, "%.1f", json_real_value(v));
		break;
	case JSON_TRUE:
		ADDLIT(b, "yes");
		break;
	case JSON_FALSE:
		ADDLIT(b, "no");
		break;
	case JSON_ARRAY:
		if (strcmp(key, "history") == 0)
			sparkline(b, v);
		break;
	default:
		ADDLIT(b, "-");
	}
}

static void
column_label(struct evbuffer *b, const char *key)
{
	const char	*p;

	for (p = key; *p != '\0'; p++) {
		if (*p == '_')
			ADDLIT(b, " ");
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

static void
section(struct evbuffer *b, const char *id, const json_t *sec)
{
	const json_t	*items = json_object_get(sec, "items"), *it, *v;
	const char	*cols[MAX_COLS], *key;
	size_t		 i, ncols = 0, k;

	if (!json_is_object(sec))
		return;
	ADDLIT(b, "<section id=\"");
	esc(b, id);
	ADDLIT(b, "\"><h2>");
	esc(b, json_string_value(json_object_get(sec, "title")));
	evbuffer_add_printf(b, " <small>(%zu)</small></h2>\n",
	    json_array_size(items));
	/* the columns: every member of any item, in order of appearance */
	json_array_foreach(items, i, it) {
		if (!json_is_object(it))
			continue;
		json_object_foreach((json_t *)it, key, v) {
			if (strcmp(key, "level") == 0)
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
		ADDLIT(b, "<p class=\"empty\">");
		esc(b, json_string_value(json_object_get(sec, "empty")));
		ADDLIT(b, "</p></section>\n");
		return;
	}
	ADDLIT(b, "<table><thead><tr>");
	for (k = 0; k < ncols; k++) {
		ADDLIT(b, "<th>");
		column_label(b, cols[k]);
		ADDLIT(b, "</th>");
	}
	ADDLIT(b, "</tr></thead><tbody>\n");
	json_array_foreach(items, i, it) {
		if (!json_is_object(it))
			continue;
		evbuffer_add_printf(b, "<tr class=\"%s\">", level_of(it));
		for (k = 0; k < ncols; k++) {
			v = json_object_get(it, cols[k]);
			/* long text may break anywhere, short words never */
			if (json_is_string(v) && json_string_length(v) > 24)
				ADDLIT(b, "<td class=\"w\" data-label=\"");
			else
				ADDLIT(b, "<td data-label=\"");
			column_label(b, cols[k]);
			ADDLIT(b, "\">");
			value(b, cols[k], v);
			ADDLIT(b, "</td>");
		}
		ADDLIT(b, "</tr>\n");
	}
	ADDLIT(b, "</tbody></table></section>\n");
}

static void
list(struct evbuffer *b, const char *cls, const json_t *a)
{
	const json_t	*v;
	size_t		 i;

	if (json_array_size(a) == 0)
		return;
	evbuffer_add_printf(b, "<ul class=\"%s\">", cls);
	json_array_foreach(a, i, v) {
		ADDLIT(b, "<li>");
		esc(b, json_string_value(v));
		ADDLIT(b, "</li>");
	}
	ADDLIT(b, "</ul>\n");
}

void
status_html(const json_t *doc, struct evbuffer *b)
{
	const char	*host = json_string_value(json_object_get(doc, "host"));
	const char	*st = json_string_value(json_object_get(doc, "status"));
	const char	*key, *gen;
	const json_t	*secs, *sec;
	time_t		 t;

	if (host == NULL)
		host = "this host";
	if (st == NULL || (strcmp(st, "ok") != 0 && strcmp(st, "warning") !=
	    0 && strcmp(st, "critical") != 0))
		st = "unknown";
	ADDLIT(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset="
	    "\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">"
	    "<title>");
	esc(b, st);
	ADDLIT(b, " - opsd on ");
	esc(b, host);
	ADDLIT(b, "</title><style>");
	evbuffer_add(b, stylesheet, sizeof stylesheet - 1);
	ADDLIT(b, "</style></head><body>\n<header><h1>opsd on ");
	esc(b, host);
	evbuffer_add_printf(b, " <span class=\"badge b-%s\">%s</span></h1>"
	    "<p class=\"meta\">", st, st);
	gen = json_string_value(json_object_get(doc, "generated"));
	if (gen != NULL && iso_time(gen, &t)) {
		ADDLIT(b, "generated ");
		local_time(b, gen, t);
		ADDLIT(b, " &middot; ");
	}
	ADDLIT(b, "times in ");
	esc(b, json_string_value(json_object_get(doc, "timezone")));
	ADDLIT(b, " (UTC");
	esc(b, json_string_value(json_object_get(doc, "utc_offset")));
	ADDLIT(b, ") &middot; opsd ");
	esc(b, json_string_value(json_object_get(doc, "version")));
	ADDLIT(b, " &middot; <a href=\"status.json\">status.json</a></p>"
	    "</header>\n<section id=\"summary\"><h2>Summary</h2>\n");
	if (json_array_size(json_object_get(doc, "problems")) == 0)
		ADDLIT(b, "<p>Nothing is down, stale or overdue.</p>\n");
	list(b, "problems", json_object_get(doc, "problems"));
	list(b, "fine", json_object_get(doc, "fine"));
	ADDLIT(b, "</section>\n");
	secs = json_object_get(doc, "sections");
	json_object_foreach((json_t *)secs, key, sec)
		section(b, key, sec);
	ADDLIT(b, "</body></html>\n");
}

/* --- serving -------------------------------------------------------------- */

static const char *
csp_style_hash(void)
{
	unsigned char	md[SHA256_DIGEST_LENGTH];
	char		b64[48];

	if (style_hash[0] == '\0') {
		SHA256((const unsigned char *)stylesheet, sizeof stylesheet - 1,
		    md);
		EVP_EncodeBlock((unsigned char *)b64, md, sizeof md);
		snprintf(style_hash, sizeof style_hash, "'sha256-%s'", b64);
	}
	return (style_hash);
}

void
status_serve(struct opsd *o, struct evhttp_request *req, int html, int tls)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b;
	json_t			*doc;
	char			 csp[256];
	char			*text;

	doc = status_json(o);
	b = evbuffer_new();
	if (html) {
		status_html(doc, b);
		snprintf(csp, sizeof csp, "default-src 'none'; style-src %s; "
		    "base-uri 'none'; form-action 'none'; frame-ancestors "
		    "'none'", csp_style_hash());
		evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	} else {
		if ((text = json_dumps(doc, JSON_COMPACT |
		    JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))) != NULL) {
			evbuffer_add(b, text, strlen(text));
			ADDLIT(b, "\n");
			free(text);
		}
		snprintf(csp, sizeof csp, "default-src 'none'; frame-ancestors "
		    "'none'");
		evhttp_add_header(h, "Content-Type", "application/json");
	}
	json_decref(doc);
	evhttp_add_header(h, "Content-Security-Policy", csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
	if (tls)
		evhttp_add_header(h, "Strict-Transport-Security",
		    "max-age=31536000");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
