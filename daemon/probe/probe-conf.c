/*
 * The [probe NAME] schema: its keys, which of them each kind takes, and
 * the checks of a section as a whole (ini.h calls probe_conf_check()
 * once the section is read).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "alert.h"
#include "cert-int.h"
#include "config.h"
#include "http-url.h"
#include "ini.h"
#include "lazylib.h"
#include "opsd-parse.h"
#include "pg.h"
#include "probe.h"
#include "util.h"

static const char *const on_down_names[] = {
	"none", "restart", "exec", NULL
};

static const char *const kind_names[] = {
	"http", "tcp", "postgres", "tls", "exec", "tls-grade", NULL
};

static const char *
validate_grade(const char *value, char *buf, size_t len)
{
	static const char *const grades[] = {
		"A+", "A", "A-", "B", "C", "D", "E", "F", NULL
	};
	int	i;

	for (i = 0; grades[i] != NULL; i++)
		if (strcmp(grades[i], value) == 0)
			return (NULL);
	snprintf(buf, len, "min_grade '%s': one of A+ A A- B C D E F", value);
	return (buf);
}

static const char *
validate_starttls(const char *value, char *buf, size_t len)
{
	if (strcmp(value, "postgres") == 0)
		return (NULL);
	snprintf(buf, len, "starttls '%s': only 'postgres' is known", value);
	return (buf);
}

static const char *
validate_url(const char *value, char *buf, size_t len)
{
	struct http_url	 hu;
	CURLU		*u;
	char		*scheme = NULL;
	int		 bad;

	/* the common plain URL without loading libcurl (http-url.h) */
	if (http_url_split(value, &hu)) {
		http_url_free(&hu);
		return (NULL);
	}
	if ((u = curl_url()) == NULL && lazylib_curl() != 0) {
		snprintf(buf, len, "'%s' cannot be checked: %s", value,
		    lazylib_error(LAZYLIB_CURL));
		return (buf);
	}
	bad = u == NULL || curl_url_set(u, CURLUPART_URL, value, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0);
	curl_free(scheme);
	curl_url_cleanup(u);
	if (bad) {
		snprintf(buf, len, "'%s' is not an http:// or https:// URL",
		    value);
		return (buf);
	}
	return (NULL);
}

/* host:port, [v6]:port; fills host and port when asked. */
static int
split_address(const char *value, char **host, int *port)
{
	const char	*colon, *h, *hend;
	uint64_t	 p;

	if (value[0] == '[') {
		if ((hend = strchr(value, ']')) == NULL || hend[1] != ':')
			return (-EINVAL);
		h = value + 1;
		colon = hend + 1;
	} else {
		if ((colon = strrchr(value, ':')) == NULL)
			return (-EINVAL);
		h = value;
		hend = colon;
	}
	if (hend == h)
		return (-EINVAL);
	if (parse_uint(colon + 1, 1, 65535, &p) != 0)
		return (-ERANGE);
	if (host != NULL)
		*host = xstrndup(h, (size_t)(hend - h));
	if (port != NULL)
		*port = (int)p;
	return (0);
}

static const char *
validate_address(const char *value, char *buf, size_t len)
{
	switch (split_address(value, NULL, NULL)) {
	case 0:
		return (NULL);
	case -ERANGE:
		snprintf(buf, len, "port in '%s' must be 1 to 65535", value);
		return (buf);
	default:
		snprintf(buf, len, "'%s' is not host:port", value);
		return (buf);
	}
}

