/*
 * The [backup NAME] schema: keys, defaults and the checks that need more
 * than one key (schedules, check/expect pairs, S3 settings, pg_dump
 * arguments opsd must own), references to [database] and [alert], and
 * the pure expectations a verification check is compared with.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "backup-int.h"
#include "ini.h"
#include "opsd-parse.h"
#include "s3.h"
#include "schedule.h"
#include "util.h"

static const char *const verify_names[] = { "each", "never", NULL };
static const char *const lock_names[] = { "none", "advisory", NULL };

static const char *
validate_expect(const char *value, char *buf, size_t len)
{
	if (!util_expect_valid(value)) {
		snprintf(buf, len, "'%s' is not a comparison such as '> 0', "
		    "'= 5', '!= 0' or 'any'", value);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_upload(const char *value, char *buf, size_t len)
{
	char	*b, *p;

	if (s3_parse_url(value, &b, &p) != 0) {
		snprintf(buf, len, "'%s' is not s3://BUCKET/PREFIX", value);
		return (buf);
	}
	free(b);
	free(p);
	return (NULL);
}

static const char *
validate_tz(const char *value, char *buf, size_t len)
{
	if (!sched_tz_valid(value)) {
		snprintf(buf, len, "unknown time zone '%s' (e.g. Europe/Berlin,"
		    " UTC or local)", value);
		return (buf);
	}
	return (NULL);
}

/*
 * retry: the waits before trying a failed scheduled run again, in order
 * ("5m 15m 1h"), or "no". 0 with the steps in ms[], or -1 with a reason.
 */
static int
retry_parse(const char *value, uint64_t *ms, unsigned int *n, char *buf,
    size_t len)
{
	char	*s, *tok, *save = NULL;
	int	 rc = 0;

	*n = 0;
	if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0)
		return (0);
	s = xstrdup(value);
	for (tok = strtok_r(s, " \t,", &save); tok != NULL && rc == 0;
	    tok = strtok_r(NULL, " \t,", &save)) {
		if (*n >= BACKUP_RETRY_MAX) {
			snprintf(buf, len, "at most %d retries",
			    BACKUP_RETRY_MAX);
			rc = -1;
		} else if (parse_duration(tok, &ms[*n]) != 0 || ms[*n] < 1000) {
			snprintf(buf, len, "'%s' is not a duration of at least "
			    "1s (retry = 5m 15m 1h, or no)", tok);
			rc = -1;
		} else
			(*n)++;
	}
	free(s);
	if (rc == 0 && *n == 0) {
		snprintf(buf, len, "no durations (retry = 5m 15m 1h, or no)");
		rc = -1;
	}
	return (rc);
}

static const char *
validate_retry(const char *value, char *buf, size_t len)
{
	uint64_t	ms[BACKUP_RETRY_MAX];
	unsigned int	n;

	return (retry_parse(value, ms, &n, buf, len) != 0 ? buf : NULL);
}

