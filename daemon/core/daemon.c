/*
 * The daemon's life cycle as other files see it: set-up and release of
 * the core, start, reload (swap in a new config only when it is valid as
 * a whole) and shutdown, each walking the subsystem registry (subsys.h).
 * main.c adds the socket, signals and systemd; this file is linked into
 * the tests and the fuzz targets as well, so they set up what main() does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "child.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "http.h"
#include "jobs.h"
#include "metrics.h"
#include "op.h"
#include "rpc.h"
#include "subsys.h"
#include "util.h"

static void	reload_errors_keep(struct opsd *, const struct config_errors *);

int
opsd_init(struct opsd *o)
{
	if ((o->base = event_base_new()) == NULL)
		return (-1);
	rpc_init(o);
	if (child_init(o) != 0 || http_init(o) != 0)
		return (-1);
	o->dns = evdns_base_new(o->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (o->dns == NULL)	/* no resolv.conf: numeric addresses still work */
		o->dns = evdns_base_new(o->base, 0);
	return (0);
}

void
opsd_start(struct opsd *o)
{
	const struct subsys	*s;
	size_t			 i;
	int			 r;

	/* the config loaded at start is the first successful load */
	o->last_reload_ok = 1;
	o->last_reload_success = o->start_time != 0 ? o->start_time :
	    time(NULL);
	/* unreadable state: logged, and opsd runs without its history */
	op_journal_open(o);
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->op_kinds != NULL)
			op_kind_register_all(o, subsys_table[i]->op_kinds);
	metrics_start(o);
	for (i = 0; i < SUBSYS_N; i++) {
		s = subsys_table[i];
		if (s->init != NULL && (r = s->init(o)) != 0)
			fatalx("%s: cannot start (%d)", s->name, r);
		if (s->apply != NULL)
			s->apply(o);
	}
	/* what a kill -9 left half done: resumed or rolled back */
	op_recover_all(o);
}

void
opsd_free(struct opsd *o)
{
	size_t		i;

	for (i = SUBSYS_N; i-- > 0;)
		if (subsys_table[i]->free != NULL)
			subsys_table[i]->free(o);
	jobs_stop_all(o);
	metrics_stop(o);
	child_shutdown(o);
	op_journal_close(o);
	for (i = 0; i < nitems(o->ev_signals); i++) {
		if (o->ev_signals[i] != NULL)
			event_free(o->ev_signals[i]);
		o->ev_signals[i] = NULL;
	}
	if (o->ev_watchdog != NULL)
		event_free(o->ev_watchdog);
	if (o->ev_tick != NULL)
		event_free(o->ev_tick);
	if (o->ev_deadline != NULL)
		event_free(o->ev_deadline);
	o->ev_watchdog = o->ev_tick = o->ev_deadline = NULL;
	reload_errors_keep(o, NULL);
	rpc_opsd_free(o);
	rpc_free(o);
	http_shutdown(o);
	if (o->dns != NULL)
		evdns_base_free(o->dns, 0);
	o->dns = NULL;
	if (o->base != NULL)
		event_base_free(o->base);
	o->base = NULL;
}

void
opsd_status_line(struct opsd *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s; %u client%s; config %s%s",
	    o->stopping ? "stopping" : "running", control_nconns(o),
	    control_nconns(o) == 1 ? "" : "s", o->conf_path,
	    o->reloads ? " (reloaded)" : "");
}

void
opsd_notify_status(struct opsd *o)
{
	char	line[512];

	opsd_status_line(o, line, sizeof line);
	sd_notifyf(0, "STATUS=%s", line);
}

/*
 * opsd.health reports why the last reload failed until one succeeds: a
 * copy, since the caller's list goes with its reply. NULL: forget them.
 */
static void
reload_errors_keep(struct opsd *o, const struct config_errors *errs)
{
	unsigned int	i;

	if (o->reload_errors != NULL) {
		config_errors_clear(o->reload_errors);
		free(o->reload_errors);
		o->reload_errors = NULL;
	}
	if (errs == NULL)
		return;
	o->reload_errors = xcalloc(1, sizeof *o->reload_errors);
	o->reload_errors->v = xcalloc(errs->n + 1, sizeof *errs->v);
	for (i = 0; i < errs->n; i++)
		o->reload_errors->v[i] = xstrdup(errs->v[i]);
	o->reload_errors->n = errs->n;
}