/* "200", "200-299", "200,204,301-308" */
static int
parse_status_list(const char *s, struct probe_conf *pc)
{
	char		*copy, *tok, *save = NULL, *dash;
	uint64_t	 lo, hi;
	int		 r = 0;

	copy = xstrdup(s);
	pc->nstatus = 0;
	for (tok = strtok_r(copy, ", ", &save); tok != NULL;
	    tok = strtok_r(NULL, ", ", &save)) {
		if (pc->nstatus == PROBE_MAX_STATUS) {
			r = -E2BIG;
			break;
		}
		if ((dash = strchr(tok, '-')) != NULL)
			*dash++ = '\0';
		if (parse_uint(tok, 100, 599, &lo) != 0 ||
		    parse_uint(dash ? dash : tok, 100, 599, &hi) != 0 ||
		    hi < lo) {
			r = -EINVAL;
			break;
		}
		pc->status[pc->nstatus].lo = (int)lo;
		pc->status[pc->nstatus].hi = (int)hi;
		pc->nstatus++;
	}
	free(copy);
	return (pc->nstatus == 0 ? -EINVAL : r);
}

static const char *
validate_status(const char *value, char *buf, size_t len)
{
	struct probe_conf	pc;

	if (parse_status_list(value, &pc) != 0) {
		snprintf(buf, len, "'%s' is not a status list such as 200, "
		    "200-299 or 200,204,301-308", value);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_header(const char *value, char *buf, size_t len)
{
	size_t	n = strcspn(value, ":");

	if (n == 0 || strcspn(value, " \t") < n) {
		snprintf(buf, len, "'%s' is not 'Name' or 'Name: value'",
		    value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct probe_conf, f)
static const struct ini_key probe_keys[] = {	/* sorted */
	{ .name = "address", .kind = INI_STRING, .off = O(address),
	  .validate = validate_address },
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "ca_file", .kind = INI_PATH, .off = O(ca_file),
	  .validate = ini_validate_readable },
	{ .name = "command", .kind = INI_STRING, .off = O(command) },
	{ .name = "conninfo", .kind = INI_STRING, .off = O(conninfo) },
	{ .name = "depends_on", .kind = INI_LIST, .off = O(depends_on),
	  .off2 = O(ndepends_on) },
	{ .name = "expect", .kind = INI_STRING, .off = O(expect) },
	{ .name = "expect_body", .kind = INI_STRING, .off = O(expect_body) },
	{ .name = "expect_header", .kind = INI_LIST, .off = O(expect_header),
	  .off2 = O(nexpect_header), .validate = validate_header },
	{ .name = "expect_status", .kind = INI_STRING,
	  .off = O(expect_status), .dflt = "200-299",
	  .validate = validate_status },
	{ .name = "fall", .kind = INI_UINT, .off = O(fall), .dflt = "3",
	  .min = 1, .max = 100 },
	{ .name = "follow_redirects", .kind = INI_BOOL,
	  .off = O(follow_redirects), .dflt = "no" },
	{ .name = "host_header", .kind = INI_STRING, .off = O(host_header) },
	{ .name = "interval", .kind = INI_DURATION, .off = O(interval),
	  .dflt = "30s", .min = 100, .max = 86400 * 1000 },
	{ .name = "kind", .kind = INI_ENUM, .off = O(kind),
	  .choices = kind_names, .flags = INI_REQUIRED },
	{ .name = "method", .kind = INI_STRING, .off = O(method),
	  .dflt = "GET" },
	{ .name = "min_grade", .kind = INI_STRING, .off = O(min_grade),
	  .dflt = "A", .validate = validate_grade },
	{ .name = "on_down", .kind = INI_ENUM, .off = O(on_down),
	  .dflt = "none", .choices = on_down_names },
	{ .name = "password_file", .kind = INI_PATH, .off = O(password_file),
	  .validate = ini_validate_readable },
	{ .name = "password_secret", .kind = INI_STRING,
	  .off = O(password_secret) },
	{ .name = "query", .kind = INI_STRING, .off = O(query),
	  .dflt = "SELECT 1" },
	{ .name = "restart", .kind = INI_STRING, .off = O(restart) },
	{ .name = "restart_backoff", .kind = INI_DURATION,
	  .off = O(restart_backoff), .dflt = "1s", .max = 3600 * 1000 },
	{ .name = "restart_cooldown", .kind = INI_DURATION,
	  .off = O(restart_cooldown), .max = 7 * 86400 * 1000 },
	{ .name = "restart_grace", .kind = INI_DURATION,
	  .off = O(restart_grace), .dflt = "5s", .max = 3600 * 1000 },
	{ .name = "restart_limit", .kind = INI_STRING,
	  .off = O(restart_limit), .dflt = "3 in 10m" },
	{ .name = "restart_timeout", .kind = INI_DURATION,
	  .off = O(restart_timeout), .dflt = "60s", .min = 100,
	  .max = 3600 * 1000 },
	{ .name = "rise", .kind = INI_UINT, .off = O(rise), .dflt = "2",
	  .min = 1, .max = 100 },
	{ .name = "send", .kind = INI_STRING, .off = O(send) },
	{ .name = "servername", .kind = INI_STRING, .off = O(servername) },
	{ .name = "service", .kind = INI_STRING, .off = O(service) },
	{ .name = "starttls", .kind = INI_STRING, .off = O(starttls),
	  .validate = validate_starttls },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "10s", .min = 10, .max = 3600 * 1000 },
	{ .name = "tls_verify", .kind = INI_BOOL, .off = O(tls_verify),
	  .dflt = "yes" },
	{ .name = "url", .kind = INI_STRING, .off = O(url),
	  .validate = validate_url },
	{ .name = "warn_days", .kind = INI_UINT, .off = O(warn_days),
	  .dflt = "21", .max = 3650 },
};
#undef O

/* Which keys each kind takes, besides the common ones. */
static const char *const kind_keys[][10] = {
	[PROBE_HTTP] = { "url", "method", "expect_status", "expect_body",
	    "expect_header", "host_header", "ca_file", "tls_verify",
	    "follow_redirects", NULL },
	[PROBE_TCP] = { "address", "send", "expect", NULL },
	[PROBE_POSTGRES] = { "conninfo", "password_file", "password_secret",
	    "query", "expect", NULL },
	[PROBE_TLS] = { "address", "servername", "warn_days", "ca_file",
	    "tls_verify", NULL },
	[PROBE_EXEC] = { "command", NULL },
	[PROBE_TLS_GRADE] = { "address", "servername", "ca_file", "min_grade",
	    "starttls", NULL },
};
static const char *const common_keys[] = {
	"alert", "fall", "interval", "kind", "rise", "timeout",
	/* probe-recover.c */
	"depends_on", "on_down", "restart", "restart_backoff",
	"restart_cooldown", "restart_grace", "restart_limit",
	"restart_timeout", "service", NULL
};
static const char *const kind_required[] = {
	[PROBE_HTTP] = "url", [PROBE_TCP] = "address",
	[PROBE_POSTGRES] = "conninfo", [PROBE_TLS] = "address",
	[PROBE_EXEC] = "command", [PROBE_TLS_GRADE] = "address",
};

static int
in_list(const char *const *list, const char *key)
{
	for (; *list != NULL; list++) {
		if (strcmp(*list, key) == 0)
			return (1);
	}
	return (0);
}

static void *
probe_conf_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct probe_conf	*pc;

	pc = xcalloc(1, sizeof *pc);
	pc->name = xstrdup(name);
	if (ini_defaults(&probe_section, pc) != 0)
		fatalx("probe: a built-in default does not parse");
	pc->kind = -1;		/* until a valid kind is read */
	config_add(conf, &probe_section, pc);
	return (pc);
}

static void
probe_conf_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct probe_conf	*pc = obj;
	const char		*kind;
	size_t			 i;
	int			 kl;

	(void)ctx;
	pc->line = line;
	pc->alert_line = ini_keyline(&probe_section, keylines, "alert");
	pc->password_secret_line = ini_keyline(&probe_section, keylines,
	    "password_secret");
	if (pc->kind < 0)
		return;		/* missing or invalid: reported already */
	kind = kind_names[pc->kind];
	for (i = 0; i < probe_section.nkeys; i++) {
		const char *key = probe_keys[i].name;

		if (keylines[i] == 0 || in_list(common_keys, key) ||
		    in_list(kind_keys[pc->kind], key))
			continue;
		ini_error(errs, file, keylines[i], "'%s' does not apply to a "
		    "%s probe", key, kind);
	}
	if (ini_keyline(&probe_section, keylines, kind_required[pc->kind]) ==
	    0)
		ini_error(errs, file, line, "[probe %s]: a %s probe needs "
		    "'%s'", pc->name, kind, kind_required[pc->kind]);
	if (pc->kind == PROBE_POSTGRES) {
		char	msg[256];

		if (pc->conninfo != NULL && pg_conninfo_check(pc->conninfo,
		    msg, sizeof msg) != NULL)
			ini_error(errs, file, ini_keyline(&probe_section,
			    keylines, "conninfo"), "conninfo %s", msg);
		if (pc->expect != NULL && !util_expect_valid(pc->expect))
			ini_error(errs, file, ini_keyline(&probe_section,
			    keylines, "expect"), "expect '%s': use a comparison "
			    "with the query's first value, e.g. '< 100', "
			    "'= on' or 'any'", pc->expect);
	}
	kl = ini_keyline(&probe_section, keylines, "timeout");
	if (pc->timeout > pc->interval && kl == 0)
		pc->timeout = pc->interval;	/* the default fits the interval */
	else if (pc->timeout > pc->interval) {
		char		 t[32], iv[32];
		const char	*w;

		/* as the file wrote them; a default in its own words */
		if ((w = ini_written(&probe_section, keylines,
		    "timeout")) != NULL)
			snprintf(t, sizeof t, "%s", w);
		else
			format_duration(pc->timeout, t, sizeof t);
		if ((w = ini_written(&probe_section, keylines,
		    "interval")) != NULL)
			snprintf(iv, sizeof iv, "%s", w);
		else
			format_duration(pc->interval, iv, sizeof iv);
		ini_error(errs, file, kl, "timeout %s is longer than "
		    "interval %s", t, iv);
	}
	probe_recover_conf_check(pc, file, keylines, errs);
	parse_status_list(pc->expect_status, pc);
	if ((pc->kind == PROBE_TCP || pc->kind == PROBE_TLS) &&
	    pc->address != NULL)
		split_address(pc->address, &pc->host, &pc->port);
	if (pc->kind == PROBE_TLS && pc->servername == NULL && pc->host)
		pc->servername = xstrdup(pc->host);
	pc->starttls_pg = pc->starttls != NULL;
	if (pc->kind == PROBE_TLS_GRADE && pc->address != NULL) {
		struct cert_endpoint	ep;
		char			e[256];

		if (cert_endpoint_parse(pc->address, &ep, e, sizeof e) != 0)
			ini_error(errs, file, ini_keyline(&probe_section,
			    keylines, "address"), "address %s", e);
	}
}

static void
probe_conf_free_obj(void *pc)
{
	probe_conf_free(pc);
}

const struct ini_section probe_section = {
	"probe", 1, probe_keys, nitems(probe_keys), probe_conf_open,
	probe_conf_check, probe_conf_free_obj, "probes"
};

void
probe_conf_free(struct probe_conf *pc)
{
	if (pc == NULL)
		return;
	ini_free(&probe_section, pc);
	free(pc->name);
	free(pc->host);
	free(pc);
}

void
probe_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct probe_conf	*pc;
	unsigned int		 i, j;

	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		for (j = 0; j < pc->nalert; j++) {
			if (alert_conf_find(conf, pc->alert[j]) == NULL)
				ini_error(errs, conf->path, pc->alert_line,
				    "alert: no [alert %s] section",
				    pc->alert[j]);
		}
	}
	probe_recover_check_refs(conf, errs);
}

const char *
probe_kind_name(int kind)
{
	return (kind >= 0 && kind < (int)nitems(kind_names) - 1 ? kind_names[kind] :
	    "?");
}
