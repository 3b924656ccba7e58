/*
 * opsd.conf (daemon/core/config.c) and the INI reader under it (daemon/core/ini.c).
 * Every kind of error must come out as "NAME:LINE: message" with the line
 * the user has to fix, and all errors of a file must be reported, not only
 * the first. Kinds that [opsd] has no key for (booleans, plain strings,
 * required keys, named sections) go through ini_parse() with a table of
 * this file's own.
 */
#include <sys/stat.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "ini.h"
#include "opsd-proto.h"
#include "tap.h"

#define NAME	"t.conf"

struct want {
	int		 line;	/* 0: "NAME: msg" */
	const char	*msg;	/* substring after the prefix */
};

static void
check_errors(const struct config_errors *errs, const struct want *w,
    size_t nw)
{
	char		prefix[64];
	unsigned int	i;

	if (errs->n != nw) {
		tap_diag("%u errors, expected %zu:", errs->n, nw);
		for (i = 0; i < errs->n; i++)
			tap_diag("  %s", errs->v[i]);
	}
	CHECK_UINT(errs->n, nw);
	for (i = 0; i < errs->n && i < nw; i++) {
		if (w[i].line > 0)
			snprintf(prefix, sizeof prefix, "%s:%d: ", NAME,
			    w[i].line);
		else
			snprintf(prefix, sizeof prefix, "%s: ", NAME);
		if (strncmp(errs->v[i], prefix, strlen(prefix)) != 0) {
			tap_diag("error %u is \"%s\", expected prefix \"%s\"",
			    i, errs->v[i], prefix);
			tap_case_failed = 1;
		}
		CHECK_CONTAINS(errs->v[i], w[i].msg);
	}
}

/* Parses text and checks it fails with exactly the errors in w. */
#define EXPECT_ERRORS(text, ...) do {					\
	static const struct want w_[] = { __VA_ARGS__ };		\
	struct config_errors e_ = { NULL, 0 };				\
	struct opsd_config *c_;						\
									\
	c_ = config_parse(NAME, (text), strlen(text), &e_);		\
	if (c_ != NULL)							\
		tap_diag("config accepted: %s", (text));		\
	CHECK(c_ == NULL);						\
	config_free(c_);						\
	check_errors(&e_, w_, sizeof w_ / sizeof w_[0]);		\
	config_errors_clear(&e_);					\
} while (0)

static struct opsd_config *
parse_ok(const char *text)
{
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*conf;
	unsigned int		 i;

	conf = config_parse(NAME, text, strlen(text), &errs);
	for (i = 0; i < errs.n; i++)
		tap_diag("unexpected: %s", errs.v[i]);
	CHECK(conf != NULL);
	CHECK_UINT(errs.n, 0);
	config_errors_clear(&errs);
	return (conf);
}

static void
test_defaults(void)
{
	struct opsd_config	*c;

	c = parse_ok("");
	if (c == NULL)
		return;
	CHECK_STR(c->path, NAME);
	CHECK_STR(c->socket, OPSD_DEFAULT_SOCKET);
	CHECK_MODE(c->socket_mode, 0660);
	CHECK(c->socket_group == NULL);
	CHECK(c->admin_group == NULL);
	CHECK_STR(c->state_dir, "/var/lib/opsd");
	CHECK_INT(c->log_level, LOG_INFO);
	CHECK_UINT(c->idle_timeout, 300000);
	CHECK_UINT(c->max_connections, 4096);
	CHECK_UINT(c->client_buffer, 1024 * 1024);
	CHECK_UINT(c->shutdown_timeout, 4000);
	CHECK_STR(c->metrics_listen, "127.0.0.1:9187");
	config_free(c);

	/* comments and blank lines only; an empty [opsd] */
	c = parse_ok("# opsd\n\n; nothing here\n   \n[opsd]\n");
	CHECK(c != NULL && c->max_connections == 4096);
	config_free(c);
}

static void
test_every_key(void)
{
	struct opsd_config	*c;

	c = parse_ok(
	    "# every key of [opsd]\n"
	    "[opsd]\n"
	    "admin_group = root\n"
	    "client_buffer = 2M\n"
	    "idle_timeout = 1h30m\n"
	    "log_level = debug\n"
	    "max_connections = 1000000\n"
	    "metrics_listen = [::1]:9100\n"
	    "shutdown_timeout = 250ms\n"
	    "socket = \"/run/opsd test/opsd.sock\"\n"
	    "socket_group = nogroup\n"
	    "socket_mode = 0600\n"
	    "state_dir=/var/lib/opsd-test\n");
	if (c == NULL)
		return;
	CHECK_STR(c->admin_group, "root");
	CHECK_UINT(c->admin_gid, 0);
	CHECK_UINT(c->client_buffer, 2 * 1024 * 1024);
	CHECK_UINT(c->idle_timeout, 5400000);
	CHECK_INT(c->log_level, LOG_DEBUG);
	CHECK_UINT(c->max_connections, 1000000);
	CHECK_UINT(c->shutdown_timeout, 250);
	CHECK_STR(c->metrics_listen, "[::1]:9100");
	CHECK_STR(c->socket, "/run/opsd test/opsd.sock");
	CHECK_STR(c->socket_group, "nogroup");
	CHECK_UINT(c->socket_gid, 65534);
	CHECK_MODE(c->socket_mode, 0600);
	CHECK_STR(c->state_dir, "/var/lib/opsd-test");
	config_free(c);
}

