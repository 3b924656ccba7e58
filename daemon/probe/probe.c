/*
 * The probe core: the [probe NAME] schema, scheduling, and probe_done(),
 * the one completion path of every kind (relayd's hce_notify_done).
 *
 * Scheduling is fixed-rate: a run is due every interval after the first
 * (which is spread at random over the first interval so a thousand probes
 * do not fire together); a run that overruns its slot makes the next one
 * start when it ends, never two at once. Lateness (start minus due time)
 * is recorded as a histogram.
 *
 * The set has one timer, not one a probe: it fires at the earliest due
 * run and starts every run due within PROBE_COALESCE_USEC of it. The
 * grid after the first run starts on one of ten slots of the interval
 * (at most a second apart, aligned on the clock), so probes of the same
 * interval share their wake-ups: 100 probes at 10 s wake opsd 60 times
 * a minute, not 600, and each wake-up serves ten. The answers of a
 * tick's runs are read together too, at the harvest (below).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "alert.h"
#include "config.h"
#include "daemon.h"
#include "lazylib.h"
#include "evt.h"
#include "http-url.h"
#include "ini.h"
#include "jsonrpc.h"
#include "pg.h"
#include "opsd-parse.h"
#include "cert-int.h"
#include "probe.h"
#include "rpc.h"
#include "util.h"

const struct evt_type EVT_PROBE_STATE = {
	"probe.state", "d8c4acb8c2584cdba1fe1095eddbdd19", LOG_WARNING };

/* First runs of new probes spread over this long (usec), at most. */
#define FIRST_RUN_SPREAD	(1000 * 1000)
/* Runs due this close to each other share one wake-up (usec). */
#define PROBE_COALESCE_USEC	(3 * 1000)
/* The grid's slots: an interval has this many, at most a second apart. */
#define GRID_SLOTS		10
#define GRID_SLOT_MAX		(1000 * 1000)

/* This subsystem's state in the daemon context (subsys.h). */
#define PROBES(o)	((struct probe_set *)(o)->sub[SUBSYS_PROBE])

static const char *const on_down_names[] = {
	"none", "restart", "exec", NULL
};

static const char *const kind_names[] = {
	"http", "tcp", "postgres", "tls", "exec", "tls-grade", NULL
};

static const struct probe_ops *const kind_ops[] = {
	&probe_http_ops, &probe_tcp_ops, &probe_pg_ops, &probe_tls_ops,
	&probe_exec_ops, &probe_tls_grade_ops,
};

const double probe_lateness_bounds[PROBE_LATENESS_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5
};

struct probe_set {
	struct probe		**v;
	unsigned int		  n;
	struct probe_lateness	  lateness;	/* kept across reloads */
	struct event		 *tick;		/* the earliest due run */
	uint64_t		  tick_due;	/* while tick is pending */
	int			  in_tick;	/* probe_tick_cb() is running */
	struct event		 *harvest;	/* probe_harvest_at() */
	uint64_t		  harvest_due;	/* while harvest is pending */
	struct probe		**hv;		/* the runs that asked */
	unsigned int		  nhv;
	unsigned int		  hvcap;
};

/* --- configuration ------------------------------------------------------ */

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

/* --- helpers for the kinds ---------------------------------------------- */

void
probe_fail(struct probe_result *r, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	/*
	 * The reason often quotes a server or a command: cut it at a
	 * character, not a byte, and make it UTF-8 for every reader.
	 */
	r->ok = 0;
	va_start(ap, fmt);
	n = xvasprintf(&s, fmt, ap);
	va_end(ap);
	util_utf8_sanitize(r->reason, sizeof r->reason, s, (size_t)n);
	free(s);
}

const char *
probe_state_name(enum probe_state s)
{
	switch (s) {
	case PROBE_UP:
		return ("up");
	case PROBE_DOWN:
		return ("down");
	default:
		return ("unknown");
	}
}

const char *
probe_kind_name(int kind)
{
	return (kind >= 0 && kind < (int)nitems(kind_ops) ? kind_names[kind] :
	    "?");
}

const struct probe_lateness *
probe_lateness(struct opsd *o)
{
	static const struct probe_lateness	none;

	return (PROBES(o) != NULL ? &PROBES(o)->lateness : &none);
}

