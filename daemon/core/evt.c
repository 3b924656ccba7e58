/*
 * Event fan-out and the log sink. A record goes to journald with
 * sd_journal_sendv() (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=opsd,
 * OPSD_EVENT, MESSAGE_ID for key types, OPSD_<FIELD> for each field), or,
 * with no journal, as one JSON object per line on stderr. The JSON form
 * carries the same facts under lower-case names so one Filebeat pipeline
 * can read either.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
/* CODE_FILE/LINE would always name log_journal(): leave them out */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "evt.h"
#include "op.h"
#include "util.h"

const struct evt_type EVT_STARTED = {
	"opsd.started", "e78329775dbd44aab47bd8037a72e7df", LOG_INFO };
const struct evt_type EVT_STOPPED = {
	"opsd.stopped", "9a559617aa314ba8bdbf367545426253", LOG_INFO };
const struct evt_type EVT_RELOADED = {
	"opsd.reloaded", "125ff889ac644583ab0017f34974fd30", LOG_NOTICE };
const struct evt_type EVT_RELOAD_FAILED = {
	"opsd.reload_failed", "691587f7e8ef427b855771a148ff2655", LOG_ERR };
const struct evt_type EVT_UNCLEAN_SHUTDOWN = {
	"opsd.unclean_shutdown", "e7c3af818cc244138b2b4698924233fd",
	LOG_WARNING };
const struct evt_type EVT_RPC_AUDIT = {
	"rpc.audit", "fc6fcc9bb85e4020acf2652ac5b1fa6c", LOG_NOTICE };
const struct evt_type EVT_RPC_DENIED = {
	"rpc.denied", "021661ab9bd346ab8d6e50d62deeea35", LOG_WARNING };
const struct evt_type EVT_LOG_LEVEL = {
	"opsd.log_level", "09ba3d883fbe419fb41c4745f5fcf993", LOG_NOTICE };

const struct evt_type *const evt_core_types[] = {
	&EVT_STARTED, &EVT_STOPPED, &EVT_RELOADED, &EVT_RELOAD_FAILED,
	&EVT_UNCLEAN_SHUTDOWN, &EVT_RPC_AUDIT, &EVT_RPC_DENIED, &EVT_LOG_LEVEL,
	&EVT_OP_STEP, &EVT_OP_FINISHED, &EVT_OP_INTERRUPTED,
	NULL
};

static const char *level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
};

struct subscriber {
	evt_sink	 fn;
	void		*arg;
};

static struct {
	enum log_target		 target;
	int			 level;
	struct subscriber	*subs;
	unsigned int		 nsubs;
} logstate = { LOG_TARGET_STDERR, LOG_INFO, NULL, 0 };

static void	log_libevent(int, const char *);

void
log_init(enum log_target target)
{
	struct stat	st;

	if (target == LOG_TARGET_AUTO) {
		/*
		 * Under systemd stderr is a journal stream; otherwise use the
		 * journal only if its socket is there.
		 */
		if (getenv("JOURNAL_STREAM") != NULL ||
		    stat("/run/systemd/journal/socket", &st) == 0)
			target = LOG_TARGET_JOURNAL;
		else
			target = LOG_TARGET_STDERR;
	}
	logstate.target = target;
	/* before the event base exists: it may already have things to say */
	event_set_log_callback(log_libevent);
}

enum log_target
log_get_target(void)
{
	return (logstate.target);
}

void
log_set_level(int priority)
{
	logstate.level = priority;
}

int
log_get_level(void)
{
	return (logstate.level);
}

int
log_level_parse(const char *name)
{
	unsigned int	i;

	for (i = 0; i < nitems(level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0)
			return ((int)i);
	}
	if (strcasecmp(name, "err") == 0)
		return (LOG_ERR);
	if (strcasecmp(name, "warn") == 0)
		return (LOG_WARNING);
	return (-1);
}

const char *
log_level_name(int priority)
{
	if (priority < 0 || priority >= (int)nitems(level_names))
		return ("unknown");
	return (level_names[priority]);
}

struct evt *
evt_new(const struct evt_type *type)
{
	struct evt	*ev;

	ev = xcalloc(1, sizeof *ev);
	ev->type = type;
	ev->name = type->name;
	ev->priority = type->priority;
	return (ev);
}

