/*
 * libFuzzer target for everything a control client's bytes go through:
 * the line framer, the JSON decoder, the request check and the dispatcher
 * (rpc_handle_text, as control.c calls it, with no connection, on a
 * daemon context set up as main() does from the default configuration,
 * without the control socket: no probes, no alert routes). Besides
 * crashes it checks what must always hold: framing in chunks gives the
 * same lines as framing in one piece, no line is longer than the limit or
 * holds a newline, and every reply, built as a tree or written directly
 * as text, is one line of JSON that a client parses back as a response
 * to the request's id.
 *
 * The first input byte picks the chunk size and the per-line limit of a
 * second framing pass, so both the buffered paths and the oversized-line
 * paths are reached with short inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alert.h"
#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "jsonrpc.h"
#include "opsd-proto.h"
#include "probe.h"
#include "rpc.h"

#define MAXLINES	4096

static struct opsd	opsd;

static void
setup(void)
{
	struct config_errors	errs = { NULL, 0 };

	memset(&opsd, 0, sizeof opsd);
	opsd.conf = config_parse("fuzz.conf", "", 0, &errs);
	if (opsd.conf == NULL)
		abort();
	/* opsd.reload reads this: always fails, as with a deleted file */
	opsd.conf_path = strdup("/nonexistent/opsd-fuzz.conf");
	log_set_level(LOG_ERR);
	/* what main() sets up before it accepts a client, minus the socket */
	if (opsd_init(&opsd) != 0)
		abort();
	opsd_start(&opsd);
}

/* What framing produced: a hash and the length of each line. */
struct lines {
	uint64_t hash[MAXLINES];
	size_t	 len[MAXLINES];
	int	 n;
	size_t	 max;
	int	 toolong;
	int	 stop_every;	/* return 1 on every Nth line, 0: never */
};

static int
collect(void *arg, enum frame_kind kind, const char *line, size_t len)
{
	struct lines	*l = arg;

	if (kind == FRAME_TOO_LONG) {
		if (line != NULL || len != 0)
			abort();
		l->toolong++;
		return (0);
	}
	if (len > l->max || memchr(line, '\n', len) != NULL)
		abort();
	if (l->n < MAXLINES) {
		uint64_t	h = 1469598103934665603ULL;	/* FNV-1a */
		size_t		i;

		for (i = 0; i < len; i++)
			h = (h ^ (unsigned char)line[i]) * 1099511628211ULL;
		l->hash[l->n] = h;
		l->len[l->n] = len;
		l->n++;
	}
	if (l->stop_every > 0 && l->n % l->stop_every == 0)
		return (1);
	return (0);
}

/* Feeds data in chunks of step; resumes after a callback's stop. */
static void
frame_all(struct lines *l, size_t max, size_t step, int stop_every,
    const uint8_t *data, size_t size)
{
	struct frame_reader	fr;
	size_t			off = 0, n, used;
	int			r;

	memset(l, 0, sizeof *l);
	l->max = max;
	l->stop_every = stop_every;
	frame_init(&fr, max);
	while (off < size) {
		n = size - off < step ? size - off : step;
		r = frame_feed(&fr, (const char *)data + off, n, collect, l,
		    &used);
		if (used > n || (r == 0 && used != n))
			abort();
		if (r == 0 && fr.len > max)
			abort();
		off += used;
		if (r != 0 && used == 0)
			abort();	/* a stop must consume its line */
	}
	frame_free(&fr);
}

/* A reply line written directly: one line, a result for the same id. */
static void
check_text(const char *text, size_t len, json_t *id)
{
	json_t		*parsed, *result;
	const char	*message;
	char		 err[256];
	int		 code;

	if (len != strlen(text) || memchr(text, '\n', len) != NULL)
		abort();
	if ((parsed = jsonrpc_load(text, len, err, sizeof err)) == NULL)
		abort();
	if (jsonrpc_parse_response(parsed, &result, &code, &message) != 0)
		abort();
	if (!json_equal(json_object_get(parsed, "id"), id))
		abort();
	json_decref(parsed);
}

static void
check_reply(json_t *reply)
{
	json_t		*parsed, *result, *v;
	const char	*message;
	char		*s, err[256];
	size_t		 len, i;
	int		 code;

	if ((s = jsonrpc_dump(reply, &len)) == NULL)
		abort();
	if (memchr(s, '\n', len) != NULL)
		abort();
	if ((parsed = jsonrpc_load(s, len, err, sizeof err)) == NULL)
		abort();
	free(s);
	if (json_is_array(parsed)) {
		if (json_array_size(parsed) == 0)
			abort();
		json_array_foreach(parsed, i, v) {
			if (jsonrpc_parse_response(v, &result, &code,
			    &message) < 0)
				abort();
		}
	} else if (jsonrpc_parse_response(parsed, &result, &code,
	    &message) < 0)
		abort();
	json_decref(parsed);
}

static int
handle_line(void *arg, enum frame_kind kind, const char *line, size_t len)
{
	struct rpc_request	 req;
	json_t			*msg, *reply, *id = NULL;
	char			 err[256], *text = NULL;
	size_t			 textlen = 0;

	(void)arg;
	if (kind != FRAME_LINE)
		return (0);
	if ((msg = jsonrpc_load(line, len, err, sizeof err)) == NULL) {
		if (strncmp(err, "invalid JSON at byte ", 21) != 0)
			abort();
		return (0);
	}
	if (json_is_object(msg) &&
	    jsonrpc_parse_request(msg, &req, err, sizeof err) == 0 &&
	    req.id != NULL)
		id = json_incref(req.id);
	reply = rpc_handle_text(&opsd, NULL, msg, &text, &textlen);
	if (text != NULL) {
		if (reply != NULL || id == NULL)
			abort();
		check_text(text, textlen, id);
		free(text);
	}
	if (reply != NULL) {
		check_reply(reply);
		json_decref(reply);
	}
	json_decref(id);
	json_decref(msg);
	return (0);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 ready;
	struct frame_reader	 fr;
	struct lines		 whole, chunked;
	size_t			 used, step, max;
	int			 i;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size == 0)
		return (0);
	step = 1 + data[0] % 64;
	max = 1 + data[0] / 4;

	/* the same lines, whatever the chunks and the stops */
	frame_all(&whole, max, size, 0, data, size);
	frame_all(&chunked, max, step, 1 + data[0] % 3, data, size);
	if (whole.n != chunked.n || whole.toolong != chunked.toolong)
		abort();
	for (i = 0; i < whole.n && i < MAXLINES; i++) {
		if (whole.hash[i] != chunked.hash[i] ||
		    whole.len[i] != chunked.len[i])
			abort();
	}

	/* the real limit, and everything after framing */
	frame_init(&fr, OPSD_MAX_MESSAGE);
	frame_feed(&fr, (const char *)data, size, handle_line, NULL, &used);
	frame_free(&fr);

	/* whatever a request did to the level, keep the log quiet */
	log_set_level(LOG_ERR);
	return (0);
}