/* --- scheduling --------------------------------------------------------- */

static void	probe_timer_cb(struct probe *, uint64_t);

/*
 * The set's timer at due, unless it fires earlier already; set the
 * timer slack early, so that the run starts on time, not up to 2 ms late
 * (PROBE_COALESCE_USEC covers the difference).
 */
static void
probe_tick_at(struct probe_set *set, uint64_t due)
{
	struct timeval	tv;
	uint64_t	now, wait;

	if (set->in_tick || (evtimer_pending(set->tick, NULL) &&
	    set->tick_due <= due))
		return;
	now = now_usec();
	wait = due > now + OPSD_TIMER_SLACK_USEC ? due - now -
	    OPSD_TIMER_SLACK_USEC : 0;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	set->tick_due = due;
	evtimer_add(set->tick, &tv);
}

static void
probe_arm(struct probe *p, uint64_t due)
{
	p->due_usec = due;
	p->armed = 1;
	probe_tick_at(PROBES(p->opsd), due);
}

/*
 * Every run due by now (or within PROBE_COALESCE_USEC: started that
 * much early, which counts as on time), then the timer for the next.
 * The probes are few enough (thousands) to be walked at each wake-up.
 */
static void
probe_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_set	*set = arg;
	struct probe		*p;
	uint64_t		 now = now_usec(), next = UINT64_MAX;
	unsigned int		 i;

	(void)fd;
	(void)what;
	set->in_tick = 1;
	/* a run that ends at once re-arms its probe: set->v stays */
	for (i = 0; i < set->n; i++) {
		p = set->v[i];
		if (p->armed && p->due_usec <= now + PROBE_COALESCE_USEC) {
			p->armed = 0;
			/* each one's own start: the lateness is its own */
			probe_timer_cb(p, now_usec());
		}
	}
	set->in_tick = 0;
	for (i = 0; i < set->n; i++) {
		p = set->v[i];
		if (p->armed && p->due_usec < next)
			next = p->due_usec;
	}
	if (next != UINT64_MAX)
		probe_tick_at(set, next);
}

/*
 * The harvest: runs started together (a tick) have their answers read
 * together. Ten requests sent in one wake-up come back one by one as
 * the server writes them; read as they come, each wakes opsd up, and in
 * a VM each wake-up costs more than the read. A kind that knows about
 * how long its answers take stops watching the socket, asks for a
 * harvest that much later, and reads what came, all in one wake-up; it
 * takes the time the answer arrived from the kernel (SO_TIMESTAMPNS),
 * not from when it was read. The set's one timer is at the latest time
 * asked for.
 */
static void
harvest_arm(struct probe_set *set, uint64_t due)
{
	struct timeval	tv;
	uint64_t	now = now_usec(), wait = due > now ? due - now : 0;

	if (evtimer_pending(set->harvest, NULL) && set->harvest_due >= due)
		return;
	set->harvest_due = due;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(set->harvest, &tv);
}

/*
 * The runs that asked are kept in a list of their own: walking every
 * probe at each harvest touched a cache line of each, which showed as 2%
 * of opsd's samples at 200 probes a second.
 */
void
probe_harvest_at(struct probe *p, uint64_t due)
{
	struct probe_set	*set = PROBES(p->opsd);

	if (!p->harvest) {
		if (set->nhv == set->hvcap) {
			set->hvcap = set->hvcap ? set->hvcap * 2 : 16;
			set->hv = xreallocarray(set->hv, set->hvcap,
			    sizeof *set->hv);
		}
		set->hv[set->nhv++] = p;
	}
	p->harvest = 1;
	p->harvest_due = due;
	harvest_arm(set, due);
}

/* The run ended or was cancelled before its harvest: out of the list. */
static void
harvest_drop(struct probe *p)
{
	struct probe_set	*set = PROBES(p->opsd);
	unsigned int		 i;

	if (!p->harvest)
		return;
	p->harvest = 0;
	for (i = 0; i < set->nhv; i++)
		if (set->hv[i] == p)
			set->hv[i] = NULL;
}