#define O(f)	offsetof(struct backup_conf, f)
static const struct ini_key backup_keys[] = {	/* sorted */
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "check", .kind = INI_LIST, .off = O(check),
	  .off2 = O(ncheck) },
	{ .name = "database", .kind = INI_STRING, .off = O(database),
	  .flags = INI_REQUIRED },
	{ .name = "dir", .kind = INI_PATH, .off = O(dir),
	  .flags = INI_REQUIRED },
	{ .name = "expect", .kind = INI_LIST, .off = O(expect),
	  .off2 = O(nexpect), .validate = validate_expect },
	{ .name = "keep_daily", .kind = INI_UINT, .off = O(keep_daily),
	  .dflt = "7", .max = 100000 },
	{ .name = "keep_last", .kind = INI_UINT, .off = O(keep_last),
	  .dflt = "0", .max = 100000 },
	{ .name = "keep_monthly", .kind = INI_UINT, .off = O(keep_monthly),
	  .dflt = "6", .max = 100000 },
	{ .name = "keep_weekly", .kind = INI_UINT, .off = O(keep_weekly),
	  .dflt = "4", .max = 100000 },
	{ .name = "lock", .kind = INI_ENUM, .off = O(lock),
	  .choices = lock_names, .dflt = "none" },
	{ .name = "max_age", .kind = INI_DURATION, .off = O(max_age),
	  .dflt = "0" },
	{ .name = "persistent", .kind = INI_BOOL, .off = O(persistent),
	  .dflt = "yes" },
	{ .name = "pg_bin_dir", .kind = INI_PATH, .off = O(pg_bin_dir) },
	{ .name = "pg_dump_args", .kind = INI_STRING, .off = O(pg_dump_args),
	  .dflt = "-Fc" },
	{ .name = "random_delay", .kind = INI_DURATION,
	  .off = O(random_delay), .dflt = "0", .max = 86400 * 1000 },
	{ .name = "remote_retention", .kind = INI_BOOL,
	  .off = O(remote_retention), .dflt = "no" },
	{ .name = "retry", .kind = INI_STRING, .off = O(retry),
	  .dflt = "5m 15m 1h", .validate = validate_retry },
	{ .name = "s3_access_key_file", .kind = INI_PATH,
	  .off = O(s3_access_key_file), .validate = ini_validate_readable },
	{ .name = "s3_endpoint", .kind = INI_STRING, .off = O(s3_endpoint) },
	{ .name = "s3_region", .kind = INI_STRING, .off = O(s3_region),
	  .dflt = "us-east-1" },
	{ .name = "s3_secret_key_file", .kind = INI_PATH,
	  .off = O(s3_secret_key_file), .validate = ini_validate_readable },
	{ .name = "schedule", .kind = INI_STRING, .off = O(schedule),
	  .flags = INI_REQUIRED },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "6h", .min = 1000 },
	{ .name = "timezone", .kind = INI_STRING, .off = O(timezone),
	  .validate = validate_tz },
	{ .name = "upload", .kind = INI_STRING, .off = O(upload),
	  .validate = validate_upload },
	{ .name = "upload_connect_timeout", .kind = INI_DURATION,
	  .off = O(upload_connect_timeout), .dflt = "10s", .min = 100 },
	{ .name = "upload_stall_timeout", .kind = INI_DURATION,
	  .off = O(upload_stall_timeout), .dflt = "60s", .min = 1000 },
	{ .name = "verify", .kind = INI_ENUM, .off = O(verify),
	  .choices = verify_names, .dflt = "each" },
	{ .name = "verify_schedule", .kind = INI_STRING,
	  .off = O(verify_schedule) },
	{ .name = "verify_timeout", .kind = INI_DURATION,
	  .off = O(verify_timeout), .dflt = "2h", .min = 1000 },
};
#undef O

static void *
backup_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct backup_conf	*b;

	b = xcalloc(1, sizeof *b);
	b->name = xstrdup(name);
	if (ini_defaults(&backup_section, b) != 0)
		fatalx("backup: a built-in default does not parse");
	config_add(conf, &backup_section, b);
	return (b);
}

