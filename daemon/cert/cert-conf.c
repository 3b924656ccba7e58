/*
 * The [cert NAME] schema: the files (path, key, chain), when to warn and
 * to renew, the commands (renew, on_renew), the endpoints that must serve
 * the file (served_at), and when to check. The check parses every
 * endpoint once, so the running code never sees a malformed one.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "cert-int.h"
#include "config.h"
#include "ini.h"
#include "util.h"

static const char *
validate_endpoint(const char *value, char *buf, size_t len)
{
	struct cert_endpoint	ep;
	char			err[256];

	if (cert_endpoint_parse(value, &ep, err, sizeof err) != 0) {
		snprintf(buf, len, "served_at %s (host:port, https://host[:port]"
		    "/ or postgres://host[:port])", err);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct cert_conf, f)
static const struct ini_key cert_keys[] = {	/* sorted */
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "ca_file", .kind = INI_PATH, .off = O(ca_file),
	  .validate = ini_validate_readable },
	{ .name = "chain", .kind = INI_PATH, .off = O(chain) },
	{ .name = "confirm_timeout", .kind = INI_DURATION,
	  .off = O(confirm_timeout), .dflt = "30s", .min = 100 },
	{ .name = "key", .kind = INI_PATH, .off = O(key) },
	{ .name = "on_renew", .kind = INI_LIST, .off = O(on_renew),
	  .off2 = O(non_renew) },
	{ .name = "on_renew_timeout", .kind = INI_DURATION,
	  .off = O(on_renew_timeout), .dflt = "60s", .min = 100 },
	{ .name = "path", .kind = INI_PATH, .off = O(path),
	  .flags = INI_REQUIRED },
	{ .name = "random_delay", .kind = INI_DURATION,
	  .off = O(random_delay), .dflt = "1h", .max = 12ULL * 3600 * 1000 },
	{ .name = "renew", .kind = INI_STRING, .off = O(renew) },
	{ .name = "renew_days", .kind = INI_UINT, .off = O(renew_days),
	  .dflt = "0", .max = 3650 },
	{ .name = "renew_timeout", .kind = INI_DURATION,
	  .off = O(renew_timeout), .dflt = "10m", .min = 100 },
	{ .name = "schedule", .kind = INI_STRING, .off = O(schedule),
	  .dflt = "0 0,12 * * *" },
	{ .name = "served_at", .kind = INI_LIST, .off = O(served_at),
	  .off2 = O(nserved_at), .validate = validate_endpoint },
	{ .name = "servername", .kind = INI_STRING, .off = O(servername) },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "10s", .min = 100 },
	{ .name = "warn_days", .kind = INI_UINT, .off = O(warn_days),
	  .dflt = "14", .max = 3650 },
};
#undef O

static void *
cert_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct cert_conf	*c;

	c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	if (ini_defaults(&cert_section, c) != 0)
		fatalx("cert: a built-in default does not parse");
	config_add(conf, &cert_section, c);
	return (c);
}

#define KL(k)	ini_keyline(&cert_section, keylines, (k))

/* Derived from the keys; also used by the copy. */
static int
cert_derive(struct cert_conf *c, char *err, size_t errlen)
{
	unsigned int	i;

	memset(&c->spec, 0, sizeof c->spec);
	if (sched_parse(c->schedule, NULL, &c->spec, err, errlen) != 0)
		return (-EINVAL);
	c->neps = 0;
	for (i = 0; i < c->nserved_at && i < CERT_ENDPOINTS_MAX; i++)
		if (cert_endpoint_parse(c->served_at[i], &c->eps[c->neps], err,
		    errlen) == 0)
			c->neps++;
	return (0);
}

static void
cert_check_section(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct cert_conf	*c = obj;
	char			 err[256];
	unsigned int		 i, j;

	(void)ctx;
	c->line = line;
	c->alert_line = KL("alert");
	if (cert_derive(c, err, sizeof err) != 0)
		ini_error(errs, file, KL("schedule"), "schedule: %s", err);
	if (c->nserved_at > CERT_ENDPOINTS_MAX)
		ini_error(errs, file, KL("served_at"), "at most %d served_at "
		    "endpoints", CERT_ENDPOINTS_MAX);
	for (i = 0; i < c->nserved_at; i++)
		for (j = i + 1; j < c->nserved_at; j++)
			if (strcmp(c->served_at[i], c->served_at[j]) == 0)
				ini_error(errs, file, KL("served_at"), "served_at "
				    "%s is listed twice", c->served_at[i]);
	if (c->non_renew > 0 && c->renew == NULL)
		ini_error(errs, file, KL("on_renew"), "on_renew runs after a "
		    "renewal, and there is no renew command");
	if (c->renew != NULL && c->renew[0] == '\0')
		ini_error(errs, file, KL("renew"), "renew is empty");
	if (c->chain != NULL && strcmp(c->chain, c->path) == 0)
		ini_error(errs, file, KL("chain"), "chain is the certificate "
		    "file itself (leave chain unset when path holds the "
		    "chain)");
	if (c->renew_days > 0 && c->warn_days >= c->renew_days &&
	    KL("warn_days") != 0)
		ini_error(errs, file, KL("warn_days"), "warn_days %llu is not "
		    "before renew_days %llu: it would warn before every "
		    "renewal", (unsigned long long)c->warn_days,
		    (unsigned long long)c->renew_days);
}

const struct ini_section cert_section = {
	"cert", 1, cert_keys, nitems(cert_keys), cert_open, cert_check_section,
	cert_conf_free, "certs"
};

void
cert_conf_free(void *obj)
{
	struct cert_conf	*c = obj;

	if (c == NULL)
		return;
	ini_free(&cert_section, c);
	sched_free(&c->spec);
	free(c->name);
	free(c);
}

struct cert_conf *
cert_conf_copy(const struct cert_conf *src)
{
	struct cert_conf	*c;
	char			 err[256];

	c = ini_copy(&cert_section, src, sizeof *src);
	c->name = xstrdup(src->name);
	if (cert_derive(c, err, sizeof err) != 0)
		fatalx("cert %s: a checked schedule does not parse: %s",
		    c->name, err);
	return (c);
}

void
cert_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct cert_conf	*c, *d;
	unsigned int		 i, j, n;

	n = config_count(conf, &cert_section);
	for (i = 0; i < n; i++) {
		c = config_at(conf, &cert_section, i);
		for (j = 0; j < c->nalert; j++)
			if (alert_conf_find(conf, c->alert[j]) == NULL)
				ini_error(errs, conf->path, c->alert_line,
				    "unknown alert route '%s'", c->alert[j]);
		/* two renewals of one file would race each other */
		for (j = i + 1; j < n; j++) {
			d = config_at(conf, &cert_section, j);
			if (strcmp(c->path, d->path) == 0 && (c->renew != NULL ||
			    d->renew != NULL))
				ini_error(errs, conf->path, d->line, "certs %s "
				    "and %s watch the same file %s and one of "
				    "them renews it", c->name, d->name, c->path);
		}
	}
}