static void
test_syntax_variants(void)
{
	struct opsd_config	*c;

	/* CRLF, blanks around '=' and the header, no final newline */
	c = parse_ok("\r\n  [ opsd ]  \r\n\tlog_level\t=\tWARNING \r\n"
	    "idle_timeout = 0\r\nsocket_mode=660");
	if (c == NULL)
		return;
	CHECK_INT(c->log_level, LOG_WARNING);
	CHECK_UINT(c->idle_timeout, 0);
	CHECK_MODE(c->socket_mode, 0660);
	config_free(c);

	/* aliases, "off" and the range ends */
	c = parse_ok("[opsd]\nlog_level = err\nclient_buffer = 64K\n"
	    "metrics_listen = off\n"
	    "max_connections = 1\nshutdown_timeout = 1m\n"
	    "idle_timeout = 7d\n");
	if (c == NULL)
		return;
	CHECK_INT(c->log_level, LOG_ERR);
	CHECK(c->metrics_listen == NULL);
	CHECK_UINT(c->client_buffer, 65536);
	CHECK_UINT(c->max_connections, 1);
	CHECK_UINT(c->shutdown_timeout, 60000);
	CHECK_UINT(c->idle_timeout, 7 * 86400000ULL);
	config_free(c);
}

static void
test_unknown_section(void)
{
	/* the keys of an unknown section are not reported one by one */
	EXPECT_ERRORS("[opsd]\n\n[nosuch api]\nurl = http://x/\n",
	    { 3, "unknown section [nosuch] (known sections: opsd" });
	EXPECT_ERRORS("[]\n", { 1, "unknown section []" });
	EXPECT_ERRORS("[OPSD]\n", { 1, "unknown section [OPSD]" });
}

static void
test_unknown_key(void)
{
	EXPECT_ERRORS("[opsd]\nsocket = /run/x.sock\nsockets = 1\n",
	    { 3, "unknown key 'sockets' in [opsd]" });
	EXPECT_ERRORS("[opsd]\nlog level = info\n",
	    { 2, "unknown key 'log level' in [opsd]" });
}

static void
test_bad_duration(void)
{
	EXPECT_ERRORS("[opsd]\n\nidle_timeout = 5 minutes\n",
	    { 3, "idle_timeout: invalid value '5 minutes': expected a "
	    "duration such as 30s, 5m, 2h or 7d" });
	EXPECT_ERRORS("[opsd]\nidle_timeout = 8d\n",
	    { 2, "idle_timeout: '8d' is out of range (0ms to 7d)" });
	EXPECT_ERRORS("[opsd]\nshutdown_timeout = 99ms\n",
	    { 2, "shutdown_timeout: '99ms' is out of range (100ms to 1m)" });
	EXPECT_ERRORS("[opsd]\nidle_timeout = 99999999999999999999s\n",
	    { 2, "idle_timeout: value '99999999999999999999s' is too "
	    "large" });
}

static void
test_bad_size(void)
{
	EXPECT_ERRORS("[opsd]\nclient_buffer = 1 MB\n",
	    { 2, "client_buffer: invalid value '1 MB': expected a size such "
	    "as 512K or 1G" });
	EXPECT_ERRORS("[opsd]\nclient_buffer = 1K\n",
	    { 2, "client_buffer: '1K' is out of range (65536 to 67108864)" });
	EXPECT_ERRORS("[opsd]\nclient_buffer = 65M\n",
	    { 2, "client_buffer: '65M' is out of range" });
	EXPECT_ERRORS("[opsd]\nclient_buffer = 16777216T\n",
	    { 2, "client_buffer: value '16777216T' is too large" });
}

static void
test_bad_uint(void)
{
	EXPECT_ERRORS("[opsd]\nmax_connections = 0\n",
	    { 2, "max_connections: '0' is out of range (1 to 1000000)" });
	EXPECT_ERRORS("[opsd]\nmax_connections = 1000001\n",
	    { 2, "max_connections: '1000001' is out of range" });
	EXPECT_ERRORS("[opsd]\nmax_connections = -1\n",
	    { 2, "max_connections: invalid value '-1': expected a whole "
	    "number" });
	EXPECT_ERRORS("[opsd]\nmax_connections = 10k\n",
	    { 2, "max_connections: invalid value '10k'" });
}

