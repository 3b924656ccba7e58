/*
 * [audit]: what the audit looks at beyond what opsd manages (credential
 * files and env files it does not write, the databases to check), its
 * thresholds, and when it runs by itself. One section, no name: the
 * audit is of this host.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "audit-int.h"
#include "config.h"
#include "db.h"
#include "ini.h"
#include "util.h"

static const char *const sev_choices[] = {
	"info", "low", "medium", "high", "critical", NULL
};

static const char *
validate_abs(const char *value, char *buf, size_t len)
{
	if (value[0] != '/') {
		snprintf(buf, len, "'%s' is not an absolute path", value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct audit_conf, f)
static const struct ini_key audit_keys[] = {	/* sorted */
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "alert_min", .kind = INI_ENUM, .off = O(alert_min),
	  .choices = sev_choices, .dflt = "high" },
	{ .name = "databases", .kind = INI_LIST, .off = O(databases),
	  .off2 = O(ndatabases) },
	{ .name = "env_files", .kind = INI_LIST, .off = O(env_files),
	  .off2 = O(nenv_files), .validate = validate_abs },
	{ .name = "max_secret_age", .kind = INI_DURATION,
	  .off = O(max_secret_age), .dflt = "90d" },
	{ .name = "min_length", .kind = INI_UINT, .off = O(min_length),
	  .dflt = "16", .min = 1, .max = 4096 },
	{ .name = "min_stats_age", .kind = INI_DURATION,
	  .off = O(min_stats_age), .dflt = "7d" },
	{ .name = "random_delay", .kind = INI_DURATION,
	  .off = O(random_delay), .dflt = "0", .max = 12ULL * 3600 * 1000 },
	{ .name = "require_password_expiry", .kind = INI_BOOL,
	  .off = O(require_password_expiry), .dflt = "no" },
	{ .name = "schedule", .kind = INI_STRING, .off = O(schedule) },
	{ .name = "secret_files", .kind = INI_LIST, .off = O(secret_files),
	  .off2 = O(nsecret_files), .validate = validate_abs },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "10s", .min = 100, .max = 600000 },
	{ .name = "tls", .kind = INI_LIST, .off = O(tls), .off2 = O(ntls),
	  .validate = audit_tls_validate },
	{ .name = "tls_ca_file", .kind = INI_PATH, .off = O(tls_ca_file),
	  .validate = ini_validate_readable },
	{ .name = "unit_file", .kind = INI_PATH, .off = O(unit_file) },
	{ .name = "units", .kind = INI_LIST, .off = O(units),
	  .off2 = O(nunits) },
};
#undef O

#define AUDIT_FILES_MAX	256
#define AUDIT_TLS_MAX	32

static void *
audit_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct audit_conf	*a;

	(void)name;
	a = xcalloc(1, sizeof *a);
	a->name = xstrdup("audit");
	if (ini_defaults(&audit_section, a) != 0)
		fatalx("audit: a built-in default does not parse");
	config_add(conf, &audit_section, a);
	return (a);
}

#define KL(k)	ini_keyline(&audit_section, keylines, (k))

static int
audit_derive(struct audit_conf *a, char *err, size_t errlen)
{
	sched_free(&a->spec);
	memset(&a->spec, 0, sizeof a->spec);
	a->have_spec = 0;
	if (a->schedule == NULL)
		return (0);
	if (sched_parse(a->schedule, NULL, &a->spec, err, errlen) != 0)
		return (-EINVAL);
	a->have_spec = 1;
	return (0);
}

static void
audit_check_section(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct audit_conf	*a = obj;
	char			 err[256];
	unsigned int		 i, j;

	(void)ctx;
	a->line = line;
	a->alert_line = KL("alert");
	a->databases_line = KL("databases");
	if (audit_derive(a, err, sizeof err) != 0)
		ini_error(errs, file, KL("schedule"), "schedule: %s", err);
	if (a->nsecret_files + a->nenv_files > AUDIT_FILES_MAX)
		ini_error(errs, file, line, "at most %d secret_files and "
		    "env_files together", AUDIT_FILES_MAX);
	for (i = 0; i < a->nenv_files; i++)
		for (j = i + 1; j < a->nenv_files; j++)
			if (strcmp(a->env_files[i], a->env_files[j]) == 0)
				ini_error(errs, file, KL("env_files"), "env_files "
				    "%s is listed twice", a->env_files[i]);
	for (i = 0; i < a->nsecret_files; i++)
		for (j = i + 1; j < a->nsecret_files; j++)
			if (strcmp(a->secret_files[i], a->secret_files[j]) == 0)
				ini_error(errs, file, KL("secret_files"),
				    "secret_files %s is listed twice",
				    a->secret_files[i]);
	if (a->nunits > AUDIT_TLS_MAX)
		ini_error(errs, file, KL("units"), "at most %d units",
		    AUDIT_TLS_MAX);
	if (a->ntls > AUDIT_TLS_MAX)
		ini_error(errs, file, KL("tls"), "at most %d tls endpoints",
		    AUDIT_TLS_MAX);
	if (a->nalert > 0 && a->schedule == NULL)
		ini_error(errs, file, a->alert_line, "alert is for scheduled "
		    "runs, and there is no schedule");
}

const struct ini_section audit_section = {
	"audit", 0, audit_keys, nitems(audit_keys), audit_open,
	audit_check_section, audit_conf_free, "audits"
};

void
audit_conf_free(void *obj)
{
	struct audit_conf	*a = obj;

	if (a == NULL)
		return;
	ini_free(&audit_section, a);
	sched_free(&a->spec);
	free(a->name);
	free(a);
}

struct audit_conf *
audit_conf_copy(const struct audit_conf *src)
{
	struct audit_conf	*a;
	char			 err[256];

	a = ini_copy(&audit_section, src, sizeof *src);
	a->name = xstrdup(src->name);
	memset(&a->spec, 0, sizeof a->spec);
	if (audit_derive(a, err, sizeof err) != 0)
		fatalx("audit: a checked schedule does not parse: %s", err);
	return (a);
}

struct audit_conf *
audit_conf_get(const struct opsd_config *conf)
{
	return (config_count(conf, &audit_section) > 0 ?
	    config_at(conf, &audit_section, 0) : NULL);
}

void
audit_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct audit_conf	*a = audit_conf_get(conf);
	unsigned int		 i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nalert; i++)
		if (alert_conf_find(conf, a->alert[i]) == NULL)
			ini_error(errs, conf->path, a->alert_line, "unknown "
			    "alert route '%s'", a->alert[i]);
	for (i = 0; i < a->ndatabases; i++)
		if (db_conf_find(conf, a->databases[i]) == NULL)
			ini_error(errs, conf->path, a->databases_line, "unknown "
			    "database '%s' (a [database NAME] section)",
			    a->databases[i]);
}
