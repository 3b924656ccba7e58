/*
 * The status page's renderers (core/status.c) on documents built here:
 * every string is escaped in the HTML whatever it holds, times are shown
 * in the zone of TZ with the zone named, the history is a sparkline, what
 * is not of the expected type is skipped, and status_dump() writes JSON
 * that jansson reads back to the same document.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "status.h"
#include "tap.h"

static char *
render(const json_t *doc, int html)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 n;
	char		*s;

	if (html)
		status_html(doc, b);
	else
		status_dump(doc, b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return (s);
}

static json_t *
doc_with(json_t *item)
{
	json_t	*sec = status_section("Probes", "none");

	json_array_append_new(json_object_get(sec, "items"), item);
	return (json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:{s:o}}",
	    "host", "h<1>", "version", "0", "generated", "2026-12-01T18:00:00Z",
	    "timezone", "IST", "utc_offset", "+0530", "status", "critical",
	    "problems", "probe <b>x</b> down", "sections", "probe", sec));
}

static const char hostile[] = "<script>alert('x')</script>\"&'</td>";

static void
test_escapes_everything(void)
{
	json_t	*doc = doc_with(json_pack("{s:s, s:s, s:s, s:s}", "name",
		    "a&b", "reason", hostile, "level", "critical\"><script>",
		    "<col>", "v"));
	char	*s = render(doc, 1);

	CHECK(strstr(s, "<script") == NULL);
	CHECK(strstr(s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
	    "&quot;&amp;&#39;&lt;/td&gt;") != NULL);
	CHECK(strstr(s, "a&amp;b") != NULL);
	CHECK(strstr(s, "h&lt;1&gt;") != NULL);
	CHECK(strstr(s, "probe &lt;b&gt;x&lt;/b&gt; down") != NULL);
	/* an unknown level is "unknown", never copied into the class */
	CHECK(strstr(s, "<tr class=\"unknown\">") != NULL);
	/* a member's name is a column label: escaped too */
	CHECK(strstr(s, "<th>&lt;col&gt;</th>") != NULL);
	/* and the narrow layout's label of it, in the stylesheet: tamed */
	CHECK(strstr(s, "::before{content:\"?col?: \"}") != NULL);
	CHECK(strstr(s, "#probe td:nth-child(3)::before{content:\"level: ")
	    == NULL);
	free(s);
	json_decref(doc);
}

static void
test_times_in_the_zone(void)
{
	json_t	*doc = doc_with(json_pack("{s:s, s:s, s:s, s:s}", "name", "p",
		    "since", "2026-12-01T18:00:00Z", "not_a_time",
		    "2026-13-01T18:00:00Z", "text", "2026-12-01T18:00:00Zx"));
	char	*s;

	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	s = render(doc, 1);
	CHECK(strstr(s, "<time datetime=\"2026-12-01T18:00:00Z\">2026-12-01 "
	    "23:30:00 IST</time>") != NULL);
	CHECK(strstr(s, "times in IST (UTC+0530)") != NULL);
	/* what only looks like a time is text */
	CHECK(strstr(s, ">2026-13-01T18:00:00Z<") != NULL);
	CHECK(strstr(s, ">2026-12-01T18:00:00Zx<") != NULL);
	free(s);
	setenv("TZ", "UTC", 1);
	tzset();
	s = render(doc, 1);
	CHECK(strstr(s, ">2026-12-01 18:00:00 UTC</time>") != NULL);
	free(s);
	json_decref(doc);
}

static void
test_sparkline(void)
{
	json_t	*doc = doc_with(json_pack("{s:s, s:s}", "name", "p",
		    "history", "++-?"));
	char	*s = render(doc, 1);

	CHECK(strstr(s, "<span class=\"s-ok\">\xe2\x96\x86\xe2\x96\x86</span>"
	    "<span class=\"s-bad\">\xe2\x96\x81</span><span class=\"s-unk\">"
	    "\xc2\xb7</span>") != NULL);
	free(s);
	json_decref(doc);
}

static void
test_odd_documents(void)
{
	json_t	*docs[] = {
		json_object(),
		json_pack("{s:i, s:[i], s:{s:i}}", "host", 1, "problems", 2,
		    "sections", "x", 3),
		json_pack("{s:{s:{s:[i, s:s]}}}", "sections", "x", "items", 1,
		    "y", "z"),
		json_pack("[]"),
		/* items without each other's members */
		json_pack("{s:{s:{s:[{s:i}, {s:s}]}}}", "sections", "x",
		    "items", "a", 1, "b", "c"),
	};
	size_t	 i;
	char	*s;

	for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		s = render(docs[i], 1);
		CHECK(strstr(s, "</html>") != NULL);
		free(s);
		json_decref(docs[i]);
	}
}

static void
test_dump_reads_back(void)
{
	json_t		*doc = doc_with(json_pack("{s:s, s:s, s:f, s:f, s:I, "
			    "s:b, s:n}", "name", "p", "reason", "tab\there "
			    "nl\n ctl\x01 \"q\" \\ \xc3\xa9", "ms", 1.5,
			    "whole", 2.0, "n", (json_int_t)-7, "b", 1, "z"));
	json_t		*back;
	json_error_t	 e;
	char		*s = render(doc, 0);

	back = json_loads(s, 0, &e);
	CHECK(back != NULL);
	CHECK(json_equal(doc, back));
	CHECK(strstr(s, "\"whole\":2.0") != NULL);
	CHECK(strstr(s, "\\u0001") != NULL);
	free(s);
	json_decref(back);
	json_decref(doc);
}

static void
test_age(void)
{
	char	b[16];

	status_age(-1, b, sizeof b);
	CHECK_STR(b, "-");
	status_age(59, b, sizeof b);
	CHECK_STR(b, "59s");
	status_age(3599, b, sizeof b);
	CHECK_STR(b, "59m");
	status_age(26 * 3600, b, sizeof b);
	CHECK_STR(b, "26h");
	status_age(5 * 86400, b, sizeof b);
	CHECK_STR(b, "5d");
}

int
main(void)
{
	RUN(test_escapes_everything);
	RUN(test_times_in_the_zone);
	RUN(test_sparkline);
	RUN(test_odd_documents);
	RUN(test_dump_reads_back);
	RUN(test_age);
	return (tap_done());
}