static void
test_bad_mode(void)
{
	EXPECT_ERRORS("[opsd]\nsocket_mode = 0689\n",
	    { 2, "socket_mode: invalid value '0689': expected an octal mode "
	    "such as 0660" });
	EXPECT_ERRORS("[opsd]\nsocket_mode = rw-rw----\n",
	    { 2, "socket_mode: invalid value 'rw-rw----'" });
	EXPECT_ERRORS("[opsd]\nsocket_mode = 17777\n",
	    { 2, "socket_mode: invalid value '17777'" });
}

static void
test_check_errors_at_key_line(void)
{
	char	text[512], path[200];

	/*
	 * opsd_check() runs as the section's check callback, which only
	 * knows the header's line: these errors point at "[opsd]" (line 1)
	 * instead of at the line the user has to change.
	 */
	EXPECT_ERRORS("[opsd]\nsocket = /run/x.sock\nsocket_mode = 0770\n",
	    { 3, "socket_mode: 0770 sets execute bits" });
	memset(path, 'a', sizeof path);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	snprintf(text, sizeof text, "[opsd]\nsocket = %s\n", path);
	EXPECT_ERRORS(text, { 2, "socket: path is longer than 107 bytes" });
}

static void
test_probe_kind(void)
{
	/*
	 * A [probe] without a valid kind: only that is reported. (The
	 * section check must not look the kind's name up before it knows
	 * the kind is valid: kind_names[-1] is read otherwise, which the
	 * sanitizer build reports.)
	 */
	EXPECT_ERRORS("[probe api]\nkind = carrier-pigeon\n"
	    "url = http://127.0.0.1/\n",
	    { 2, "kind: invalid value 'carrier-pigeon': expected one of http" });
	EXPECT_ERRORS("\n[probe api]\nurl = http://127.0.0.1/\n",
	    { 2, "[probe api] is missing the required key 'kind'" });
}

static void
test_bad_listen(void)
{
	EXPECT_ERRORS("[opsd]\nmetrics_listen = 9187\n",
	    { 2, "metrics_listen: '9187' is not host:port" });
	EXPECT_ERRORS("[opsd]\nmetrics_listen = localhost:http\n",
	    { 2, "metrics_listen: 'localhost:http' is not host:port" });
	EXPECT_ERRORS("[opsd]\nmetrics_listen = 127.0.0.1:65536\n",
	    { 2, "metrics_listen: '127.0.0.1:65536' is not host:port" });
}

static void
test_bad_log_level(void)
{
	EXPECT_ERRORS("[opsd]\nlog_level = loud\n",
	    { 2, "log_level: invalid value 'loud': expected one of error, "
	    "warning, notice, info, debug" });
	/* syslog levels above error would hide nothing useful: refused */
	EXPECT_ERRORS("[opsd]\nlog_level = crit\n",
	    { 2, "log_level: invalid value 'crit'" });
	EXPECT_ERRORS("[opsd]\nlog_level = emerg\n",
	    { 2, "log_level: invalid value 'emerg'" });
}

static void
test_relative_path(void)
{
	EXPECT_ERRORS("[opsd]\nstate_dir = var/lib/opsd\n",
	    { 2, "state_dir: must be an absolute path" });
	EXPECT_ERRORS("[opsd]\nsocket = opsd.sock\n",
	    { 2, "socket: must be an absolute path" });
}

static void
test_unknown_group(void)
{
	EXPECT_ERRORS("[opsd]\nsocket_group = no-such-group-opsd\n",
	    { 2, "socket_group: unknown group 'no-such-group-opsd'" });
	EXPECT_ERRORS("[opsd]\n\n\nadmin_group = 0psd-admins-nx\n",
	    { 4, "admin_group: unknown group '0psd-admins-nx'" });
}

static void
test_empty_value(void)
{
	EXPECT_ERRORS("[opsd]\nsocket =\n",
	    { 2, "empty value for 'socket': expected an absolute path" });
	EXPECT_ERRORS("[opsd]\nidle_timeout = \"\"\n",
	    { 2, "empty value for 'idle_timeout'" });
}

static void
test_duplicate_key(void)
{
	EXPECT_ERRORS("[opsd]\nsocket = /run/a.sock\nlog_level = info\n"
	    "socket = /run/b.sock\n",
	    { 4, "duplicate key 'socket' (first set on line 2)" });
	/* a bad first value still counts as set */
	EXPECT_ERRORS("[opsd]\nmax_connections = x\nmax_connections = 5\n",
	    { 2, "max_connections: invalid value 'x'" },
	    { 3, "duplicate key 'max_connections' (first set on line 2)" });
}