static void
probe_harvest_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_set	*set = arg;
	struct probe		*p;
	uint64_t		 now = now_usec(), next = UINT64_MAX;
	unsigned int		 i, n = set->nhv, k = 0;

	(void)fd;
	(void)what;
	/* what is asked for meanwhile goes past n, for later */
	for (i = 0; i < n; i++) {
		if ((p = set->hv[i]) != NULL &&
		    p->harvest_due <= now + PROBE_COALESCE_USEC) {
			set->hv[i] = NULL;
			p->harvest = 0;
			p->ops->harvest(p);
		}
	}
	for (i = 0; i < set->nhv; i++) {
		if ((p = set->hv[i]) == NULL)
			continue;
		set->hv[k++] = p;
		if (p->harvest_due < next)
			next = p->harvest_due;
	}
	set->nhv = k;
	if (next != UINT64_MAX)
		harvest_arm(set, next);
}

/* Where a probe's grid starts: one of GRID_SLOTS of its interval. */
static uint64_t
probe_grid_jitter(const struct probe *p, uint32_t rnd)
{
	uint64_t	iv = p->conf->interval * 1000, slot;

	slot = iv / GRID_SLOTS;
	if (slot > GRID_SLOT_MAX)
		slot = GRID_SLOT_MAX;
	if (slot < PROBE_COALESCE_USEC)
		return (iv + (uint64_t)rnd % iv);
	return (iv + (uint64_t)rnd % (iv / slot) * slot);
}

/*
 * The next slot on the fixed grid, skipping slots a run overran. The
 * first run comes right after the probe appears; the grid then starts
 * one interval and a random part of another later: probes spread over
 * their interval, and none runs twice within one.
 */
static uint64_t
probe_next_slot(struct probe *p, uint64_t now)
{
	uint64_t	iv = p->conf->interval * 1000;
	uint64_t	next = p->due_usec + iv;

	if (p->jitter_usec != 0) {
		uint64_t	slot = iv / GRID_SLOTS;

		/* on the slot's boundary of the clock, shared by others */
		next = p->due_usec + p->jitter_usec;
		if (slot > GRID_SLOT_MAX)
			slot = GRID_SLOT_MAX;
		if (slot >= PROBE_COALESCE_USEC)
			next += (slot - next % slot) % slot;
		p->jitter_usec = 0;
	}
	if (next <= now)
		next = now + (iv - (now - p->due_usec) % iv);
	return (next);
}

static void
probe_start(struct probe *p)
{
	struct probe_result	r;
	int			e;

	p->running = 1;
	p->run_start = now_usec();
	p->run_start_wall = (int64_t)now_realtime_usec();
	if ((e = p->ops->start(p)) != 0) {
		memset(&r, 0, sizeof r);
		probe_fail(&r, "cannot start: %s", e == -ELIBACC ?
		    lazylib_error(LAZYLIB_CURL) : strerror(-e));
		probe_done(p, &r);
	}
}

static void
record_lateness(struct probe_lateness *lt, uint64_t late_usec)
{
	double		s = (double)late_usec / 1e6;
	unsigned int	i;

	for (i = 0; i < PROBE_LATENESS_BUCKETS; i++) {
		if (s <= probe_lateness_bounds[i])
			break;
	}
	lt->count[i]++;
	lt->sum += s;
	lt->n++;
}

static void
probe_timer_cb(struct probe *p, uint64_t now)
{
	if (p->running) {
		/* a probe.run is in flight: never overlap, take the next slot */
		probe_arm(p, probe_next_slot(p, now));
		return;
	}
	record_lateness(&PROBES(p->opsd)->lateness, now > p->due_usec ?
	    now - p->due_usec : 0);
	p->manual = 0;
	probe_start(p);
}

int
probe_run_now(struct probe *p, struct rpc_pending *waiter)
{
	if (waiter != NULL) {
		p->waiters = xreallocarray(p->waiters, p->nwaiters + 1,
		    sizeof *p->waiters);
		p->waiters[p->nwaiters++] = waiter;
	}
	if (!p->running) {
		/* the scheduled slot stays where it is */
		p->manual = 1;
		probe_start(p);
	}
	return (0);
}

/* --- completion --------------------------------------------------------- */

