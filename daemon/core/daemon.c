/*
 * The daemon's life cycle as other files see it: the status line, reload
 * (swap in a new config only when it is valid as a whole) and shutdown.
 * main.c does start-up; this file is linked into the tests as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "alert.h"
#include "backup.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "metrics.h"
#include "probe.h"
#include "util.h"

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
	log_set_level(conf->log_level);
	control_reconfigure(o);
	alert_apply_config(o);
	probe_apply_config(o);
	backup_apply_config(o);
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
	/* waiting clients get their error before their connection drains */
	probe_stop_all(o);
	backup_stop_all(o);
	alert_fail_waiters(o);
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
 * Once stopping: the loop ends when the last client is answered and the
 * last alert delivered (or the deadline passes).
 */
void
opsd_maybe_exit(struct opsd *o)
{
	if (o->stopping && control_nconns(o) == 0 &&
	    alert_deliveries(o) == 0)
		event_base_loopexit(o->base, NULL);
}