static void
test_duplicate_section(void)
{
	/* the keys of the refused section are not reported again */
	EXPECT_ERRORS("[opsd]\nsocket = /run/a.sock\n\n[opsd]\n"
	    "socket = /run/a.sock\nbogus = 1\n",
	    { 4, "duplicate section [opsd] (first defined on line 1)" });
}

static void
test_section_names(void)
{
	EXPECT_ERRORS("[opsd main]\nsocket = /run/a.sock\n",
	    { 1, "section [opsd] takes no name" });
	/* [probe NAME] and its siblings need one */
	EXPECT_ERRORS("[opsd]\n[probe]\nkind = tcp\n",
	    { 2, "section [probe] needs a name, as in [probe NAME]" });
	EXPECT_ERRORS("[probe a/b]\nkind = tcp\n",
	    { 1, "invalid name 'a/b'" });
}

static void
test_malformed_header(void)
{
	EXPECT_ERRORS("[opsd\nsocket = /run/a.sock\n",
	    { 1, "malformed section header: expected [type] or [type NAME]" });
	EXPECT_ERRORS("\n[opsd] # main\n",
	    { 2, "malformed section header" });
	EXPECT_ERRORS("[opsd]]\n", { 1, "malformed section header" });
}

static void
test_key_outside_section(void)
{
	EXPECT_ERRORS("# comment\nsocket = /run/a.sock\n[opsd]\n",
	    { 2, "key 'socket' outside a section" });
}

static void
test_missing_equals(void)
{
	EXPECT_ERRORS("[opsd]\nsocket /run/a.sock\n",
	    { 2, "expected 'key = value', a [section] header or a comment" });
	EXPECT_ERRORS("[opsd]\n = 5\n", { 2, "missing key before '='" });
}

static void
test_nul_byte(void)
{
	static const char	 text[] = "[opsd]\nsocket = /run/a\0b.sock\n"
	    "log_level = info\n";
	static const struct want w[] = { { 2, "NUL byte in line" } };
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*c;

	c = config_parse(NAME, text, sizeof text - 1, &errs);
	CHECK(c == NULL);
	config_free(c);
	check_errors(&errs, w, 1);
	config_errors_clear(&errs);
}

static void
test_all_errors_reported(void)
{
	EXPECT_ERRORS(
	    "key = 1\n"				/* 1 */
	    "[opsd]\n"				/* 2 */
	    "idle_timeout = soon\n"		/* 3 */
	    "client_buffer = lots\n"		/* 4 */
	    "# fine\n"				/* 5 */
	    "max_connections = 0\n"		/* 6 */
	    "socket_mode = 999\n"		/* 7 */
	    "log_level = chatty\n"		/* 8 */
	    "state_dir = relative\n"		/* 9 */
	    "socket_group = nx-group-opsd\n"	/* 10 */
	    "idle_timeout = 5m\n"		/* 11 */
	    "what is this\n"			/* 12 */
	    "nosuch = 1\n"			/* 13 */
	    "[opsd]\n"				/* 14 */
	    "[opsd x]\n"			/* 15 */
	    "[bad\n"				/* 16 */
	    "[other]\n",			/* 17 */
	    { 1, "key 'key' outside a section" },
	    { 3, "idle_timeout: invalid value 'soon'" },
	    { 4, "client_buffer: invalid value 'lots'" },
	    { 6, "max_connections: '0' is out of range" },
	    { 7, "socket_mode: invalid value '999'" },
	    { 8, "log_level: invalid value 'chatty'" },
	    { 9, "state_dir: must be an absolute path" },
	    { 10, "socket_group: unknown group 'nx-group-opsd'" },
	    { 11, "duplicate key 'idle_timeout' (first set on line 3)" },
	    { 12, "expected 'key = value'" },
	    { 13, "unknown key 'nosuch' in [opsd]" },
	    { 14, "duplicate section [opsd] (first defined on line 2)" },
	    { 15, "section [opsd] takes no name" },
	    { 16, "malformed section header" },
	    { 17, "unknown section [other]" });
}

static void
test_too_many_errors(void)
{
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*c;
	char			*text;
	size_t			 len = 0, i;

	text = malloc(200 * 16 + 16);
	len += (size_t)sprintf(text, "[opsd]\n");
	for (i = 0; i < 200; i++)
		len += (size_t)sprintf(text + len, "bad%zu = 1\n", i);
	c = config_parse(NAME, text, len, &errs);
	CHECK(c == NULL);
	config_free(c);
	/* capped, and the last entry says so */
	CHECK_UINT(errs.n, 100);
	if (errs.n == 100) {
		CHECK_STR(errs.v[0], NAME ":2: unknown key 'bad0' in [opsd]");
		CHECK_STR(errs.v[98], NAME ":100: unknown key 'bad98' in "
		    "[opsd]");
		CHECK_STR(errs.v[99], NAME ": too many errors, giving up");
	}
	config_errors_clear(&errs);
	free(text);
}

