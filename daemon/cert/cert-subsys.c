/*
 * The certificates' entry in the subsystem registry (core/subsys.h), its
 * /metrics collector and its opsd.health member.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "cert-int.h"
#include "daemon.h"
#include "evt.h"
#include "ini.h"
#include "metrics.h"
#include "op.h"
#include "rpc.h"
#include "status.h"
#include "subsys.h"

void
cert_metrics(struct opsd *o, struct evbuffer *buf)
{
	struct cert_set	*set = cert_set_get(o);
	struct cert	*c;
	unsigned int	 i, k;
	static const char *const results[] = { "ok", "failed", "rolled_back" };

	if (set->n == 0)
		return;
	/* cert names are [A-Za-z0-9._-]: no escaping; endpoints are */
	metrics_head(buf, "opsd_cert_expiry_timestamp_seconds", "gauge",
	    "When the certificate in the file expires (absent: unreadable).");
	for (i = 0; i < set->n; i++)
		if ((c = set->v[i])->have_info)
			evbuffer_add_printf(buf, "opsd_cert_expiry_timestamp_"
			    "seconds{cert=\"%s\"} %lld\n", c->conf->name,
			    (long long)c->info.not_after);
	metrics_head(buf, "opsd_cert_renewals_total", "counter",
	    "Renewals by result (rolled_back: the old certificate put back).");
	for (i = 0; i < set->n; i++) {
		c = set->v[i];
		for (k = 0; k < 3; k++)
			evbuffer_add_printf(buf, "opsd_cert_renewals_total{cert="
			    "\"%s\",result=\"%s\"} %llu\n", c->conf->name,
			    results[k], (unsigned long long)(k == 0 ?
			    c->meta.n_ok : k == 1 ? c->meta.n_failed :
			    c->meta.n_rolled_back));
	}
	metrics_head(buf, "opsd_cert_served_answered", "gauge",
	    "1 if the endpoint answered the last check, 0 if it could not be "
	    "asked (absent: not checked yet).");
	for (i = 0; i < set->n; i++) {
		c = set->v[i];
		for (k = 0; k < c->conf->neps; k++) {
			if (!c->eps[k].checked)
				continue;
			evbuffer_add_printf(buf, "opsd_cert_served_answered{cert="
			    "\"%s\",endpoint=\"", c->conf->name);
			metrics_label(buf, c->conf->eps[k].text);
			evbuffer_add_printf(buf, "\"} %d\n", c->eps[k].matches !=
			    CERT_SERVED_UNKNOWN);
		}
	}
	metrics_head(buf, "opsd_cert_served_matches", "gauge",
	    "1 if the endpoint serves the file's certificate, 0 if it serves "
	    "another or none (absent: not checked yet, or it could not be "
	    "asked: see opsd_cert_served_answered).");
	for (i = 0; i < set->n; i++) {
		c = set->v[i];
		for (k = 0; k < c->conf->neps; k++) {
			if (!c->eps[k].checked || c->eps[k].matches ==
			    CERT_SERVED_UNKNOWN)
				continue;
			evbuffer_add_printf(buf, "opsd_cert_served_matches{cert="
			    "\"%s\",endpoint=\"", c->conf->name);
			metrics_label(buf, c->conf->eps[k].text);
			evbuffer_add_printf(buf, "\"} %d\n", c->eps[k].matches);
		}
	}
	metrics_head(buf, "opsd_cert_next_renewal_timestamp_seconds", "gauge",
	    "When the certificate is due for renewal (absent: no renew "
	    "command).");
	for (i = 0; i < set->n; i++)
		if (cert_next_renewal(set->v[i]) > 0)
			evbuffer_add_printf(buf, "opsd_cert_next_renewal_"
			    "timestamp_seconds{cert=\"%s\"} %lld\n",
			    set->v[i]->conf->name,
			    (long long)cert_next_renewal(set->v[i]));
}

/*
 * Unreadable or expired is critical (clients are failing or about to);
 * expiring, a served certificate that differs, an overdue or failed
 * renewal are warnings (what is served still works).
 */