void
evt_set_priority(struct evt *ev, int priority)
{
	ev->priority = priority;
}

/*
 * Values and messages often carry text from outside (a command's output,
 * a server's reply): every sink needs UTF-8 (jansson refuses anything
 * else, a journal reader shows it as a blob), so this is where it is made
 * so, once, for all of them.
 */
static void
evt_utf8(char **s, size_t len)
{
	char	*t;

	if (util_utf8_valid(*s, len))
		return;
	t = util_utf8_dup(*s, len);
	free(*s);
	*s = t;
}

void
evt_add(struct evt *ev, const char *key, const char *fmt, ...)
{
	struct evt_field	*f;
	va_list			 ap;
	int			 n;

	ev->fields = xreallocarray(ev->fields, ev->nfields + 1,
	    sizeof *ev->fields);
	f = &ev->fields[ev->nfields++];
	f->key = xstrdup(key);
	va_start(ap, fmt);
	n = xvasprintf(&f->value, fmt, ap);
	va_end(ap);
	evt_utf8(&f->value, (size_t)n);
}

void
evt_alert(struct evt *ev, const char *const *routes, unsigned int nroutes,
    const char *source, const char *object, int firing)
{
	if (ev->alert == NULL)
		ev->alert = xcalloc(1, sizeof *ev->alert);
	ev->alert->routes = routes;
	ev->alert->nroutes = nroutes;
	ev->alert->source = source;
	ev->alert->object = object;
	ev->alert->firing = firing;
}

void
evt_alert_notice(struct evt *ev, int always)
{
	if (ev->alert != NULL)
		ev->alert->notice = always ? 2 : 1;
}

static void
evt_free(struct evt *ev)
{
	unsigned int	i;

	free(ev->alert);
	for (i = 0; i < ev->nfields; i++) {
		free(ev->fields[i].key);
		free(ev->fields[i].value);
	}
	free(ev->fields);
	free(ev->message);
	free(ev);
}

static int
log_journal(const struct evt *ev)
{
	struct iovec	*iov;
	char		**strs, *p;
	unsigned int	 i, n = 0, max;
	int		 r;

	/*
	 * sd_journal_sendv() returns 0 when the journal socket does not
	 * exist at all (it fails only when journald is gone but the socket
	 * is left): check, so that the record goes to stderr, not nowhere.
	 */
	if (access("/run/systemd/journal/socket", F_OK) == -1)
		return (-errno);
	max = 5 + ev->nfields;
	iov = xcalloc(max, sizeof *iov);
	strs = xcalloc(max, sizeof *strs);
	xasprintf(&strs[n++], "MESSAGE=%s", ev->message);
	xasprintf(&strs[n++], "PRIORITY=%d", ev->priority);
	strs[n++] = xstrdup("SYSLOG_IDENTIFIER=opsd");
	xasprintf(&strs[n++], "OPSD_EVENT=%s", ev->name);
	if (ev->type != NULL && ev->type->message_id != NULL)
		xasprintf(&strs[n++], "MESSAGE_ID=%s", ev->type->message_id);
	for (i = 0; i < ev->nfields; i++) {
		xasprintf(&strs[n], "OPSD_%s=%s", ev->fields[i].key,
		    ev->fields[i].value);
		/* journal field names are upper case; stop at '=' */
		for (p = strs[n]; *p != '='; p++)
			*p = (char)toupper((unsigned char)*p);
		n++;
	}
	for (i = 0; i < n; i++) {
		iov[i].iov_base = strs[i];
		iov[i].iov_len = strlen(strs[i]);
	}
	r = sd_journal_sendv(iov, (int)n);
	for (i = 0; i < n; i++)
		free(strs[i]);
	free(strs);
	free(iov);
	return (r);
}