static void
test_config_load(void)
{
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*c;
	char			 dir[] = "/tmp/opsd-test-config.XXXXXX";
	char			 path[256];
	FILE			*f;

	if (mkdtemp(dir) == NULL) {
		tap_fail(__FILE__, __LINE__, "mkdtemp");
		return;
	}
	snprintf(path, sizeof path, "%s/opsd.conf", dir);

	c = config_load(path, &errs);
	CHECK(c == NULL);
	CHECK_UINT(errs.n, 1);
	if (errs.n == 1) {
		CHECK_CONTAINS(errs.v[0], path);
		CHECK_CONTAINS(errs.v[0], "cannot open: No such file or "
		    "directory");
	}
	config_errors_clear(&errs);

	c = config_load(dir, &errs);
	CHECK(c == NULL);
	CHECK_UINT(errs.n, 1);
	if (errs.n == 1)
		CHECK_CONTAINS(errs.v[0], "not a regular file");
	config_errors_clear(&errs);

	f = fopen(path, "w");
	fputs("[opsd]\nlog_level = notice\n\nbogus = 1\n", f);
	fclose(f);
	c = config_load(path, &errs);
	CHECK(c == NULL);
	CHECK_UINT(errs.n, 1);
	if (errs.n == 1) {
		char want[300];

		snprintf(want, sizeof want, "%s:4: unknown key 'bogus'", path);
		CHECK_CONTAINS(errs.v[0], want);
	}
	config_errors_clear(&errs);

	f = fopen(path, "w");
	fputs("[opsd]\nlog_level = notice\n", f);
	fclose(f);
	c = config_load(path, &errs);
	CHECK(c != NULL);
	CHECK_UINT(errs.n, 0);
	if (c != NULL) {
		CHECK_STR(c->path, path);
		CHECK_INT(c->log_level, LOG_NOTICE);
	}
	config_free(c);
	config_errors_clear(&errs);

	unlink(path);
	rmdir(dir);
}

/*
 * A table of this file's own for ini_parse(): every value kind, a required
 * key, a per-key validator, and a section type that needs a name.
 */
struct thing {
	char		*label;
	char		*path;
	uint64_t	 every;
	uint64_t	 size;
	uint64_t	 count;
	mode_t		 mode;
	int		 enabled;
	int		 level;
	int		 color;
	char		*group;
	gid_t		 gid;
	char		*name;		/* required */
	char		**tags;
	unsigned int	 ntags;
	char		*even;		/* validated */
};

struct tctx {
	struct thing	 things[4];
	char		*names[4];
	int		 nthings;
	int		 checks;
	int		 check_line;
	int		 label_line;	/* from ini_keyline() */
	int		 tags_line;
	int		 name_line;
};

static const char *const colors[] = { "red", "green", "blue", NULL };

static const char *
validate_even(const char *value, char *buf, size_t len)
{
	if (strlen(value) % 2 != 0) {
		snprintf(buf, len, "'%s' has an odd length", value);
		return (buf);
	}
	return (NULL);
}

#define T(f)	offsetof(struct thing, f)
static const struct ini_key thing_keys[] = {	/* sorted */
	{ .name = "color", .kind = INI_ENUM, .off = T(color),
	  .choices = colors },
	{ .name = "count", .kind = INI_UINT, .off = T(count), .min = 2,
	  .max = 9 },
	{ .name = "enabled", .kind = INI_BOOL, .off = T(enabled),
	  .dflt = "yes" },
	{ .name = "even", .kind = INI_STRING, .off = T(even),
	  .validate = validate_even },
	{ .name = "every", .kind = INI_DURATION, .off = T(every),
	  .dflt = "30s", .min = 1000 },
	{ .name = "group", .kind = INI_GROUP, .off = T(group),
	  .off2 = T(gid) },
	{ .name = "label", .kind = INI_STRING, .off = T(label) },
	{ .name = "level", .kind = INI_LOGLEVEL, .off = T(level) },
	{ .name = "mode", .kind = INI_MODE, .off = T(mode) },
	{ .name = "name", .kind = INI_STRING, .off = T(name),
	  .flags = INI_REQUIRED },
	{ .name = "path", .kind = INI_PATH, .off = T(path) },
	{ .name = "size", .kind = INI_SIZE, .off = T(size) },
	{ .name = "tags", .kind = INI_LIST, .off = T(tags), .off2 = T(ntags) },
};
#undef T

static const struct ini_section test_sections[2];

static void *
thing_open(void *arg, const char *name)
{
	struct tctx	*ctx = arg;
	struct thing	*t;

	if (ctx->nthings == 4)
		return (NULL);
	t = &ctx->things[ctx->nthings];
	ctx->names[ctx->nthings++] = name ? strdup(name) : NULL;
	return (t);
}