enum health_status
cert_health(struct opsd *o, struct health *h)
{
	struct cert_set		*set = cert_set_get(o);
	enum health_status	 worst = HEALTH_OK;
	json_t			*list;
	const char		*st;
	unsigned int		 i, ok = 0;

	if (set->n == 0)
		return (HEALTH_OK);
	list = json_array();
	for (i = 0; i < set->n; i++) {
		st = cert_state_word(set->v[i]);
		json_array_append_new(list, json_pack("{s:s, s:s}", "name",
		    set->v[i]->conf->name, "state", st));
		if (strcmp(st, "unreadable") == 0 || strcmp(st, "expired") ==
		    0) {
			health_problem(h, "cert %s %s", set->v[i]->conf->name,
			    st);
			worst = HEALTH_CRITICAL;
		} else if (strcmp(st, "ok") == 0 || strcmp(st, "renewing") ==
		    0 || strcmp(st, "unchecked") == 0)
			ok++;
		else {
			health_problem(h, "cert %s %s", set->v[i]->conf->name,
			    strcmp(st, "differs") == 0 ? "served differs" :
			    strcmp(st, "unreachable") == 0 ? "served "
			    "certificate could not be checked" :
			    strcmp(st, "failed") == 0 ? "renewal failed" : st);
			if (worst < HEALTH_WARNING)
				worst = HEALTH_WARNING;
		}
	}
	json_object_set_new(h->result, "certs", json_pack("{s:I, s:o}",
	    "total", (json_int_t)set->n, "list", list));
	if (ok > 0)
		health_fine(h, "%u cert%s valid", ok, ok == 1 ? "" : "s");
	return (worst);
}

/*
 * The status page's section: from what cert.list answers, the days left,
 * whether every endpoint serves the file's certificate (null: not asked
 * yet), and the error, judged as cert_health() judges them.
 */
static json_t *
cert_status(struct opsd *o)
{
	struct cert_set	*set = cert_set_get(o);
	json_t		*sec, *items, *j, *err, *it;
	const char	*st, *level;
	unsigned int	 i;

	if (set->n == 0)
		return (NULL);
	sec = status_section("Certificates", "no certificates");
	items = json_object_get(sec, "items");
	for (i = 0; i < set->n; i++) {
		j = cert_json(set->v[i], 0);
		st = cert_state_word(set->v[i]);
		level = strcmp(st, "unreadable") == 0 || strcmp(st, "expired") ==
		    0 ? "critical" : strcmp(st, "ok") == 0 ? "ok" :
		    strcmp(st, "renewing") == 0 || strcmp(st, "unchecked") == 0 ?
		    "unknown" : "warning";
		if ((err = json_object_get(j, "file_error")) == NULL)
			err = json_object_get(j, "last_error");
		it = json_pack("{s:s, s:s, s:O?, s:O?, "
		    "s:O?, s:O?, s:O?, s:s}", "name", set->v[i]->conf->name,
		    "state", st, "days_left", json_object_get(j, "days_left"),
		    "not_after", json_object_get(j, "not_after"),
		    "served_matches", json_object_get(j, "served_matches"),
		    "next_renewal", json_object_get(j, "next_renewal"),
		    "error", err, "level", level);
		if (strcmp(level, "critical") == 0 || strcmp(level,
		    "warning") == 0)	/* cert_health()'s words */
			json_object_set_new(it, "problem", json_sprintf(
			    "cert %s %s", set->v[i]->conf->name,
			    strcmp(st, "differs") == 0 ? "served differs" :
			    strcmp(st, "failed") == 0 ? "renewal failed" : st));
		json_array_append_new(items, it);
		json_decref(j);
	}
	return (sec);
}

static const struct ini_section *const cert_sections[] = {
	&cert_section, NULL
};

static const struct evt_type *const cert_events[] = {
	&EVT_CERT_EXPIRING, &EVT_CERT_UNREADABLE, &EVT_CERT_RENEWED,
	&EVT_CERT_RENEWAL_FAILED, &EVT_CERT_SERVED_DIFFERS,
	&EVT_CERT_SERVED_UNCHECKED, &EVT_CERT_OVERDUE,
	&EVT_CERT_RECOVERED, NULL
};

static const struct op_kind *const cert_op_kinds[] = {
	&cert_renew_kind, NULL
};

const struct subsys cert_subsys = {
	.name = "cert",
	.sections = cert_sections,
	.check_refs = cert_conf_check_refs,
	.apply = cert_apply_config,
	.stop = cert_stop_all,
	.busy = cert_busy,
	.free = cert_free_all,
	.health = cert_health,
	.status = cert_status,
	.metrics = cert_metrics,
	.methods = rpc_cert_methods,
	.nmethods = &rpc_cert_nmethods,
	.events = cert_events,
	.op_kinds = cert_op_kinds,
};