static void
hist_put(struct probe_hist *h, const struct probe_result *r)
{
	size_t	l0 = strlen(r->reason) + 1, l1 = strlen(r->cert_subject) + 1,
		l2 = strlen(r->cert_issuer) + 1,
		l3 = strlen(r->server_version) + 1;

	char	*t;

	if (!h->text_inline)
		free(h->text);
	h->text_inline = l0 + l1 + l2 + l3 <= sizeof h->inl;
	t = h->text_inline ? h->inl : (h->text = xmalloc(l0 + l1 + l2 + l3));
	memcpy(t, r->reason, l0);
	memcpy(t + l0, r->cert_subject, l1);
	memcpy(t + l0 + l1, r->cert_issuer, l2);
	memcpy(t + l0 + l1 + l2, r->server_version, l3);
	h->ts_usec = r->ts_usec;
	h->latency_ms = r->latency_ms;
	h->cert_not_after = r->cert_not_after;
	h->http_status = r->http_status;
	h->ok = r->ok != 0;
	h->cert_verified = r->cert_verified != 0;
}

void
probe_hist_get(const struct probe *p, unsigned int i, struct probe_result *r)
{
	const struct probe_hist	*h;
	const char		*t;

	h = &p->hist[(p->hist_next + PROBE_HISTORY - 1 - i) % PROBE_HISTORY];
	memset(r, 0, sizeof *r);
	r->ts_usec = h->ts_usec;
	r->ok = h->ok;
	r->latency_ms = h->latency_ms;
	r->http_status = h->http_status;
	r->cert_not_after = h->cert_not_after;
	r->cert_verified = h->cert_verified;
	if ((t = h->text_inline ? h->inl : h->text) == NULL)
		return;
	snprintf(r->reason, sizeof r->reason, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->cert_subject, sizeof r->cert_subject, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->cert_issuer, sizeof r->cert_issuer, "%s", t);
	t += strlen(t) + 1;
	snprintf(r->server_version, sizeof r->server_version, "%s", t);
}

json_t *
probe_result_json(const struct probe_result *r)
{
	json_t		*o;
	struct tm	 tm;
	time_t		 t = (time_t)(r->ts_usec / 1000000);
	char		 ts[32];

	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:b, s:f, s:s}", "time", ts, "ok", r->ok,
	    "latency_ms", r->latency_ms, "reason", r->reason);
	if (o == NULL)
		o = json_pack("{s:s, s:b, s:f, s:s}", "time", ts, "ok", r->ok,
		    "latency_ms", r->latency_ms, "reason", "(not UTF-8)");
	if (r->http_status != 0)
		json_object_set_new(o, "http_status",
		    json_integer(r->http_status));
	if (r->cert_not_after != 0) {
		t = (time_t)r->cert_not_after;
		gmtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(o, "cert", json_pack("{s:s, s:f, s:s?, "
		    "s:s?, s:b}", "not_after", ts, "days_left",
		    (double)(r->cert_not_after - r->ts_usec / 1000000) / 86400.0,
		    "subject", r->cert_subject[0] ? r->cert_subject : NULL,
		    "issuer", r->cert_issuer[0] ? r->cert_issuer : NULL,
		    "verified", r->cert_verified));
	}
	if (r->server_version[0] != '\0')
		json_object_set_new(o, "server_version",
		    json_string(r->server_version));
	return (o);
}

json_t *
probe_json(const struct probe *p)
{
	json_t		*o, *routes;
	struct tm	 tm;
	time_t		 t = (time_t)p->since;
	char		 since[32] = "";
	unsigned int	 i;

	if (p->since != 0) {
		gmtime_r(&t, &tm);
		strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	routes = json_array();
	for (i = 0; i < p->conf->nalert; i++)
		json_array_append_new(routes, json_string(p->conf->alert[i]));
	o = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:b, s:o}",
	    "name", p->conf->name, "kind", probe_kind_name(p->conf->kind),
	    "state", probe_state_name(p->state),
	    "since", since[0] ? since : NULL,
	    "interval_ms", (json_int_t)p->conf->interval,
	    "runs_ok", (json_int_t)p->runs_ok,
	    "runs_failed", (json_int_t)p->runs_failed,
	    "state_changes", (json_int_t)p->state_changes,
	    "running", p->running, "alert", routes);
	if (p->has_last) {
		struct probe_result	r;

		probe_hist_get(p, 0, &r);
		json_object_set_new(o, "last", probe_result_json(&r));
	} else
		json_object_set_new(o, "last", json_null());
	/* where it is on its way to the other state: "up, failing 1/3" */
	json_object_set_new(o, "ok_streak", json_integer(p->ok_streak));
	json_object_set_new(o, "fail_streak", json_integer(p->fail_streak));
	json_object_set_new(o, "rise", json_integer((json_int_t)p->conf->rise));
	json_object_set_new(o, "fall", json_integer((json_int_t)p->conf->fall));
	probe_recover_json((struct probe *)p, o);
	return (o);
}