static void
thing_check(void *arg, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct tctx	*ctx = arg;
	struct thing	*t = obj;
	int		 kl;

	ctx->checks++;
	ctx->check_line = line;
	ctx->label_line = ini_keyline(&test_sections[0], keylines, "label");
	ctx->tags_line = ini_keyline(&test_sections[0], keylines, "tags");
	ctx->name_line = ini_keyline(&test_sections[0], keylines, "name");
	if (t->label != NULL && strcmp(t->label, "forbidden") == 0) {
		kl = ini_keyline(&test_sections[0], keylines, "label");
		ini_error(errs, file, kl, "label: '%s' is not allowed",
		    t->label);
	}
	if (ini_keyline(&test_sections[0], keylines, "no-such-key") != 0)
		ini_error(errs, file, line, "ini_keyline found a ghost");
}

static const struct ini_section test_sections[2] = {
	{ "plain", 0, thing_keys, sizeof thing_keys / sizeof thing_keys[0],
	    thing_open, thing_check, NULL, NULL },
	{ "thing", 1, thing_keys, sizeof thing_keys / sizeof thing_keys[0],
	    thing_open, thing_check, NULL, NULL },
};

static void
tctx_free(struct tctx *ctx)
{
	int	i;

	for (i = 0; i < ctx->nthings; i++) {
		ini_free(&test_sections[0], &ctx->things[i]);
		free(ctx->names[i]);
	}
	memset(ctx, 0, sizeof *ctx);
}

static int
ini_run(const char *text, struct tctx *ctx, struct config_errors *errs)
{
	memset(ctx, 0, sizeof *ctx);
	return (ini_parse(NAME, text, strlen(text), test_sections,
	    sizeof test_sections / sizeof test_sections[0], ctx, errs));
}

#define EXPECT_INI(text, ...) do {					\
	static const struct want w_[] = { __VA_ARGS__ };		\
	struct config_errors e_ = { NULL, 0 };				\
	struct tctx ctx_;						\
									\
	CHECK_INT(ini_run((text), &ctx_, &e_), -1);			\
	check_errors(&e_, w_, sizeof w_ / sizeof w_[0]);		\
	config_errors_clear(&e_);					\
	tctx_free(&ctx_);						\
} while (0)

static void
test_ini_every_kind(void)
{
	struct config_errors	errs = { NULL, 0 };
	struct tctx		ctx;
	struct thing		*t;
	unsigned int		i;

	CHECK_INT(ini_run("[thing web-1.a_b]\nname = n\ncount = 9\n"
	    "enabled = off\nevery = 2m\ngroup = root\nlabel = \"  spaced  \"\n"
	    "level = notice\nmode = 0640\npath = /srv/x\nsize = 3G\n"
	    "color = blue\ntags = a\ntags = b c\neven = abcd\n"
	    "[plain]\nname = \"\"\nlabel =\n", &ctx, &errs), 0);
	for (i = 0; i < errs.n; i++)
		tap_diag("unexpected: %s", errs.v[i]);
	CHECK_INT(ctx.nthings, 2);
	CHECK_INT(ctx.checks, 2);
	CHECK_STR(ctx.names[0], "web-1.a_b");
	CHECK(ctx.names[1] == NULL);
	t = &ctx.things[0];
	CHECK_STR(t->name, "n");
	CHECK_UINT(t->count, 9);
	CHECK_INT(t->enabled, 0);
	CHECK_UINT(t->every, 120000);
	CHECK_STR(t->group, "root");
	CHECK_UINT(t->gid, 0);
	CHECK_STR(t->label, "  spaced  ");
	CHECK_INT(t->level, LOG_NOTICE);
	CHECK_MODE(t->mode, 0640);
	CHECK_STR(t->path, "/srv/x");
	CHECK_UINT(t->size, 3ULL << 30);
	CHECK_INT(t->color, 2);
	CHECK_UINT(t->ntags, 2);
	if (t->ntags == 2) {
		CHECK_STR(t->tags[0], "a");
		CHECK_STR(t->tags[1], "b c");
	}
	CHECK_STR(t->even, "abcd");
	/* an empty string is a value for a string key */
	CHECK_STR(ctx.things[1].name, "");
	CHECK_STR(ctx.things[1].label, "");
	config_errors_clear(&errs);
	tctx_free(&ctx);
}

static void
test_ini_bad_bool(void)
{
	EXPECT_INI("[plain]\nname = x\nenabled = maybe\n",
	    { 3, "enabled: invalid value 'maybe': expected yes or no" });
	EXPECT_INI("[plain]\nname = x\nenabled = 2\n",
	    { 3, "enabled: invalid value '2'" });
}