int
opsd_reload(struct opsd *o, struct config_errors *errs)
{
	struct opsd_config	*conf;
	struct evt		*ev;
	unsigned int		 i;

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)now_usec());
	if ((conf = config_load(o->conf_path, errs)) == NULL) {
		for (i = 0; i < errs->n; i++) {
			ev = evt_new(&EVT_RELOAD_FAILED);
			evt_add(ev, "config", "%s", o->conf_path);
			evt_emit(ev, "reload rejected, keeping the running "
			    "configuration: %s", errs->v[i]);
		}
		o->last_reload_ok = 0;
		o->last_reload_failure = time(NULL);
		reload_errors_keep(o, errs);
		sd_notify(0, "READY=1");
		opsd_notify_status(o);
		return (-1);
	}
	if (strcmp(conf->state_dir, o->conf->state_dir) != 0)
		log_warn("config.reload", "state_dir changed to %s; it is used "
		    "from the next start on", conf->state_dir);
	/* state_dir moves only at restart: keep the live one */
	free(conf->state_dir);
	conf->state_dir = xstrdup(o->conf->state_dir);

	config_free(o->conf);
	o->conf = conf;
	o->reloads++;
	o->last_reload_ok = 1;
	o->last_reload_success = time(NULL);
	reload_errors_keep(o, NULL);
	log_set_level(conf->log_level);
	control_reconfigure(o);
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->apply != NULL)
			subsys_table[i]->apply(o);
	metrics_reconfigure(o);

	ev = evt_new(&EVT_RELOADED);
	evt_add(ev, "config", "%s", o->conf_path);
	evt_emit(ev, "configuration reloaded from %s", o->conf_path);
	sd_notify(0, "READY=1");
	opsd_notify_status(o);
	return (0);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;

	(void)fd;
	(void)what;
	log_warn("opsd.stop", "work still pending after %llums; stopping "
	    "anyway", (unsigned long long)o->conf->shutdown_timeout);
	event_base_loopbreak(o->base);
}

void
opsd_shutdown(struct opsd *o, const char *why)
{
	struct timeval	tv;
	unsigned int	i;

	if (o->stopping)
		return;
	o->stopping = 1;
	sd_notify(0, "STOPPING=1");
	log_info("opsd.stop", "stopping: %s", why);

	for (i = 0; i < nitems(o->ev_signals); i++) {
		if (o->ev_signals[i] != NULL && i != 0)	/* keep SIGHUP ignored */
			event_del(o->ev_signals[i]);
	}
	/*
	 * Waiting clients get their error before their connection drains;
	 * subsystems stop in reverse registry order.
	 */
	for (i = SUBSYS_N; i-- > 0;)
		if (subsys_table[i]->stop != NULL)
			subsys_table[i]->stop(o);
	control_stop(o);
	if (o->ev_tick != NULL)
		event_del(o->ev_tick);
	/*
	 * The watchdog keeps running until the end. The loop ends by itself
	 * once nothing is pending; the deadline bounds the wait.
	 */
	tv.tv_sec = (time_t)(o->conf->shutdown_timeout / 1000);
	tv.tv_usec = (suseconds_t)(o->conf->shutdown_timeout % 1000) * 1000;
	o->ev_deadline = evtimer_new(o->base, deadline_cb, o);
	evtimer_add(o->ev_deadline, &tv);
	opsd_maybe_exit(o);
}

/*
 * Once stopping: the loop ends when the last client is answered and no
 * subsystem has work the stop waits for, such as an alert being
 * delivered (or the deadline passes).
 */
void
opsd_maybe_exit(struct opsd *o)
{
	size_t	i;

	if (!o->stopping || control_nconns(o) != 0)
		return;
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->busy != NULL &&
		    subsys_table[i]->busy(o) != 0)
			return;
	event_base_loopexit(o->base, NULL);
}