/*
 * probe.list of 300 probes is 100 KB: built and encoded whole on every
 * call it took 4 ms of the loop, and clients polling it kept the loop
 * that busy. A probe changes twice a run (it starts, it ends), so each
 * one's text is kept and encoded again only once something it shows has
 * changed; nothing in it depends on the time of the call.
 */
const char *
probe_json_text(struct probe *p, size_t *len)
{
	struct probe_text_key	 k;
	json_t			*o;

	memset(&k, 0, sizeof k);
	k.conf = (uint64_t)(uintptr_t)p->conf;
	k.reloads = p->opsd->reloads;
	k.state = (uint64_t)p->state;
	k.since = (uint64_t)p->since;
	k.runs_ok = p->runs_ok;
	k.runs_failed = p->runs_failed;
	k.has_last = (uint64_t)p->has_last;
	k.state_changes = p->state_changes;
	k.running = (uint64_t)p->running;
	k.ok_streak = p->ok_streak;
	k.fail_streak = p->fail_streak;
	k.recover = probe_recover_generation(p);
	if (p->text == NULL || memcmp(&k, &p->text_key, sizeof k) != 0) {
		free(p->text);
		p->text = NULL;
		if ((o = probe_json(p)) == NULL)
			return (NULL);
		p->text = jsonrpc_dump(o, &p->textlen);
		json_decref(o);
		if (p->text == NULL)
			return (NULL);
		memcpy(&p->text_key, &k, sizeof k);
	}
	*len = p->textlen;
	return (p->text);
}

static void
probe_state_event(struct probe *p, enum probe_state prev,
    const struct probe_result *r)
{
	struct evt	*ev;

	ev = evt_new(&EVT_PROBE_STATE);
	if (p->state == PROBE_UP)
		evt_set_priority(ev, LOG_NOTICE);
	evt_add(ev, "probe", "%s", p->conf->name);
	evt_add(ev, "kind", "%s", probe_kind_name(p->conf->kind));
	evt_add(ev, "state", "%s", probe_state_name(p->state));
	evt_add(ev, "prev_state", "%s", probe_state_name(prev));
	evt_add(ev, "reason", "%s", r->reason);
	evt_add(ev, "latency_ms", "%.1f", r->latency_ms);
	/* alert: down fires, up after down resolves; unknown->up is quiet */
	if (p->conf->nalert > 0 && (p->state == PROBE_DOWN ||
	    prev == PROBE_DOWN) && probe_recover_alert(p, prev))
		evt_alert(ev, (const char *const *)p->conf->alert,
		    p->conf->nalert, "probe", p->conf->name,
		    p->state == PROBE_DOWN);
	if (p->state == PROBE_DOWN)
		evt_emit(ev, "probe %s is down: %s", p->conf->name,
		    r->reason);
	else
		evt_emit(ev, "probe %s is %s%s%s", p->conf->name,
		    probe_state_name(p->state), r->reason[0] ? ": " : "",
		    r->reason);
}