static void
test_ini_ranges(void)
{
	EXPECT_INI("[plain]\nname = x\ncount = 1\n",
	    { 3, "count: '1' is out of range (2 to 9)" });
	/* a minimum without a maximum */
	EXPECT_INI("[plain]\nname = x\nevery = 999ms\n",
	    { 3, "every: '999ms' is below the minimum 1s" });
}

static void
test_ini_missing_required(void)
{
	/* reported on the section's header line, once per section */
	EXPECT_INI("# things\n[plain]\nlabel = a\n\n[thing t1]\ncount = 3\n"
	    "[thing t2]\nname = ok\n",
	    { 2, "[plain] is missing the required key 'name'" },
	    { 5, "[thing t1] is missing the required key 'name'" });
}

static void
test_ini_section_needs_name(void)
{
	EXPECT_INI("[thing]\nname = x\n",
	    { 1, "section [thing] needs a name, as in [thing NAME]" });
	EXPECT_INI("[thing \"\"]\nname = x\n",
	    { 1, "section [thing] needs a name" });
	EXPECT_INI("[thing a/b]\nname = x\n",
	    { 1, "invalid name 'a/b': use letters, digits, '-', '_' and '.'" });
	EXPECT_INI("[thing a b]\nname = x\n", { 1, "invalid name 'a b'" });
	EXPECT_INI("[plain x]\nname = x\n", { 1, "section [plain] takes no "
	    "name" });
	EXPECT_INI("[thing a]\nname = x\n[thing b]\nname = y\n[thing a]\n"
	    "name = z\n",
	    { 5, "duplicate section [thing a] (first defined on line 1)" });
	EXPECT_INI("[nope]\n", { 1, "unknown section [nope] (known sections: "
	    "plain, thing)" });
}

static void
test_ini_check_callback(void)
{
	struct config_errors	errs = { NULL, 0 };
	struct tctx		ctx;

	CHECK_INT(ini_run("\n\n[plain]\nname = x\nlabel = forbidden\n", &ctx,
	    &errs), -1);
	CHECK_INT(ctx.checks, 1);
	CHECK_INT(ctx.check_line, 3);
	CHECK_INT(ctx.name_line, 4);
	CHECK_INT(ctx.label_line, 5);
	CHECK_INT(ctx.tags_line, 0);
	CHECK_UINT(errs.n, 1);
	if (errs.n == 1)
		CHECK_STR(errs.v[0], NAME ":5: label: 'forbidden' is not "
		    "allowed");
	config_errors_clear(&errs);
	tctx_free(&ctx);
}

static void
test_ini_enum(void)
{
	EXPECT_INI("[plain]\nname = x\ncolor = purple\n",
	    { 3, "color: invalid value 'purple': expected one of red, green, "
	    "blue" });
	/* choices are exact */
	EXPECT_INI("[plain]\nname = x\ncolor = Red\n",
	    { 3, "color: invalid value 'Red'" });
	EXPECT_INI("[plain]\nname = x\ncolor =\n",
	    { 3, "empty value for 'color'" });
}

static void
test_ini_list(void)
{
	struct config_errors	errs = { NULL, 0 };
	struct tctx		ctx;

	/* a list key may repeat; others may not */
	CHECK_INT(ini_run("[plain]\nname = x\ntags = 1\ntags = 2\n"
	    "tags = 3\n", &ctx, &errs), 0);
	CHECK_UINT(ctx.things[0].ntags, 3);
	CHECK_INT(ctx.tags_line, 5);
	config_errors_clear(&errs);
	tctx_free(&ctx);
	EXPECT_INI("[plain]\nname = x\ntags = 1\nname = y\n",
	    { 4, "duplicate key 'name' (first set on line 2)" });
	EXPECT_INI("[plain]\nname = x\ntags =\n",
	    { 3, "empty value for 'tags'" });
}

static void
test_ini_validate(void)
{
	EXPECT_INI("[plain]\nname = x\neven = abc\n",
	    { 3, "even: 'abc' has an odd length" });
}

static void
test_ini_defaults(void)
{
	static const struct ini_key bad_keys[] = {
		{ .name = "every", .kind = INI_DURATION, .dflt = "soon" },
	};
	static const struct ini_section bad = { "bad", 0, bad_keys, 1, NULL,
	    NULL, NULL, NULL };
	struct thing	t;
	uint64_t	v;

	memset(&t, 0, sizeof t);
	CHECK_INT(ini_defaults(&test_sections[0], &t), 0);
	CHECK_INT(t.enabled, 1);
	CHECK_UINT(t.every, 30000);
	ini_free(&test_sections[0], &t);
	CHECK_INT(ini_defaults(&bad, &v), -1);
}

