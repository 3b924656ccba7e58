/*
 * libFuzzer target for the status page's renderers (core/status.c): any
 * JSON document, of any shape, rendered as the page and as status.json.
 * The strings of a real document carry what comes from outside (a
 * probe's reason, a command's output), so besides crashes it checks that
 * nothing of the input reaches the page as markup (the page has no
 * script of its own, so a "<script" can only be the input's) and that
 * status_dump() writes JSON that parses again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *
take(struct evbuffer *b)
{
	size_t	 n = evbuffer_get_length(b);
	char	*s = malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return (s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct evbuffer	*b;
	json_error_t	 e;
	json_t		*doc, *back;
	char		*s;

	doc = json_loadb((const char *)data, len, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, &e);
	if (doc == NULL)
		return (0);
	b = evbuffer_new();
	status_html(doc, b);
	s = take(b);
	if (strstr(s, "<script") != NULL || strstr(s, "<img") != NULL ||
	    strstr(s, "</html>") == NULL)
		abort();
	free(s);
	status_dump(doc, b);
	s = take(b);
	if ((back = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e)) ==
	    NULL)
		abort();
	json_decref(back);
	free(s);
	evbuffer_free(b);
	json_decref(doc);
	return (0);
}