static void
backup_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct backup_conf	*b = obj;
	char			 err[256], *args, *tok, *save = NULL;
	int			 kl;

	(void)ctx;
	b->line = line;
	b->alert_line = ini_keyline(&backup_section, keylines, "alert");
	b->database_line = ini_keyline(&backup_section, keylines, "database");
	if (b->schedule != NULL && sched_parse(b->schedule, b->timezone,
	    &b->spec, err, sizeof err) != 0)
		ini_error(errs, file, ini_keyline(&backup_section, keylines,
		    "schedule"), "schedule: %s", err);
	if (b->verify_schedule != NULL && sched_parse(b->verify_schedule,
	    b->timezone, &b->verify_spec, err, sizeof err) != 0)
		ini_error(errs, file, ini_keyline(&backup_section, keylines,
		    "verify_schedule"), "verify_schedule: %s", err);
	if (b->retry != NULL)
		(void)retry_parse(b->retry, b->retry_ms, &b->nretry, err,
		    sizeof err);
	if (b->ncheck != b->nexpect) {
		kl = ini_keyline(&backup_section, keylines, "check");
		if (kl == 0)
			kl = ini_keyline(&backup_section, keylines, "expect");
		ini_error(errs, file, kl, "every 'check' needs an 'expect' "
		    "(%u checks, %u expects)", b->ncheck, b->nexpect);
	}
	if (b->upload != NULL && (b->s3_endpoint == NULL ||
	    b->s3_access_key_file == NULL || b->s3_secret_key_file == NULL))
		ini_error(errs, file, ini_keyline(&backup_section, keylines,
		    "upload"), "upload needs s3_endpoint, s3_access_key_file "
		    "and s3_secret_key_file");
	if (b->s3_endpoint != NULL && strncmp(b->s3_endpoint, "http://", 7) !=
	    0 && strncmp(b->s3_endpoint, "https://", 8) != 0)
		ini_error(errs, file, ini_keyline(&backup_section, keylines,
		    "s3_endpoint"), "s3_endpoint must be an http:// or https:// "
		    "URL");
	/*
	 * opsd writes the output itself and restores it with pg_restore: no
	 * output file, no database argument, custom format only.
	 */
	args = xstrdup(b->pg_dump_args);
	kl = ini_keyline(&backup_section, keylines, "pg_dump_args");
	for (tok = strtok_r(args, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		const char *fmt = NULL;

		if (strncmp(tok, "-f", 2) == 0 || strcmp(tok, "--file") == 0 ||
		    strncmp(tok, "--file=", 7) == 0 || strncmp(tok, "-d", 2) == 0 ||
		    strncmp(tok, "--dbname", 8) == 0)
			ini_error(errs, file, kl ? kl : line, "pg_dump_args: "
			    "'%s' is set by opsd (output file and database "
			    "come from the backup's settings)", tok);
		else if (strncmp(tok, "-F", 2) == 0)
			fmt = tok[2] ? tok + 2 : strtok_r(NULL, " \t", &save);
		else if (strncmp(tok, "--format", 8) == 0)
			fmt = tok[8] == '=' ? tok + 9 :
			    strtok_r(NULL, " \t", &save);
		if ((strncmp(tok, "-F", 2) == 0 ||
		    strncmp(tok, "--format", 8) == 0) && (fmt == NULL ||
		    (strcmp(fmt, "c") != 0 && strcmp(fmt, "custom") != 0)))
			ini_error(errs, file, kl ? kl : line, "pg_dump_args: "
			    "only the custom format (-Fc) can be verified and "
			    "restored by opsd");
	}
	free(args);
}

static void
backup_conf_free_obj(void *b)
{
	backup_conf_free(b);
}

const struct ini_section backup_section = {
	"backup", 1, backup_keys, nitems(backup_keys), backup_open,
	backup_check, backup_conf_free_obj, "backups"
};

void
backup_conf_free(struct backup_conf *b)
{
	if (b == NULL)
		return;
	ini_free(&backup_section, b);
	sched_free(&b->spec);
	sched_free(&b->verify_spec);
	free(b->name);
	free(b);
}

void
backup_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct backup_conf	*b;
	unsigned int		 i, j;

	for (i = 0; (b = config_at(conf, &backup_section, i)) != NULL; i++) {
		if (b->database != NULL && db_conf_find(conf, b->database) ==
		    NULL)
			ini_error(errs, conf->path, b->database_line,
			    "database: no [database %s] section",
			    b->database);
		for (j = 0; j < b->nalert; j++) {
			if (alert_conf_find(conf, b->alert[j]) == NULL)
				ini_error(errs, conf->path, b->alert_line,
				    "alert: no [alert %s] section",
				    b->alert[j]);
		}
	}
}

struct backup_conf *
backup_conf_copy(const struct backup_conf *src)
{
	struct backup_conf	*c;

	c = ini_copy(&backup_section, src, sizeof *src);
	c->name = xstrdup(src->name);
	c->spec.tz = src->spec.tz != NULL ? xstrdup(src->spec.tz) : NULL;
	c->verify_spec.tz = src->verify_spec.tz != NULL ?
	    xstrdup(src->verify_spec.tz) : NULL;
	return (c);
}