void
probe_done(struct probe *p, struct probe_result *r)
{
	enum probe_state	 prev = p->state;
	uint64_t		 now = now_usec();
	unsigned int		 i;

	r->ts_usec = p->run_start_wall;
	harvest_drop(p);
	r->latency_ms = r->latency_ms > 0 ? r->latency_ms :
	    (double)(now - p->run_start) / 1000.0;
	p->running = 0;
	p->last_duration = (double)(now - p->run_start) / 1e6;
	p->has_last = 1;
	hist_put(&p->hist[p->hist_next], r);
	p->hist_next = (p->hist_next + 1) % PROBE_HISTORY;
	if (p->nhist < PROBE_HISTORY)
		p->nhist++;
	if (r->cert_not_after != 0)
		p->cert_not_after = r->cert_not_after;

	if (!r->ok && probe_recover_grace(p)) {
		p->runs_failed++;	/* not judged: a restart's grace */
	} else if (r->ok) {
		p->runs_ok++;
		p->ok_streak++;
		p->fail_streak = 0;
		if (p->state != PROBE_UP && p->ok_streak >= p->conf->rise)
			p->state = PROBE_UP;
	} else {
		p->runs_failed++;
		p->fail_streak++;
		p->ok_streak = 0;
		if (p->state != PROBE_DOWN && p->fail_streak >= p->conf->fall)
			p->state = PROBE_DOWN;
	}
	evt_log_about(LOG_DEBUG, "probe.result", "probe", p->conf->name,
	    "probe %s: %s in %.1f ms%s%s",
	    p->conf->name, r->ok ? "ok" : "failed", r->latency_ms,
	    r->reason[0] ? ": " : "", r->reason);
	if (p->state != prev) {
		p->state_changes++;
		p->since = (int64_t)(now_realtime_usec() / 1000000);
		probe_state_event(p, prev, r);
	}
	probe_recover_done(p, prev);

	for (i = 0; i < p->nwaiters; i++) {
		json_t *res = probe_result_json(r);

		json_object_set_new(res, "probe", json_string(p->conf->name));
		json_object_set_new(res, "state",
		    json_string(probe_state_name(p->state)));
		rpc_pending_reply(p->waiters[i], res);
	}
	free(p->waiters);
	p->waiters = NULL;
	p->nwaiters = 0;

	if (p->opsd->stopping || p->manual)
		return;		/* a manual run leaves the timer as it was */
	probe_arm(p, probe_next_slot(p, now));
}

/* --- the set of probes --------------------------------------------------- */

static struct probe_set *
probe_set(struct opsd *o)
{
	struct probe_set	*set;

	if (PROBES(o) == NULL) {
		set = o->sub[SUBSYS_PROBE] = xcalloc(1, sizeof *set);
		set->tick = evtimer_new(o->base, probe_tick_cb, set);
		set->harvest = evtimer_new(o->base, probe_harvest_cb, set);
	}
	return (PROBES(o));
}

unsigned int
probe_count(struct opsd *o)
{
	return (PROBES(o) != NULL ? PROBES(o)->n : 0);
}

struct probe *
probe_at(struct opsd *o, unsigned int i)
{
	return (PROBES(o) != NULL && i < PROBES(o)->n ? PROBES(o)->v[i] :
	    NULL);
}

struct probe *
probe_find(struct opsd *o, const char *name)
{
	unsigned int	i;

	for (i = 0; i < probe_count(o); i++) {
		if (strcmp(PROBES(o)->v[i]->conf->name, name) == 0)
			return (PROBES(o)->v[i]);
	}
	return (NULL);
}

static void
probe_cancel_run(struct probe *p, int err, const char *why)
{
	unsigned int	i;

	if (p->running) {
		harvest_drop(p);
		p->ops->cancel(p);
		p->running = 0;
	}
	for (i = 0; i < p->nwaiters; i++)
		rpc_pending_fail(p->waiters[i], err, NULL,
		    "probe %s %s before the run ended", p->conf->name, why);
	free(p->waiters);
	p->waiters = NULL;
	p->nwaiters = 0;
}

static void
probe_free(struct probe *p, int err, const char *why)
{
	unsigned int	i;

	probe_cancel_run(p, err, why);
	probe_recover_free(p);
	/* an alert of this probe would otherwise fire forever */
	if (p->state == PROBE_DOWN && p->conf->nalert > 0 &&
	    err != -ESHUTDOWN)
		alert_resolve(p->opsd, "probe", p->conf->name, why);
	if (p->ops->free != NULL)
		p->ops->free(p);
	p->armed = 0;
	probe_conf_free(p->conf);
	for (i = 0; i < PROBE_HISTORY; i++)
		if (!p->hist[i].text_inline)
			free(p->hist[i].text);
	free(p->text);
	free(p);
}

static struct probe_conf *
probe_conf_copy(const struct probe_conf *src)
{
	struct probe_conf	*pc;

	/* the config it came from is freed on reload */
	pc = ini_copy(&probe_section, src, sizeof *src);
	pc->name = xstrdup(src->name);
	pc->host = src->host != NULL ? xstrdup(src->host) : NULL;
	return (pc);
}