static void
test_did_you_mean(void)
{
	/* a key within two edits of one of the section's keys */
	EXPECT_ERRORS("[probe api]\nkind = http\nurl = http://127.0.0.1/\n"
	    "expect_bdy = ok\n",
	    { 4, "unknown key 'expect_bdy' in [probe api]; did you mean "
	    "'expect_body'?" });
	EXPECT_ERRORS("[opsd]\nsokcet = /run/x.sock\n",
	    { 2, "unknown key 'sokcet' in [opsd]; did you mean 'socket'?" });
	/* nothing close: no guess */
	EXPECT_ERRORS("[opsd]\nfrobnicate = 1\n",
	    { 2, "unknown key 'frobnicate' in [opsd]" });
	/* section types too, with the name kept */
	EXPECT_ERRORS("[prbe api]\nkind = http\n",
	    { 1, "unknown section [prbe]; did you mean [probe api]?" });
	EXPECT_ERRORS("[opsdd]\n", { 1, "did you mean [opsd]?" });
}

static void
test_trailing_comment(void)
{
	/* a rejected value with '# ...' after a blank: say why */
	EXPECT_ERRORS("[opsd]\nidle_timeout = 5m # five minutes\n",
	    { 2, "idle_timeout: invalid value '5m # five minutes': expected "
	    "a duration such as 30s, 5m, 2h or 7d (comments go on their own "
	    "line" });
	EXPECT_ERRORS("[opsd]\nmax_connections = 10\t# ten\n",
	    { 2, "comments go on their own line" });
	/* no blank before '#': no hint */
	EXPECT_ERRORS("[opsd]\nidle_timeout = 5m#x\n",
	    { 2, "idle_timeout: invalid value '5m#x': expected a duration "
	    "such as 30s, 5m, 2h or 7d" });
	/* a '#' in a value that is valid stays part of it (URL fragments) */
	config_free(parse_ok("[probe api]\nkind = http\n"
	    "url = http://127.0.0.1/#top\n"));
}

static void
test_errors_in_line_order(void)
{
	/*
	 * A missing required key is found when its section ends, after
	 * the errors of the lines inside it; cross-section checks run
	 * last. The list reads top to bottom all the same.
	 */
	EXPECT_ERRORS("[probe api]\n"			/* 1 */
	    "url = http://127.0.0.1/\n"		/* 2 */
	    "rise = lots\n"				/* 3 */
	    "[opsd]\n"					/* 4 */
	    "idle_timeout = soon\n",			/* 5 */
	    { 1, "[probe api] is missing the required key 'kind'" },
	    { 3, "rise: invalid value 'lots'" },
	    { 5, "idle_timeout: invalid value 'soon'" });
}

static void
test_values_as_written(void)
{
	/* durations in the file's words, not in milliseconds */
	EXPECT_ERRORS("[probe api]\nkind = http\nurl = http://127.0.0.1/\n"
	    "interval = 5s\ntimeout = 20s\n",
	    { 5, "timeout 20s is longer than interval 5s" });
	EXPECT_ERRORS("[probe api]\nkind = http\nurl = http://127.0.0.1/\n"
	    "interval = 1500ms\ntimeout = 1m\n",
	    { 5, "timeout 1m is longer than interval 1500ms" });
	EXPECT_ERRORS("[opsd]\nsocket_mode = 775\n",
	    { 2, "socket_mode: 775 sets execute bits" });
}

int
main(void)
{
	RUN(test_defaults);
	RUN(test_every_key);
	RUN(test_syntax_variants);
	RUN(test_unknown_section);
	RUN(test_unknown_key);
	RUN(test_bad_duration);
	RUN(test_bad_size);
	RUN(test_bad_uint);
	RUN(test_bad_mode);
	RUN(test_check_errors_at_key_line);
	RUN(test_probe_kind);
	RUN(test_bad_listen);
	RUN(test_bad_log_level);
	RUN(test_relative_path);
	RUN(test_unknown_group);
	RUN(test_empty_value);
	RUN(test_duplicate_key);
	RUN(test_duplicate_section);
	RUN(test_section_names);
	RUN(test_malformed_header);
	RUN(test_key_outside_section);
	RUN(test_missing_equals);
	RUN(test_nul_byte);
	RUN(test_all_errors_reported);
	RUN(test_too_many_errors);
	RUN(test_config_load);
	RUN(test_ini_every_kind);
	RUN(test_ini_bad_bool);
	RUN(test_ini_ranges);
	RUN(test_ini_missing_required);
	RUN(test_ini_section_needs_name);
	RUN(test_ini_check_callback);
	RUN(test_ini_enum);
	RUN(test_ini_list);
	RUN(test_ini_validate);
	RUN(test_ini_defaults);
	RUN(test_did_you_mean);
	RUN(test_trailing_comment);
	RUN(test_errors_in_line_order);
	RUN(test_values_as_written);
	return (tap_done());
}