static void
log_stderr(const struct evt *ev)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 when[64];
	json_t		*o;
	char		*s;
	unsigned int	 i;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when,
	    "level", log_level_name(ev->priority), "event", ev->name,
	    "msg", ev->message);
	if (o == NULL)		/* message not UTF-8 */
		o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level",
		    log_level_name(ev->priority), "event", ev->name,
		    "msg", "(message not valid UTF-8)");
	if (ev->type != NULL && ev->type->message_id != NULL)
		json_object_set_new(o, "message_id",
		    json_string(ev->type->message_id));
	for (i = 0; i < ev->nfields; i++) {
		/* the five names above belong to the envelope */
		if (json_object_get(o, ev->fields[i].key) != NULL)
			continue;
		json_object_set_new(o, ev->fields[i].key,
		    json_string(ev->fields[i].value));
	}
	if ((s = json_dumps(o, JSON_COMPACT)) != NULL) {
		fprintf(stderr, "%s\n", s);
		fflush(stderr);
		free(s);
	}
	json_decref(o);
}

static void
log_write(const struct evt *ev)
{
	if (logstate.target == LOG_TARGET_STDERR || log_journal(ev) < 0)
		log_stderr(ev);
}

/*
 * libevent's own messages (and evdns's, which go the same way), that it
 * would print on stderr as "[warn] ..." and break the one-JSON-object-
 * per-line log. libevent must not be re-entered from here, and a
 * subscriber might (a follower's notification is a bufferevent write):
 * straight to the log sink, as event "libevent".
 */
static void
log_libevent(int severity, const char *msg)
{
	struct evt	ev;
	int		priority;

	switch (severity) {
	case EVENT_LOG_DEBUG:
		priority = LOG_DEBUG;
		break;
	case EVENT_LOG_MSG:
		priority = LOG_INFO;
		break;
	case EVENT_LOG_WARN:
		priority = LOG_WARNING;
		break;
	default:
		priority = LOG_ERR;
		break;
	}
	if (priority > logstate.level)
		return;
	memset(&ev, 0, sizeof ev);
	ev.name = "libevent";
	ev.priority = priority;
	ev.message = (char *)msg;	/* only read */
	log_write(&ev);
}

static void
evt_dispatch(struct evt *ev)
{
	unsigned int	i;

	if (ev->priority <= logstate.level || ev->force)
		log_write(ev);
	for (i = 0; i < logstate.nsubs; i++)
		logstate.subs[i].fn(ev, logstate.subs[i].arg);
	evt_free(ev);
}

void
evt_emit(struct evt *ev, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = xvasprintf(&ev->message, fmt, ap);
	va_end(ap);
	evt_utf8(&ev->message, (size_t)n);
	evt_dispatch(ev);
}

/*
 * A plain record, with one field about its object when key is set.
 * Skip the formatting for records nobody will read. Subscribers (alert
 * routing) act only on events that carry an alert, which a plain log
 * record never does.
 */
static void
evt_vlog(int priority, const char *name, const char *key, const char *value,
    const char *fmt, va_list ap)
{
	struct evt	*ev;
	int		 n;

	if (priority > logstate.level)
		return;
	ev = xcalloc(1, sizeof *ev);
	ev->name = name;
	ev->priority = priority;
	if (key != NULL)
		evt_add(ev, key, "%s", value);
	n = xvasprintf(&ev->message, fmt, ap);
	evt_utf8(&ev->message, (size_t)n);
	evt_dispatch(ev);
}

void
evt_log(int priority, const char *name, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	evt_vlog(priority, name, NULL, NULL, fmt, ap);
	va_end(ap);
}

void
evt_log_about(int priority, const char *name, const char *key,
    const char *value, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	evt_vlog(priority, name, key, value, fmt, ap);
	va_end(ap);
}

void
evt_subscribe(evt_sink fn, void *arg)
{
	logstate.subs = xreallocarray(logstate.subs, logstate.nsubs + 1,
	    sizeof *logstate.subs);
	logstate.subs[logstate.nsubs].fn = fn;
	logstate.subs[logstate.nsubs].arg = arg;
	logstate.nsubs++;
}

void
evt_unsubscribe(evt_sink fn, void *arg)
{
	unsigned int	i;

	for (i = 0; i < logstate.nsubs; i++) {
		if (logstate.subs[i].fn == fn && logstate.subs[i].arg == arg) {
			memmove(&logstate.subs[i], &logstate.subs[i + 1],
			    (logstate.nsubs - i - 1) * sizeof *logstate.subs);
			logstate.nsubs--;
			return;
		}
	}
}