/* Same check, same target: keep the state and history across a reload. */
static int
probe_conf_same(const struct probe_conf *a, const struct probe_conf *b)
{
	return (a->kind == b->kind && a->interval == b->interval &&
	    ((a->url == NULL && b->url == NULL) || (a->url && b->url &&
	    strcmp(a->url, b->url) == 0)) &&
	    ((a->address == NULL && b->address == NULL) || (a->address &&
	    b->address && strcmp(a->address, b->address) == 0)) &&
	    ((a->conninfo == NULL && b->conninfo == NULL) || (a->conninfo &&
	    b->conninfo && strcmp(a->conninfo, b->conninfo) == 0)) &&
	    ((a->command == NULL && b->command == NULL) || (a->command &&
	    b->command && strcmp(a->command, b->command) == 0)));
}

void
probe_apply_config(struct opsd *o)
{
	struct probe_set	*set = probe_set(o), fresh = { .v = NULL };
	struct opsd_config	*conf = o->conf;
	struct probe		*p, *old;
	struct probe_conf	*pc;
	unsigned int		 i, j;
	uint32_t		 rnd;

	fresh.v = xcalloc(config_count(conf, &probe_section) + 1,
	    sizeof *fresh.v);
	for (i = 0; (pc = config_at(conf, &probe_section, i)) != NULL; i++) {
		/* the libraries its runs will need, now rather than on the loop */
		if (pc->kind == PROBE_POSTGRES)
			lazylib_pq();
		else if (pc->kind == PROBE_HTTP && http_probe_needs_curl(pc))
			lazylib_curl();
		old = NULL;
		for (j = 0; j < set->n; j++) {
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    pc->name) == 0) {
				old = set->v[j];
				set->v[j] = NULL;
				break;
			}
		}
		if (old != NULL && ini_equal(&probe_section, old->conf, pc)) {
			/* unchanged: a run in flight goes on undisturbed */
			fresh.v[fresh.n++] = old;
			continue;
		}
		if (old != NULL && probe_conf_same(old->conf, pc)) {
			/*
			 * Same check: keep state and history, take the new
			 * knobs. The kind's handle is rebuilt from them.
			 */
			probe_cancel_run(old, -EIO,
			    "was reconfigured");
			if (old->ops->free != NULL)
				old->ops->free(old);
			probe_conf_free(old->conf);
			old->conf = probe_conf_copy(pc);
			probe_arm(old, old->due_usec);
			fresh.v[fresh.n++] = old;
			continue;
		}
		if (old != NULL)
			probe_free(old, -EIO, "was reconfigured");
		p = xcalloc(1, sizeof *p);
		p->opsd = o;
		p->conf = probe_conf_copy(pc);
		p->ops = kind_ops[p->conf->kind];
		/*
		 * The first run at once (a bad certificate on an hourly
		 * probe alerts in seconds, not hours), spread over at most a
		 * second so that a thousand probes do not start together;
		 * later runs somewhere on the interval's grid.
		 */
		util_random(&rnd, sizeof rnd);
		p->jitter_usec = probe_grid_jitter(p, rnd);
		util_random(&rnd, sizeof rnd);
		probe_arm(p, now_usec() + (uint64_t)rnd % (p->conf->interval *
		    1000 < FIRST_RUN_SPREAD ? p->conf->interval * 1000 :
		    FIRST_RUN_SPREAD));
		fresh.v[fresh.n++] = p;
	}
	for (j = 0; j < set->n; j++) {
		if (set->v[j] != NULL)
			probe_free(set->v[j], -EIO, "was removed");
	}
	free(set->v);
	set->v = fresh.v;
	set->n = fresh.n;
}

void
probe_stop_all(struct opsd *o)
{
	unsigned int	i;

	if (PROBES(o) == NULL)
		return;
	for (i = 0; i < PROBES(o)->n; i++)
		probe_free(PROBES(o)->v[i], -ESHUTDOWN,
		    "stopped: opsd is shutting down");
	free(PROBES(o)->v);
	event_free(PROBES(o)->tick);
	event_free(PROBES(o)->harvest);
	free(PROBES(o)->hv);
	free(PROBES(o));
	o->sub[SUBSYS_PROBE] = NULL;
}
