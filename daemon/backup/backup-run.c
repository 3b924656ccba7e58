/*
 * Backups: the [database NAME] and [backup NAME] schema, the run state
 * machine, verification, restore, retention, staleness and the off-site
 * copy. See backup.h for the shape of a run.
 *
 * Nothing here blocks the loop on something slow: pg_dump, pg_restore,
 * sha256sum and the final fsync (`sync FILE`) are children; queries go
 * through pg.c; uploads through s3.c. What stays inline is writing dump
 * chunks to the local file as they arrive (page cache) and small state
 * files.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "alert.h"
#include "backup.h"
#include "child.h"
#include "daemon.h"
#include "db.h"
#include "evt.h"
#include "ini.h"
#include "jobs.h"
#include "opsd-parse.h"
#include "opsd-proto.h"
#include "pg.h"
#include "probe.h"
#include "rpc.h"
#include "s3.h"
#include "state.h"
#include "util.h"

#define SYNC_EVERY	(16 * 1024 * 1024)
#define STALE_CHECK_S	30
#define UPLOAD_TRIES	4

const struct evt_type EVT_BACKUP_OK = {
	"backup.succeeded", "8fe0115604a040458f5ca93fecc0e16e", LOG_INFO };
const struct evt_type EVT_BACKUP_FAILED = {
	"backup.failed", "e446442834a44bafb54f8da528c61a62", LOG_ERR };
const struct evt_type EVT_BACKUP_VERIFIED = {
	"backup.verified", "743b7536464e47af9ffc3352c174cdcd", LOG_INFO };
const struct evt_type EVT_BACKUP_VERIFY_FAILED = {
	"backup.verify_failed", "852be729294c41b59eb76d79360b8800", LOG_ERR };
const struct evt_type EVT_BACKUP_UPLOAD_FAILED = {
	"backup.upload_failed", "cd9eeabdf75c43d2b5d34dc149ebb045", LOG_ERR };
const struct evt_type EVT_BACKUP_SKIPPED = {
	"backup.skipped", "92e7c5cd98764b95b2cc50d0ad4da23c", LOG_NOTICE };
const struct evt_type EVT_BACKUP_STALE = {
	"backup.stale", "1b8110cafdfb472295819b15de43add1", LOG_WARNING };
const struct evt_type EVT_BACKUP_INTERRUPTED = {
	"backup.interrupted", "5d61243ff3e547af8d0cdfe2664aa045", LOG_WARNING };
const struct evt_type EVT_BACKUP_RESTORED = {
	"backup.restored", "449fddcdaefe4b7898874a5ff4850d73", LOG_NOTICE };

/* --- configuration ------------------------------------------------------ */

static const char *const verify_names[] = { "each", "never", NULL };
static const char *const lock_names[] = { "none", "advisory", NULL };

static const char *
validate_file(const char *value, char *buf, size_t len)
{
	if (value[0] != '/' || access(value, R_OK) != 0) {
		snprintf(buf, len, "cannot read %s: %s", value,
		    value[0] != '/' ? "must be an absolute path" :
		    strerror(errno));
		return (buf);
	}
	return (NULL);
}

static const char *
validate_expect(const char *value, char *buf, size_t len)
{
	if (!backup_expect_valid(value)) {
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
	{ .name = "s3_access_key_file", .kind = INI_PATH,
	  .off = O(s3_access_key_file), .validate = validate_file },
	{ .name = "s3_endpoint", .kind = INI_STRING, .off = O(s3_endpoint) },
	{ .name = "s3_region", .kind = INI_STRING, .off = O(s3_region),
	  .dflt = "us-east-1" },
	{ .name = "s3_secret_key_file", .kind = INI_PATH,
	  .off = O(s3_secret_key_file), .validate = validate_file },
	{ .name = "schedule", .kind = INI_STRING, .off = O(schedule),
	  .flags = INI_REQUIRED },
	{ .name = "timeout", .kind = INI_DURATION, .off = O(timeout),
	  .dflt = "6h", .min = 1000 },
	{ .name = "timezone", .kind = INI_STRING, .off = O(timezone),
	  .validate = validate_tz },
	{ .name = "upload", .kind = INI_STRING, .off = O(upload),
	  .validate = validate_upload },
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
	conf->backups = xreallocarray(conf->backups, conf->nbackups + 1,
	    sizeof *conf->backups);
	conf->backups[conf->nbackups++] = b;
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

const struct ini_section backup_section = {
	"backup", 1, backup_keys, nitems(backup_keys), backup_open,
	backup_check
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

	for (i = 0; i < conf->nbackups; i++) {
		b = conf->backups[i];
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

/* --- expectations and retention (pure) ---------------------------------- */

static int
expect_split(const char *e, char op[3], const char **rhs)
{
	while (isspace((unsigned char)*e))
		e++;
	if (strcmp(e, "any") == 0) {
		strcpy(op, "*");
		return (0);
	}
	if (strncmp(e, ">=", 2) == 0 || strncmp(e, "<=", 2) == 0 ||
	    strncmp(e, "!=", 2) == 0 || strncmp(e, "==", 2) == 0) {
		memcpy(op, e, 2);
		op[2] = '\0';
		e += 2;
	} else if (*e == '>' || *e == '<' || *e == '=') {
		op[0] = *e++;
		op[1] = '\0';
	} else
		return (-EINVAL);
	while (isspace((unsigned char)*e))
		e++;
	/* one operator: "> > 3" or ">> 3" is a typo, not a comparison */
	if (*e == '\0' || strchr("<>=!", *e) != NULL)
		return (-EINVAL);
	*rhs = e;
	return (0);
}

int
backup_expect_valid(const char *expect)
{
	char		 op[3];
	const char	*rhs = NULL;

	return (expect_split(expect, op, &rhs) == 0);
}

int
backup_expect_match(const char *expect, const char *value)
{
	char		 op[3], *end1, *end2;
	const char	*rhs = NULL;
	double		 a, b;
	int		 c;

	if (expect_split(expect, op, &rhs) != 0)
		return (0);
	if (op[0] == '*')
		return (value != NULL);
	if (value == NULL)
		return (0);
	a = strtod(value, &end1);
	b = strtod(rhs, &end2);
	if (*end2 == '\0' && !isnan(b)) {
		/* a number expected: text, "" or NaN never satisfies it */
		if (*value == '\0' || *end1 != '\0' || isnan(a))
			return (strcmp(op, "!=") == 0);
		c = (a > b) - (a < b);
	} else
		c = strcmp(value, rhs);	/* text, e.g. ISO dates */
	if (strcmp(op, ">") == 0)
		return (c > 0);
	if (strcmp(op, ">=") == 0)
		return (c >= 0);
	if (strcmp(op, "<") == 0)
		return (c < 0);
	if (strcmp(op, "<=") == 0)
		return (c <= 0);
	if (strcmp(op, "!=") == 0)
		return (c != 0);
	return (c == 0);
}

static int
idx_cmp_desc(const void *a, const void *b, void *arg)
{
	const int64_t	*ts = arg;
	int64_t		 x = ts[*(const unsigned int *)a];
	int64_t		 y = ts[*(const unsigned int *)b];

	return ((x < y) - (x > y));
}

static void
keep_buckets(const int64_t *ts, const unsigned int *order, unsigned int n,
    int *keep, uint64_t count, int kind)
{
	struct tm	tm;
	time_t		t;
	long		last = -1, key;
	unsigned int	i;
	uint64_t	have = 0;

	for (i = 0; i < n && have < count; i++) {
		t = (time_t)ts[order[i]];
		gmtime_r(&t, &tm);
		switch (kind) {
		case 'd':
			key = (tm.tm_year + 1900) * 1000L + tm.tm_yday;
			break;
		case 'w': {
			/* ISO 8601 week: Thursday decides the year */
			char buf[16];
			strftime(buf, sizeof buf, "%G%V", &tm);
			key = strtol(buf, NULL, 10);
			break;
		}
		default:
			key = (tm.tm_year + 1900) * 100L + tm.tm_mon;
			break;
		}
		if (key == last)
			continue;
		last = key;
		keep[order[i]] = 1;	/* the newest of its period */
		have++;
	}
}

void
backup_retention(const struct retention *r, const int64_t *ts,
    const int *verified, unsigned int n, int *keep)
{
	unsigned int	*order, i;

	order = xcalloc(n + 1, sizeof *order);
	for (i = 0; i < n; i++) {
		order[i] = i;
		keep[i] = 0;
	}
	qsort_r(order, n, sizeof *order, idx_cmp_desc, (void *)ts);
	for (i = 0; i < n && i < r->keep_last; i++)
		keep[order[i]] = 1;
	keep_buckets(ts, order, n, keep, r->keep_daily, 'd');
	keep_buckets(ts, order, n, keep, r->keep_weekly, 'w');
	keep_buckets(ts, order, n, keep, r->keep_monthly, 'm');
	/* the newest backup known to restore is never deleted */
	for (i = 0; i < n; i++) {
		if (verified[order[i]]) {
			keep[order[i]] = 1;
			break;
		}
	}
	free(order);
}

/* --- runtime ------------------------------------------------------------ */

struct brun;
struct verify;
struct recover_drop;

struct backup {
	struct opsd		*opsd;
	struct backup_conf	*conf;		/* owned copy */
	struct db_conf		*db;		/* owned copy */
	struct job		*job;
	struct job		*verify_job;	/* verify_schedule */
	struct brun		*run;
	struct verify		*verify;	/* a standalone verify */
	json_t			*items;		/* manifests, oldest first */
	struct event		*stale_timer;
	int			 stale_firing;
	int			 failed_firing;
	int			 verify_firing;
	int			 upload_firing;
	int64_t			 last_success;
	int64_t			 last_verified;
	uint64_t		 last_size;
	double			 last_duration;
	uint64_t		 runs_ok;
	uint64_t		 runs_failed;
	uint64_t		 runs_skipped;
	uint64_t		 upload_ok;
	uint64_t		 upload_failed;
	char			*pg_dump_version;
	struct child		*version_child;
	struct pgq		*recover_q;	/* start-up clean-up */
	struct recover_drop	**drops;	/* its DROP DATABASEs */
	unsigned int		 ndrops;
};

struct backup_set {
	struct backup	**v;
	unsigned int	  n;
	int		  recovered;
};

typedef void (*verify_done_cb)(struct verify *, int ok, void *arg);

struct verify {
	struct backup	*b;
	json_t		*manifest;
	char		*file;
	char		*scratch;
	char		*passfile;
	struct pgq	*admin;
	struct pgq	*sess;
	struct child	*child;
	unsigned int	 check;
	json_t		*checks;
	char		*error;
	int		 created;
	verify_done_cb	 done;
	void		*arg;
	struct rpc_pending *waiter;
};

enum brun_step {
	RUN_CONNECT,
	RUN_LOCK,
	RUN_DUMP,
	RUN_SYNC,
	RUN_VERIFY,
	RUN_UPLOAD,
	RUN_DONE,
};

static const char *const step_names[] = {
	"connecting", "locking", "dumping", "syncing", "verifying",
	"uploading", "done"
};

struct brun {
	struct backup		*b;
	char			 id[128];
	enum brun_step		 step;
	int64_t			 start;		/* wall clock */
	uint64_t		 start_usec;
	char			*partial;
	char			*final;
	char			*passfile;
	int			 fd;
	EVP_MD_CTX		*sha;
	uint64_t		 bytes;
	uint64_t		 synced;
	char			*error;
	char			 server_version[32];
	struct pgq		*sess;
	struct child		*child;
	json_t			*manifest;
	struct s3_op		*s3;
	int			 interrupted;
	unsigned int		 lock_tries;
	struct event		*lock_retry;
	unsigned int		 upload_try;
	unsigned int		 dump_tries;
	int			 upload_manifest;
	struct event		*timer;		/* progress, retries */
	struct rpc_pending	**followers;
	unsigned int		 nfollowers;
	struct job		*job;
};

static void	run_finish(struct brun *, int ok, int skipped);
static int	own_file(struct backup *, const char *, const char *);
static void	run_upload(struct brun *);
static void	verify_start(struct backup *, json_t *manifest,
		    verify_done_cb, void *arg, struct rpc_pending *);

static struct backup_set *
backup_set(struct opsd *o)
{
	if (o->backups == NULL)
		o->backups = xcalloc(1, sizeof (struct backup_set));
	return (o->backups);
}

unsigned int
backup_count(struct opsd *o)
{
	return (o->backups != NULL ? o->backups->n : 0);
}

static struct backup *
backup_find(struct opsd *o, const char *name)
{
	unsigned int	i;

	for (i = 0; i < backup_count(o); i++) {
		if (strcmp(o->backups->v[i]->conf->name, name) == 0)
			return (o->backups->v[i]);
	}
	return (NULL);
}

static void
iso_time(int64_t t, char *buf, size_t len)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* pgpass-BACKUP-TAG: start-up recovery removes what a kill left behind */
static char *
passfile_create(struct backup *b, const char *tag, int admin, char **err)
{
	char	 t[160], *path;

	snprintf(t, sizeof t, "%s-%s", b->conf->name, tag);
	if (db_passfile_create(b->db, b->opsd->conf->state_dir, t, admin,
	    &path, err) != 0)
		return (NULL);
	return (path);
}

/* A session for the backup user or the admin on dbname (NULL: own db). */
static struct pgq *
session_open(struct backup *b, int admin, const char *dbname,
    uint64_t timeout_ms, pg_done_cb cb, void *arg)
{
	return (db_session_open(b->opsd->base, b->db, admin, dbname,
	    timeout_ms, cb, arg));
}

static char *
pg_bin(struct backup *b, const char *tool)
{
	char	*p;

	if (b->conf->pg_bin_dir != NULL)
		xasprintf(&p, "%s/%s", b->conf->pg_bin_dir, tool);
	else
		p = xstrdup(tool);
	return (p);
}

/* --- manifests ---------------------------------------------------------- */

static const char *
m_str(json_t *m, const char *key)
{
	const char	*s = json_string_value(json_object_get(m, key));

	return (s != NULL ? s : "");
}

static int
m_verified(json_t *m)
{
	return (json_is_true(json_object_get(json_object_get(m, "verify"),
	    "ok")));
}

static int
manifest_cmp(const void *a, const void *b)
{
	int64_t	x = json_integer_value(json_object_get(*(json_t *const *)a,
	    "start"));
	int64_t	y = json_integer_value(json_object_get(*(json_t *const *)b,
	    "start"));

	return ((x > y) - (x < y));
}

static void
items_sort(struct backup *b)
{
	json_t		**v;
	size_t		  i, n = json_array_size(b->items);

	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(b->items, i));
	qsort(v, n, sizeof *v, manifest_cmp);
	json_array_clear(b->items);
	for (i = 0; i < n; i++)
		json_array_append_new(b->items, v[i]);
	free(v);
}

static void
stats_from_items(struct backup *b)
{
	json_t	*m;
	size_t	 i;

	b->last_success = b->last_verified = 0;
	b->last_size = 0;
	json_array_foreach(b->items, i, m) {
		b->last_success = json_integer_value(json_object_get(m,
		    "start"));
		b->last_size = (uint64_t)json_integer_value(json_object_get(m,
		    "bytes"));
		if (m_verified(m))
			b->last_verified = json_integer_value(json_object_get(m,
			    "start"));
	}
}

/* Reads NAME-*.json manifests from dir: once at start and on reload. */
static void
items_load(struct backup *b)
{
	DIR		*d;
	struct dirent	*de;
	json_error_t	 jerr;
	json_t		*m;
	char		*path;

	json_decref(b->items);
	b->items = json_array();
	if ((d = opendir(b->conf->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!own_file(b, de->d_name, ".json"))
			continue;
		xasprintf(&path, "%s/%s", b->conf->dir, de->d_name);
		m = json_load_file(path, 0, &jerr);
		if (m != NULL && strcmp(m_str(m, "backup"), b->conf->name) ==
		    0)
			json_array_append_new(b->items, m);
		else {
			json_decref(m);
			log_warn("backup.manifest", "ignoring %s: %s", path,
			    m == NULL ? jerr.text : "another backup's manifest");
		}
		free(path);
	}
	closedir(d);
	items_sort(b);
	stats_from_items(b);
}

static int
manifest_save(struct backup *b, json_t *m)
{
	char	name[192];

	snprintf(name, sizeof name, "%s.json", m_str(m, "id"));
	return (state_write_json(b->conf->dir, name, m));
}

static json_t *
item_find(struct opsd *o, const char *id, struct backup **owner)
{
	json_t		*m;
	size_t		 i;
	unsigned int	 j;

	for (j = 0; j < backup_count(o); j++) {
		json_array_foreach(o->backups->v[j]->items, i, m) {
			if (strcmp(m_str(m, "id"), id) == 0) {
				*owner = o->backups->v[j];
				return (m);
			}
		}
	}
	return (NULL);
}

/*
 * Is fname NAME-YYYYMMDDTHHMMSSZ followed by suffix? Exact, so backups
 * "app" and "app-2" in one directory never touch each other's files.
 */
static int
own_file(struct backup *b, const char *fname, const char *suffix)
{
	size_t		 nl = strlen(b->conf->name);
	const char	*p;
	int		 i;

	if (strncmp(fname, b->conf->name, nl) != 0 || fname[nl] != '-')
		return (0);
	p = fname + nl + 1;
	for (i = 0; i < 16; i++) {
		if (i == 8 ? p[i] != 'T' : i == 15 ? p[i] != 'Z' :
		    (p[i] < '0' || p[i] > '9'))
			return (0);
	}
	return (strcmp(p + 16, suffix) == 0);
}

static int
item_held(struct backup *b, json_t *m)
{
	json_t	*x;
	size_t	 i;

	json_array_foreach(b->items, i, x) {
		if (x == m)
			return (1);
	}
	return (0);
}

/* --- events ------------------------------------------------------------- */

static void
backup_event(struct backup *b, const struct evt_type *type, const char *id,
    const char *alert_object, int firing, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
backup_event(struct backup *b, const struct evt_type *type, const char *id,
    const char *alert_object, int firing, const char *fmt, ...)
{
	struct evt	*ev;
	va_list		 ap;
	char		*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	ev = evt_new(type);
	evt_add(ev, "backup", "%s", b->conf->name);
	evt_add(ev, "database", "%s", b->conf->database);
	if (id != NULL)
		evt_add(ev, "backup_id", "%s", id);
	/* one alert per backup and kind: "backup.run" for app, ... */
	if (alert_object != NULL && b->conf->nalert > 0)
		evt_alert(ev, (const char *const *)b->conf->alert,
		    b->conf->nalert, alert_object, b->conf->name, firing);
	evt_emit(ev, "%s", msg);
	free(msg);
}

/*
 * pg_restore FILE into dbname as the admin role, the password through a
 * private PGPASSFILE (*passfile, removed by the caller when it ends);
 * clean: replace existing objects. Returns the child, or NULL with a
 * message in *err.
 */
static struct child *
pg_restore_spawn(struct backup *b, const char *tag, const char *dbname,
    const char *file, int clean, child_done_cb done, void *arg,
    char **passfile, char **err)
{
	struct child_spec	 spec;
	struct child		*c;
	char			*bin, *ci, *dbarg, *env[2] = { NULL, NULL };
	int			 e = 0;

	*err = NULL;
	*passfile = passfile_create(b, tag, 1, err);
	if (*err != NULL)
		return (NULL);
	bin = pg_bin(b, "pg_restore");
	ci = db_conninfo(b->db, 1, dbname);
	xasprintf(&dbarg, "--dbname=%s", ci);
	{
		/* the flags docs/runbook-recovery.md gives for a manual one */
		const char *argv[] = { bin, "--exit-on-error", "--no-owner",
		    "--no-privileges", "--no-password", dbarg,
		    clean ? "--clean" : file, clean ? "--if-exists" : NULL,
		    clean ? file : NULL, NULL };

		memset(&spec, 0, sizeof spec);
		if (*passfile != NULL) {
			xasprintf(&env[0], "PGPASSFILE=%s", *passfile);
			spec.env = (const char *const *)env;
		}
		spec.argv = argv;
		spec.timeout_ms = b->conf->verify_timeout;
		c = child_spawn(&spec, done, arg, &e);
	}
	free(env[0]);
	free(bin);
	free(ci);
	free(dbarg);
	if (c == NULL)
		xasprintf(err, "cannot run pg_restore: %s", strerror(-e));
	return (c);
}

/* --- verification ------------------------------------------------------- */

static void	verify_step_drop(struct verify *);

static void
verify_free(struct verify *v)
{
	if (v->admin != NULL)
		pg_cancel(v->admin);
	if (v->sess != NULL)
		pg_cancel(v->sess);
	if (v->child != NULL)
		child_abandon(v->child);
	db_passfile_remove(&v->passfile);
	json_decref(v->manifest);
	json_decref(v->checks);
	free(v->file);
	free(v->scratch);
	free(v->error);
	free(v);
}

static void
verify_end(struct verify *v)
{
	struct backup	*b = v->b;
	json_t		*res;
	char		 at[32];
	int		 ok = v->error == NULL;

	iso_time(time(NULL), at, sizeof at);
	res = json_pack("{s:b, s:I, s:s, s:s?, s:O}", "ok", ok, "at",
	    (json_int_t)time(NULL), "at_iso", at, "error", v->error,
	    "checks", v->checks);
	/* the manifest may be gone (pruned meanwhile); save only if known */
	json_object_set_new(v->manifest, "verify", res);
	if (item_held(b, v->manifest) && manifest_save(b, v->manifest) != 0)
		log_warn("backup.manifest", "cannot update the manifest of %s",
		    m_str(v->manifest, "id"));
	/* "good" is about the backups' age: recount from the manifests */
	stats_from_items(b);
	if (ok) {
		backup_event(b, &EVT_BACKUP_VERIFIED, m_str(v->manifest, "id"),
		    b->verify_firing ? "backup.verify" : NULL, 0, "backup %s "
		    "verified: restored into a scratch "
		    "database and %u check%s passed", m_str(v->manifest, "id"),
		    b->conf->ncheck, b->conf->ncheck == 1 ? "" : "s");
		b->verify_firing = 0;
	} else {
		b->verify_firing = 1;
		backup_event(b, &EVT_BACKUP_VERIFY_FAILED, m_str(v->manifest,
		    "id"), "backup.verify", 1, "backup %s FAILED verification: %s",
		    m_str(v->manifest, "id"), v->error);
	}
	if (v->waiter != NULL) {
		if (ok)
			rpc_pending_reply(v->waiter, json_pack("{s:s, s:O}",
			    "id", m_str(v->manifest, "id"), "verify", res));
		else
			rpc_pending_error(v->waiter, OPSD_ERR_FAILED,
			    json_pack("{s:O}", "verify", res),
			    "verification of %s failed: %s",
			    m_str(v->manifest, "id"), v->error);
		v->waiter = NULL;
	}
	/* detach first: the callback may end the run that owns v */
	if (b->verify == v)
		b->verify = NULL;
	if (v->done != NULL)
		v->done(v, ok, v->arg);
	verify_free(v);
}

static void
verify_fail(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
verify_fail(struct verify *v, const char *fmt, ...)
{
	va_list	ap;

	if (v->error == NULL) {
		va_start(ap, fmt);
		xvasprintf(&v->error, fmt, ap);
		va_end(ap);
	}
	/* the scratch database goes, whatever happened */
	if (v->created)
		verify_step_drop(v);
	else
		verify_end(v);
}

static void
verify_dropped(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		log_warn("backup.verify", "cannot drop scratch database %s: %s "
		    "(it is dropped at the next start)", v->scratch, err);
		if (v->error == NULL)
			xasprintf(&v->error, "cannot drop scratch database "
			    "%s: %s", v->scratch, err);
	}
	v->created = 0;
	verify_end(v);
}

static void
verify_step_drop(struct verify *v)
{
	char	*sql, *qi;

	if (v->sess != NULL) {
		pg_cancel(v->sess);
		v->sess = NULL;
	}
	qi = pg_quote_ident(v->scratch);
	xasprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qi);
	free(qi);
	if (v->admin == NULL || pg_exec(v->admin, sql, 60000, verify_dropped,
	    v) != 0) {
		log_warn("backup.verify", "no admin session to drop %s; it is "
		    "dropped at the next start", v->scratch);
		v->created = 0;
		verify_end(v);
	}
	free(sql);
}

static void	verify_next_check(struct verify *);

static void
verify_check_done(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	struct backup	*b = v->b;
	const char	*val = NULL;
	int		 ok;

	(void)q;
	if (err == NULL && PQntuples(res) > 0 && PQnfields(res) > 0 &&
	    !PQgetisnull(res, 0, 0))
		val = PQgetvalue(res, 0, 0);
	ok = err == NULL && backup_expect_match(b->conf->expect[v->check],
	    val);
	json_array_append_new(v->checks, json_pack("{s:s, s:s, s:s?, s:s?, "
	    "s:b}", "check", b->conf->check[v->check], "expect",
	    b->conf->expect[v->check], "got", val, "error", err, "ok", ok));
	if (!ok) {
		if (err != NULL)
			verify_fail(v, "check '%s' failed: %s",
			    b->conf->check[v->check], err);
		else
			verify_fail(v, "check '%s' returned %s, expected %s",
			    b->conf->check[v->check], val ? val : "no value",
			    b->conf->expect[v->check]);
		return;
	}
	v->check++;
	verify_next_check(v);
}

static void
verify_next_check(struct verify *v)
{
	if (v->check >= v->b->conf->ncheck) {
		verify_step_drop(v);
		return;
	}
	if (pg_exec(v->sess, v->b->conf->check[v->check], 600000,
	    verify_check_done, v) != 0)
		verify_fail(v, "cannot run check");
}

static void
verify_sess_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		verify_fail(v, "cannot connect to the scratch database: %s",
		    err);
		return;
	}
	verify_next_check(v);
}

static void
verify_restored(struct child *c, const struct child_result *r, void *arg)
{
	struct verify	*v = arg;
	char		 why[640];

	(void)c;
	v->child = NULL;
	db_passfile_remove(&v->passfile);
	if (child_failed(r, why, sizeof why)) {
		verify_fail(v, "pg_restore %s", why);
		return;
	}
	v->sess = session_open(v->b, 1, v->scratch, 60000, verify_sess_open,
	    v);
}

static void
verify_created(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	char		*msg = NULL;

	(void)q;
	(void)res;
	if (err != NULL) {
		verify_fail(v, "cannot create scratch database %s: %s",
		    v->scratch, err);
		return;
	}
	v->created = 1;
	v->child = pg_restore_spawn(v->b, "verify", v->scratch, v->file, 0,
	    verify_restored, v, &v->passfile, &msg);
	if (v->child == NULL) {
		verify_fail(v, "%s", msg);
		free(msg);
	}
}

static void
verify_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct verify	*v = arg;
	char		*sql, *qi;

	(void)res;
	if (err != NULL) {
		verify_fail(v, "cannot connect with the admin connection: %s",
		    err);
		return;
	}
	qi = pg_quote_ident(v->scratch);
	xasprintf(&sql, "CREATE DATABASE %s", qi);
	free(qi);
	if (pg_exec(q, sql, 600000, verify_created, v) != 0)
		verify_fail(v, "cannot create the scratch database");
	free(sql);
}

/* sha256sum FILE: compares with the manifest before anything else */
static void
verify_summed(struct child *c, const struct child_result *r, void *arg)
{
	struct verify	*v = arg;
	const char	*want = m_str(v->manifest, "sha256");

	(void)c;
	v->child = NULL;
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 ||
	    r->outlen < 64) {
		verify_fail(v, "cannot read %s to check its checksum%s%.*s",
		    v->file, r->errlen ? ": " : "", (int)strcspn(r->err,
		    "\n"), r->err);
		return;
	}
	if (strncmp(r->out, want, 64) != 0) {
		verify_fail(v, "checksum mismatch: %s has sha256 %.16s..., the "
		    "manifest says %.16s...: the file is corrupt", v->file,
		    r->out, want);
		return;
	}
	/* named after the backup's start: found and dropped after a crash */
	v->scratch = db_scratch_name("verify", v->b->conf->name,
	    json_integer_value(json_object_get(v->manifest, "start")));
	v->admin = session_open(v->b, 1, NULL, 60000, verify_admin_open, v);
}

static void
verify_start(struct backup *b, json_t *manifest, verify_done_cb done,
    void *arg, struct rpc_pending *waiter)
{
	struct verify		*v;
	struct child_spec	 spec;
	int			 e = 0;

	v = xcalloc(1, sizeof *v);
	v->b = b;
	b->verify = v;		/* one at a time per backup */
	v->manifest = json_incref(manifest);
	v->done = done;
	v->arg = arg;
	v->waiter = waiter;
	v->checks = json_array();
	xasprintf(&v->file, "%s/%s", b->conf->dir, m_str(manifest, "file"));
	{
		const char *argv[] = { "sha256sum", "--", v->file, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = b->conf->verify_timeout;
		spec.max_output = 256;
		v->child = child_spawn(&spec, verify_summed, v, &e);
	}
	if (v->child == NULL)
		verify_fail(v, "cannot run sha256sum: %s", strerror(-e));
}

/* --- a run -------------------------------------------------------------- */

static char *
run_state_name(struct backup *b)
{
	char	*n;

	xasprintf(&n, "backup-%s.run.json", b->conf->name);
	return (n);
}

/* Persisted before each side effect, so a restart knows what to undo. */
static void
run_save_state(struct brun *r)
{
	json_t	*st;
	char	*name = run_state_name(r->b);
	int	 e;

	st = json_pack("{s:s, s:s, s:s?, s:s?, s:I}", "id", r->id, "step",
	    step_names[r->step], "partial", r->partial, "final", r->final,
	    "pid", (json_int_t)getpid());
	if ((e = state_write_json(r->b->opsd->conf->state_dir, name, st)) != 0)
		log_warn("backup.state", "cannot write %s: %s", name,
		    strerror(-e));
	json_decref(st);
	free(name);
}

static void
run_clear_state(struct backup *b)
{
	char	*name = run_state_name(b), *path;

	xasprintf(&path, "%s/%s", b->opsd->conf->state_dir, name);
	unlink(path);
	free(path);
	free(name);
}

static json_t *
run_progress(struct brun *r)
{
	double	el = (double)(now_usec() - r->start_usec) / 1e6;

	return (json_pack("{s:s, s:s, s:s, s:I, s:f, s:f}", "run", r->id,
	    "backup", r->b->conf->name, "step", step_names[r->step],
	    "bytes", (json_int_t)r->bytes, "elapsed_seconds", el,
	    "rate_bytes_per_second", el > 0 ? (double)r->bytes / el : 0.0));
}

static void
run_tick(evutil_socket_t fd, short what, void *arg)
{
	struct brun	*r = arg;
	struct timeval	 tv = { 1, 0 };
	unsigned int	 i;

	(void)fd;
	(void)what;
	for (i = 0; i < r->nfollowers; i++)
		rpc_pending_notify(r->followers[i], "backup.progress",
		    run_progress(r));
	evtimer_add(r->timer, &tv);
}

/* Stops a verification whose owner goes away; its scratch database is
 * dropped at the next start. */
static void
verify_abort(struct verify *v, const char *why)
{
	if (v->b->verify == v)
		v->b->verify = NULL;
	if (v->waiter != NULL)
		rpc_pending_error(v->waiter, OPSD_ERR_SHUTTING_DOWN, NULL,
		    "verification stopped: %s", why);
	v->waiter = NULL;
	verify_free(v);
}

static void
run_free(struct brun *r)
{
	unsigned int	i;

	if (r->b->verify != NULL && r->b->verify->arg == r)
		verify_abort(r->b->verify, "the run ended");
	for (i = 0; i < r->nfollowers; i++)
		rpc_pending_release(r->followers[i]);
	free(r->followers);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->lock_retry != NULL)
		event_free(r->lock_retry);
	if (r->sess != NULL)
		pg_cancel(r->sess);
	if (r->child != NULL)
		child_abandon(r->child);
	if (r->s3 != NULL)
		s3_cancel(r->s3);
	if (r->fd != -1)
		close(r->fd);
	if (r->sha != NULL)
		EVP_MD_CTX_free(r->sha);
	db_passfile_remove(&r->passfile);
	json_decref(r->manifest);
	free(r->partial);
	free(r->final);
	free(r->error);
	free(r);
}

static void
run_fail(struct brun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
run_fail(struct brun *r, const char *fmt, ...)
{
	va_list	ap;

	if (r->error == NULL) {
		va_start(ap, fmt);
		xvasprintf(&r->error, fmt, ap);
		va_end(ap);
	}
	run_finish(r, 0, 0);
}

/* Ends the run: no partial file stays, the job and followers learn. */
static void
run_finish(struct brun *r, int ok, int skipped)
{
	struct backup	*b = r->b;
	json_t		*fin;
	unsigned int	 i;
	double		 dur = (double)(now_usec() - r->start_usec) / 1e6;

	if (r->fd != -1) {
		close(r->fd);
		r->fd = -1;
	}
	if (r->partial != NULL)
		unlink(r->partial);
	db_passfile_remove(&r->passfile);
	run_clear_state(b);
	if (r->interrupted) {
		backup_event(b, &EVT_BACKUP_INTERRUPTED, r->id, NULL, 0,
		    "backup run %s stopped while %s: %s", r->id,
		    step_names[r->step], r->error);
		if (r->job != NULL)
			job_interrupted(r->job);
	} else if (skipped) {
		b->runs_skipped++;
		backup_event(b, &EVT_BACKUP_SKIPPED, r->id, NULL, 0, "backup "
		    "%s skipped: %s", b->conf->name, r->error);
		if (r->job != NULL)
			job_finished(r->job, -1, "skipped: %s", r->error);
	} else if (ok) {
		b->runs_ok++;
		b->last_duration = dur;
		if (r->job != NULL)
			job_finished(r->job, 1, "%s, %llu bytes in %.1fs", r->id,
			    (unsigned long long)r->bytes, dur);
		if (b->failed_firing) {
			b->failed_firing = 0;
			backup_event(b, &EVT_BACKUP_OK, r->id, "backup.run", 0,
			    "backup "
			    "%s works again: %s", b->conf->name, r->id);
		}
	} else {
		b->runs_failed++;
		b->failed_firing = 1;
		backup_event(b, &EVT_BACKUP_FAILED, r->id, "backup.run", 1,
		    "backup %s "
		    "FAILED (%s): %s", b->conf->name, step_names[r->step],
		    r->error);
		if (r->job != NULL)
			job_finished(r->job, 0, "%s", r->error);
	}
	fin = run_progress(r);
	json_object_set_new(fin, "result", json_string(r->interrupted ?
	    "interrupted" : skipped ? "skipped" : ok ? "ok" : "failed"));
	if (r->error != NULL)
		json_object_set_new(fin, "error", json_string(r->error));
	for (i = 0; i < r->nfollowers; i++)
		rpc_pending_notify(r->followers[i], "backup.finished",
		    json_incref(fin));
	json_decref(fin);
	b->run = NULL;
	run_free(r);
}

static void
run_pruned(struct brun *r)
{
	json_t	*res = NULL;
	char	*msg = NULL;

	if (backup_prune(r->b->opsd, r->b->conf->name, 0, &res, &msg) != 0) {
		log_warn("backup.prune", "pruning %s: %s", r->b->conf->name,
		    msg);
		free(msg);
	}
	json_decref(res);
	run_finish(r, 1, 0);
}

static int
read_key(const char *path, char *buf, size_t len)
{
	return (probe_read_secret(path, buf, len));
}

static void	run_upload_retry(evutil_socket_t, short, void *);

static void
run_uploaded(struct s3_op *op, int ok, const char *error, void *arg)
{
	struct brun	*r = arg;
	struct backup	*b = r->b;
	struct timeval	 tv;
	json_t		*up;
	char		 at[32];

	(void)op;
	r->s3 = NULL;
	if (ok && !r->upload_manifest) {
		/* the dump is there: now its manifest beside it */
		r->upload_manifest = 1;
		r->dump_tries = r->upload_try;
		r->upload_try = 0;
		run_upload(r);
		return;
	}
	if (!ok && r->upload_try < UPLOAD_TRIES && !b->opsd->stopping) {
		tv.tv_sec = 1 << r->upload_try;	/* 2, 4, 8 s */
		tv.tv_usec = 0;
		log_warn("backup.upload", "upload of %s failed (try %u of %d): "
		    "%s; retrying in %lds", r->id, r->upload_try, UPLOAD_TRIES,
		    error, (long)tv.tv_sec);
		event_free(r->timer);
		r->timer = evtimer_new(b->opsd->base, run_upload_retry, r);
		evtimer_add(r->timer, &tv);
		return;
	}
	iso_time(time(NULL), at, sizeof at);
	up = json_pack("{s:b, s:I, s:s, s:s, s:s?, s:i}", "ok", ok, "at",
	    (json_int_t)time(NULL), "at_iso", at, "url", b->conf->upload,
	    "error", ok ? NULL : error, "tries", r->upload_manifest ?
	    r->dump_tries : r->upload_try);
	json_object_set_new(r->manifest, "upload", up);
	manifest_save(b, r->manifest);
	if (ok) {
		b->upload_ok++;
		log_info("backup.upload", "%s uploaded to %s", r->id,
		    b->conf->upload);
		if (b->upload_firing) {
			b->upload_firing = 0;
			backup_event(b, &EVT_BACKUP_OK, r->id, "backup.upload",
			    0, "off-site copy of %s works again", r->id);
		}
	} else {
		b->upload_failed++;
		b->upload_firing = 1;
		backup_event(b, &EVT_BACKUP_UPLOAD_FAILED, r->id,
		    "backup.upload", 1,
		    "off-site copy of %s FAILED after %u tries: %s (the local "
		    "backup is good)", r->id, r->upload_try, error);
	}
	run_pruned(r);
}

static void
run_upload_retry(evutil_socket_t fd, short what, void *arg)
{
	struct brun	*r = arg;
	struct timeval	 tv = { 1, 0 };

	(void)fd;
	(void)what;
	event_free(r->timer);
	r->timer = evtimer_new(r->b->opsd->base, run_tick, r);
	evtimer_add(r->timer, &tv);
	run_upload(r);
}

static void
run_upload(struct brun *r)
{
	struct backup		*b = r->b;
	struct s3_target	 t;
	char			 ak[512], sk[512], *bucket = NULL, *prefix = NULL;
	char			*key, *path, msg[256];
	const char		*file;
	struct stat		 st;

	if (r->step != RUN_UPLOAD) {
		r->step = RUN_UPLOAD;
		run_save_state(r);
	}
	r->upload_try++;
	if (read_key(b->conf->s3_access_key_file, ak, sizeof ak) != 0 ||
	    read_key(b->conf->s3_secret_key_file, sk, sizeof sk) != 0) {
		snprintf(msg, sizeof msg, "cannot read the S3 key files");
		r->upload_try = UPLOAD_TRIES;
		run_uploaded(NULL, 0, msg, r);
		return;
	}
	s3_parse_url(b->conf->upload, &bucket, &prefix);
	memset(&t, 0, sizeof t);
	t.endpoint = b->conf->s3_endpoint;
	t.region = b->conf->s3_region;
	t.bucket = bucket;
	t.access_key = ak;
	t.secret_key = sk;
	t.timeout_ms = b->conf->timeout;
	if (r->upload_manifest) {
		xasprintf(&path, "%s/%s.json", b->conf->dir, r->id);
		file = strrchr(path, '/') + 1;
	} else {
		path = xstrdup(r->final);
		file = m_str(r->manifest, "file");
	}
	xasprintf(&key, "%s%s%s", prefix, *prefix ? "/" : "", file);
	if (r->upload_manifest) {
		/* small: hash it here */
		unsigned char	 md[32];
		char		 hex[65], *buf = NULL;
		size_t		 n = 0;
		FILE		*f = fopen(path, "re");

		if (f != NULL) {
			buf = xmalloc(1 << 20);
			n = fread(buf, 1, 1 << 20, f);
			fclose(f);
		}
		EVP_Digest(buf, n, md, NULL, EVP_sha256(), NULL);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		free(buf);
		r->s3 = s3_upload(&t, key, path, n, hex, run_uploaded, r);
	} else if (stat(path, &st) == 0)
		r->s3 = s3_upload(&t, key, path, (uint64_t)st.st_size,
		    m_str(r->manifest, "sha256"), run_uploaded, r);
	explicit_bzero(ak, sizeof ak);
	explicit_bzero(sk, sizeof sk);
	free(bucket);
	free(prefix);
	free(key);
	free(path);
	if (r->s3 == NULL) {
		snprintf(msg, sizeof msg, "cannot start the upload");
		run_uploaded(NULL, 0, msg, r);
	}
}

static void
run_after_verify(struct brun *r)
{
	if (r->b->conf->upload != NULL)
		run_upload(r);
	else
		run_pruned(r);
}

static void
run_verified(struct verify *v, int ok, void *arg)
{
	struct brun	*r = arg;

	(void)v;
	(void)ok;
	/* a failed verify is reported on its own; the dump itself is good */
	run_after_verify(r);
}

static void
run_synced(struct child *c, const struct child_result *res, void *arg)
{
	struct brun	*r = arg;
	struct backup	*b = r->b;
	char		 name[192], *final_name, s_at[32], e_at[32];
	unsigned char	 md[32];
	unsigned int	 mdlen, i;
	char		 hex[65];
	int		 e;

	(void)c;
	r->child = NULL;
	if (!WIFEXITED(res->status) || WEXITSTATUS(res->status) != 0) {
		run_fail(r, "cannot sync %s to disk: %.*s", r->partial,
		    (int)strcspn(res->err, "\n"), res->err);
		return;
	}
	EVP_DigestFinal_ex(r->sha, md, &mdlen);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(name, sizeof name, "%s.dump", r->id);
	if (rename(r->partial, r->final) == -1) {
		run_fail(r, "cannot rename %s: %s", r->partial,
		    strerror(errno));
		return;
	}
	free(r->partial);
	r->partial = NULL;
	iso_time(r->start, s_at, sizeof s_at);
	iso_time(time(NULL), e_at, sizeof e_at);
	r->manifest = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:s, "
	    "s:I, s:s, s:I, s:s, s:s, s:n, s:n}", "backup", b->conf->name,
	    "id", r->id, "database", b->conf->database, "file", name,
	    "server_version", r->server_version,
	    "pg_dump_version", b->pg_dump_version,
	    "start", (json_int_t)r->start, "start_iso", s_at,
	    "end", (json_int_t)time(NULL), "end_iso", e_at,
	    "bytes", (json_int_t)r->bytes, "sha256", hex, "status", "ok",
	    "verify", "upload");
	/* the manifest's directory fsync also makes the rename durable */
	if ((e = manifest_save(b, r->manifest)) != 0) {
		final_name = r->final;
		unlink(final_name);
		run_fail(r, "cannot write the manifest in %s: %s", b->conf->dir,
		    strerror(-e));
		return;
	}
	json_array_append(b->items, r->manifest);
	items_sort(b);
	b->last_success = r->start;
	b->last_size = r->bytes;
	backup_event(b, &EVT_BACKUP_OK, r->id, NULL, 0, "backup %s written: "
	    "%llu bytes, sha256 %.12s", r->id, (unsigned long long)r->bytes,
	    hex);
	if (b->conf->verify == BACKUP_VERIFY_EACH) {
		r->step = RUN_VERIFY;
		run_save_state(r);
		verify_start(b, r->manifest, run_verified, r, NULL);
	} else
		run_after_verify(r);
}

static int
run_data(struct child *c, const char *data, size_t len, void *arg)
{
	struct brun	*r = arg;
	ssize_t		 n;
	size_t		 off = 0;

	(void)c;
	while (off < len) {
		n = write(r->fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (r->error == NULL)
				xasprintf(&r->error, "%s writing %s%s",
				    strerror(errno), r->partial, errno ==
				    ENOSPC ? " (disk full)" : "");
			return (1);	/* kills pg_dump */
		}
		off += (size_t)n;
	}
	EVP_DigestUpdate(r->sha, data, len);
	r->bytes += len;
	/* start writeback early so the final sync has little left to do */
	if (r->bytes - r->synced >= SYNC_EVERY) {
		sync_file_range(r->fd, (off_t)r->synced,
		    (off_t)(r->bytes - r->synced), SYNC_FILE_RANGE_WRITE);
		r->synced = r->bytes;
	}
	return (0);
}

static void
run_dumped(struct child *c, const struct child_result *res, void *arg)
{
	struct brun		*r = arg;
	struct child_spec	 spec;
	char			 why[640];
	int			 e = 0;

	(void)c;
	r->child = NULL;
	db_passfile_remove(&r->passfile);
	if (r->error != NULL) {
		run_fail(r, "%s", r->error);
		return;
	}
	if (child_failed(res, why, sizeof why)) {
		run_fail(r, "pg_dump %s", why);
		return;
	}
	if (close(r->fd) == -1) {
		r->fd = -1;
		run_fail(r, "closing %s: %s", r->partial, strerror(errno));
		return;
	}
	r->fd = -1;
	r->step = RUN_SYNC;
	/* the final name is recorded before the rename can happen */
	xasprintf(&r->final, "%s/%s.dump", r->b->conf->dir, r->id);
	run_save_state(r);
	{
		/* fsync in a child: a large file can take seconds */
		const char *argv[] = { "sync", "--data", r->partial, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = r->b->conf->timeout;
		r->child = child_spawn(&spec, run_synced, r, &e);
	}
	if (r->child == NULL)
		run_fail(r, "cannot run sync: %s", strerror(-e));
}

static void
run_dump(struct brun *r)
{
	struct backup		*b = r->b;
	struct child_spec	 spec;
	char			*bin, *ci, *dbarg, *args, *tok, *save = NULL;
	char			*env[2] = { NULL, NULL }, *perr = NULL;
	const char		**argv;
	unsigned int		 n = 0;
	int			 e = 0;

	r->step = RUN_DUMP;
	if ((e = state_mkdir(b->conf->dir, 0750)) != 0) {
		run_fail(r, "cannot create %s: %s", b->conf->dir, strerror(-e));
		return;
	}
	xasprintf(&r->partial, "%s/%s.dump.partial", b->conf->dir, r->id);
	run_save_state(r);
	r->fd = open(r->partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd == -1) {
		e = errno;
		free(r->partial);
		r->partial = NULL;
		run_fail(r, "cannot create %s/%s.dump.partial: %s",
		    b->conf->dir, r->id, strerror(e));
		return;
	}
	r->sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL);
	r->passfile = passfile_create(b, "dump", 0, &perr);
	if (perr != NULL) {
		run_fail(r, "%s", perr);
		free(perr);
		return;
	}
	bin = pg_bin(b, "pg_dump");
	ci = db_conninfo(b->db, 0, NULL);
	xasprintf(&dbarg, "--dbname=%s", ci);
	args = xstrdup(b->conf->pg_dump_args);
	argv = xcalloc(strlen(args) + 8, sizeof *argv);
	argv[n++] = bin;
	for (tok = strtok_r(args, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save))
		argv[n++] = tok;
	argv[n++] = "--format=custom";	/* what verify and restore read */
	argv[n++] = "--no-password";
	argv[n++] = dbarg;
	argv[n] = NULL;
	memset(&spec, 0, sizeof spec);
	if (r->passfile != NULL) {
		xasprintf(&env[0], "PGPASSFILE=%s", r->passfile);
		spec.env = (const char *const *)env;
	}
	spec.argv = argv;
	spec.timeout_ms = b->conf->timeout;
	spec.on_stdout = run_data;
	r->child = child_spawn(&spec, run_dumped, r, &e);
	free(env[0]);
	free(argv);
	free(args);
	free(bin);
	free(ci);
	free(dbarg);
	if (r->child == NULL)
		run_fail(r, "cannot run pg_dump: %s", strerror(-e));
}

static void	run_lock_retry(evutil_socket_t, short, void *);
static void	run_locked(struct pgq *, const PGresult *, const char *,
		    void *);

static void
run_try_lock(struct brun *r)
{
	if (db_try_lock(r->sess, db_lock_key("backup", r->b->conf->name),
	    30000, run_locked, r) != 0)
		run_fail(r, "cannot ask for the advisory lock");
}

static void
run_locked(struct pgq *q, const PGresult *res, const char *err, void *arg)
{
	struct brun	*r = arg;

	(void)q;
	if (err != NULL) {
		run_fail(r, "advisory lock: %s", err);
		return;
	}
	if (!db_lock_held(res)) {
		/*
		 * Our own start-up clean-up holds it for a moment (the time to
		 * list stale scratch databases): wait for that instead of
		 * calling ourselves "another host". Any other holder means
		 * another host runs this backup now.
		 */
		if (r->b->recover_q != NULL && r->lock_tries < 300) {
			struct timeval tv = { 0, 100 * 1000 };

			r->lock_tries++;
			if (r->lock_retry == NULL)
				r->lock_retry = evtimer_new(r->b->opsd->base,
				    run_lock_retry, r);
			evtimer_add(r->lock_retry, &tv);
			return;
		}
		r->error = xstrdup("held by another host");
		run_finish(r, 0, 1);
		return;
	}
	run_dump(r);
}

static void
run_lock_retry(evutil_socket_t fd, short what, void *arg)
{
	struct brun	*r = arg;

	(void)fd;
	(void)what;
	run_try_lock(r);
}

static void
run_version(struct pgq *q, const PGresult *res, const char *err, void *arg)
{
	struct brun	*r = arg;

	if (err != NULL) {
		run_fail(r, "%s", err);
		return;
	}
	if (PQntuples(res) > 0)
		snprintf(r->server_version, sizeof r->server_version, "%s",
		    PQgetvalue(res, 0, 0));
	if (r->b->conf->lock == BACKUP_LOCK_ADVISORY) {
		r->step = RUN_LOCK;
		run_try_lock(r);
		return;
	}
	run_dump(r);
}

static void
run_connected(struct pgq *q, const PGresult *res, const char *err, void *arg)
{
	struct brun	*r = arg;

	(void)res;
	if (err != NULL) {
		run_fail(r, "cannot connect to database %s: %s",
		    r->b->conf->database, err);
		return;
	}
	if (pg_exec(q, "SELECT current_setting('server_version')", 30000,
	    run_version, r) != 0)
		run_fail(r, "cannot query the server version");
}

static void
pg_dump_version_cb(struct child *c, const struct child_result *res,
    void *arg)
{
	struct backup	*b = arg;
	const char	*p;

	(void)c;
	b->version_child = NULL;
	/* "pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)" */
	if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0 &&
	    (p = strstr(res->out, ") ")) != NULL) {
		free(b->pg_dump_version);
		b->pg_dump_version = xstrndup(p + 2, strcspn(p + 2, " \n"));
	}
}

static struct brun *
run_start(struct backup *b, struct job *job)
{
	struct brun	*r;
	struct tm	 tm;
	time_t		 t = time(NULL);
	struct timeval	 tv = { 1, 0 };
	char		 ts[32];

	r = xcalloc(1, sizeof *r);
	r->b = b;
	r->fd = -1;
	r->job = job;
	r->start = (int64_t)t;
	r->start_usec = now_usec();
	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(r->id, sizeof r->id, "%s-%s", b->conf->name, ts);
	b->run = r;
	r->timer = evtimer_new(b->opsd->base, run_tick, r);
	evtimer_add(r->timer, &tv);
	if (b->pg_dump_version == NULL && b->version_child == NULL) {
		char *bin = pg_bin(b, "pg_dump");
		const char *argv[] = { bin, "--version", NULL };
		struct child_spec spec;
		int e;

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = 10000;
		spec.max_output = 256;
		b->version_child = child_spawn(&spec, pg_dump_version_cb, b,
		    &e);
		free(bin);
	}
	log_info("backup.start", "backup %s started (%s)", b->conf->name,
	    r->id);
	r->sess = session_open(b, 0, NULL, 30000, run_connected, r);
	return (r);
}

static void
verify_job_done(struct verify *v, int ok, void *arg)
{
	struct backup	*b = arg;

	if (b->verify_job != NULL)
		job_finished(b->verify_job, ok, "%s %s", m_str(v->manifest,
		    "id"), ok ? "verified" : "FAILED verification");
}

/* verify_schedule: restore the newest backup again, so "good" stays true */
static void
verify_job_cb(struct job *j, void *arg)
{
	struct backup	*b = arg;
	size_t		 n = json_array_size(b->items);

	if (b->verify != NULL || b->run != NULL) {
		job_finished(j, -1, "skipped: a run or verification is busy");
		return;
	}
	if (n == 0) {
		job_finished(j, -1, "skipped: no backup to verify yet");
		return;
	}
	verify_start(b, json_array_get(b->items, n - 1), verify_job_done, b,
	    NULL);
}

static void
backup_job_cb(struct job *j, void *arg)
{
	struct backup	*b = arg;

	if (b->run != NULL) {
		job_finished(j, -1, "skipped: %s still running", b->run->id);
		return;
	}
	run_start(b, j);
}

/* --- restore ------------------------------------------------------------ */

struct restore {
	struct backup		*b;
	json_t			*manifest;
	char			*file;
	char			*into;
	int			 create;
	int			 force;
	int			 created;
	struct pgq		*admin;
	struct pgq		*target;
	struct child		*child;
	char			*passfile;
	uint64_t		 start_usec;
	struct rpc_pending	*waiter;
};

static void
restore_free(struct restore *rs)
{
	if (rs->admin != NULL)
		pg_cancel(rs->admin);
	if (rs->target != NULL)
		pg_cancel(rs->target);
	if (rs->child != NULL)
		child_abandon(rs->child);
	db_passfile_remove(&rs->passfile);
	json_decref(rs->manifest);
	free(rs->file);
	free(rs->into);
	free(rs);
}

static void
restore_fail(struct restore *rs, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
restore_fail(struct restore *rs, int code, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	log_warn("backup.restore", "restore of %s into %s failed: %s",
	    m_str(rs->manifest, "id"), rs->into, msg);
	rpc_pending_error(rs->waiter, code, NULL, "%s", msg);
	free(msg);
	restore_free(rs);
}

static void
restore_done(struct child *c, const struct child_result *r, void *arg)
{
	struct restore	*rs = arg;
	struct evt	*ev;
	char		 why[640];
	double		 secs = (double)(now_usec() - rs->start_usec) / 1e6;

	(void)c;
	rs->child = NULL;
	db_passfile_remove(&rs->passfile);
	if (child_failed(r, why, sizeof why)) {
		restore_fail(rs, OPSD_ERR_FAILED, "pg_restore %s", why);
		return;
	}
	ev = evt_new(&EVT_BACKUP_RESTORED);
	evt_add(ev, "backup", "%s", rs->b->conf->name);
	evt_add(ev, "backup_id", "%s", m_str(rs->manifest, "id"));
	evt_add(ev, "into", "%s", rs->into);
	evt_emit(ev, "backup %s restored into database %s in %.1fs%s",
	    m_str(rs->manifest, "id"), rs->into, secs, rs->force ?
	    " (replacing its objects)" : "");
	rpc_pending_reply(rs->waiter, json_pack("{s:s, s:s, s:s, s:b, s:b, "
	    "s:I, s:s, s:f}", "id", m_str(rs->manifest, "id"), "into",
	    rs->into, "file", rs->file, "created", rs->created, "forced",
	    rs->force, "bytes", json_integer_value(json_object_get(
	    rs->manifest, "bytes")), "sha256", m_str(rs->manifest, "sha256"),
	    "seconds", secs));
	rs->waiter = NULL;
	restore_free(rs);
}

static void
restore_run(struct restore *rs)
{
	char	*msg = NULL;

	if (rs->admin != NULL) {
		pg_cancel(rs->admin);
		rs->admin = NULL;
	}
	rs->child = pg_restore_spawn(rs->b, "restore", rs->into, rs->file,
	    rs->force, restore_done, rs, &rs->passfile, &msg);
	if (rs->child == NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "%s", msg);
		free(msg);
	}
}

static void
restore_counted(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	long		 n;

	(void)q;
	if (err != NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "cannot inspect database %s: "
		    "%s", rs->into, err);
		return;
	}
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	pg_cancel(rs->target);
	rs->target = NULL;
	if (n > 0 && !rs->force) {
		restore_fail(rs, OPSD_ERR_FAILED, "database %s is not empty (%ld "
		    "tables, views or sequences); restore into a new database "
		    "with --create, or pass --force to replace its objects",
		    rs->into, n);
		return;
	}
	restore_run(rs);
}

static void
restore_target_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;

	(void)res;
	if (err != NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "cannot connect to %s: %s",
		    rs->into, err);
		return;
	}
	if (pg_exec(q, "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
	    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m',"
	    "'S','f') AND n.nspname NOT IN ('pg_catalog', "
	    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
	    60000, restore_counted, rs) != 0)
		restore_fail(rs, OPSD_ERR_FAILED, "cannot inspect %s", rs->into);
}

static void
restore_created(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;

	(void)q;
	(void)res;
	if (err != NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "cannot create database %s: %s",
		    rs->into, err);
		return;
	}
	rs->created = 1;
	restore_run(rs);
}

static void
restore_exists(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	char		*sql, *qi;
	int		 exists;

	if (err != NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "%s", err);
		return;
	}
	exists = PQntuples(res) > 0;
	if (!exists && !rs->create) {
		restore_fail(rs, OPSD_ERR_NOT_FOUND, "database %s does not exist;"
		    " pass --create to create it", rs->into);
		return;
	}
	if (!exists) {
		qi = pg_quote_ident(rs->into);
		xasprintf(&sql, "CREATE DATABASE %s", qi);
		free(qi);
		if (pg_exec(q, sql, 600000, restore_created, rs) != 0)
			restore_fail(rs, OPSD_ERR_FAILED, "cannot create %s",
			    rs->into);
		free(sql);
		return;
	}
	rs->target = session_open(rs->b, 1, rs->into, 60000,
	    restore_target_open, rs);
}

static void
restore_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct restore	*rs = arg;
	char		*sql, *lit, *p, *o;

	(void)res;
	if (err != NULL) {
		restore_fail(rs, OPSD_ERR_FAILED, "cannot connect with the admin "
		    "connection: %s", err);
		return;
	}
	/* a literal: double the quotes (standard_conforming_strings) */
	lit = o = xmalloc(2 * strlen(rs->into) + 1);
	for (p = rs->into; *p != '\0'; p++) {
		if (*p == '\'')
			*o++ = '\'';
		*o++ = *p;
	}
	*o = '\0';
	xasprintf(&sql, "SELECT 1 FROM pg_database WHERE datname = '%s'", lit);
	free(lit);
	if (pg_exec(q, sql, 30000, restore_exists, rs) != 0)
		restore_fail(rs, OPSD_ERR_FAILED, "cannot query pg_database");
	free(sql);
}

static void
restore_summed(struct child *c, const struct child_result *r, void *arg)
{
	struct restore	*rs = arg;

	(void)c;
	rs->child = NULL;
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0 ||
	    r->outlen < 64) {
		restore_fail(rs, OPSD_ERR_FAILED, "cannot read %s: %.*s",
		    rs->file, (int)strcspn(r->err, "\n"), r->err);
		return;
	}
	if (strncmp(r->out, m_str(rs->manifest, "sha256"), 64) != 0) {
		restore_fail(rs, OPSD_ERR_FAILED, "checksum mismatch: %s is "
		    "corrupt (sha256 %.16s..., manifest %.16s...); refusing to "
		    "restore it", rs->file, r->out,
		    m_str(rs->manifest, "sha256"));
		return;
	}
	rs->admin = session_open(rs->b, 1, NULL, 60000, restore_admin_open,
	    rs);
}

int
backup_rpc_restore(struct opsd *o, const char *id, const char *into,
    int create, int force, struct rpc_pending *waiter, char **msg)
{
	struct backup		*b = NULL;
	struct restore		*rs;
	struct child_spec	 spec;
	json_t			*m;
	int			 e = 0;

	if ((m = item_find(o, id, &b)) == NULL) {
		xasprintf(msg, "no backup with id '%s' (backup list shows them)",
		    id);
		return (OPSD_ERR_NOT_FOUND);
	}
	if (*into == '\0' || strlen(into) > 63) {
		xasprintf(msg, "'%s' is not a database name", into);
		return (RPC_INVALID_PARAMS);
	}
	rs = xcalloc(1, sizeof *rs);
	rs->b = b;
	rs->manifest = json_incref(m);
	rs->into = xstrdup(into);
	rs->create = create;
	rs->force = force;
	rs->waiter = waiter;
	rs->start_usec = now_usec();
	xasprintf(&rs->file, "%s/%s", b->conf->dir, m_str(m, "file"));
	{
		const char *argv[] = { "sha256sum", "--", rs->file, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.max_output = 256;
		spec.timeout_ms = b->conf->verify_timeout;
		rs->child = child_spawn(&spec, restore_summed, rs, &e);
	}
	if (rs->child == NULL) {
		rs->waiter = NULL;
		restore_free(rs);
		xasprintf(msg, "cannot run sha256sum: %s", strerror(-e));
		return (OPSD_ERR_FAILED);
	}
	log_notice("backup.restore", "restoring %s into %s%s%s", id, into,
	    create ? " (create)" : "", force ? " (force)" : "");
	return (0);
}

int
backup_rpc_verify(struct opsd *o, const char *id, struct rpc_pending *waiter,
    char **msg)
{
	struct backup	*b = NULL;
	json_t		*m;

	if ((m = item_find(o, id, &b)) == NULL) {
		xasprintf(msg, "no backup with id '%s' (backup list shows them)",
		    id);
		return (OPSD_ERR_NOT_FOUND);
	}
	if (b->verify != NULL) {
		xasprintf(msg, "a verification of %s is already running",
		    b->conf->name);
		return (OPSD_ERR_BUSY);
	}
	verify_start(b, m, NULL, NULL, waiter);
	/* verify_start may have finished at once (checksum tool missing) */
	return (0);
}

int
backup_rpc_run(struct opsd *o, const char *name, struct rpc_pending *follower,
    char **run_id, char **msg)
{
	struct backup	*b;
	struct brun	*r;

	if ((b = backup_find(o, name)) == NULL) {
		xasprintf(msg, "no backup named '%s' (backup list shows them)",
		    name);
		return (OPSD_ERR_NOT_FOUND);
	}
	if (b->run != NULL) {
		xasprintf(msg, "backup %s is already running (run %s)", name,
		    b->run->id);
		return (OPSD_ERR_BUSY);
	}
	{
		char	id[160], ts[32];
		time_t	t = time(NULL);
		struct tm tm;
		json_t	*x;
		size_t	i;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
		snprintf(id, sizeof id, "%s-%s", name, ts);
		json_array_foreach(b->items, i, x) {
			if (strcmp(m_str(x, "id"), id) == 0) {
				xasprintf(msg, "backup %s was taken this very "
				    "second; try again in a second", id);
				return (OPSD_ERR_BUSY);
			}
		}
	}
	if (b->job != NULL)
		job_started(b->job);
	r = run_start(b, b->job);
	*run_id = xstrdup(r->id);
	if (follower != NULL) {
		r->followers = xreallocarray(r->followers, r->nfollowers + 1,
		    sizeof *r->followers);
		r->followers[r->nfollowers++] = follower;
	}
	return (0);
}

/* --- retention ---------------------------------------------------------- */

static void
remote_deleted(struct s3_op *op, int ok, const char *error, void *arg)
{
	(void)op;
	(void)arg;
	if (!ok)
		log_warn("backup.prune", "remote delete failed: %s", error);
}

static void
remote_delete(struct backup *b, const char *file)
{
	struct s3_target	 t;
	char			 ak[512], sk[512], *bucket, *prefix, *key;

	if (read_key(b->conf->s3_access_key_file, ak, sizeof ak) != 0 ||
	    read_key(b->conf->s3_secret_key_file, sk, sizeof sk) != 0 ||
	    s3_parse_url(b->conf->upload, &bucket, &prefix) != 0)
		return;
	memset(&t, 0, sizeof t);
	t.endpoint = b->conf->s3_endpoint;
	t.region = b->conf->s3_region;
	t.bucket = bucket;
	t.access_key = ak;
	t.secret_key = sk;
	t.timeout_ms = 60000;
	xasprintf(&key, "%s%s%s", prefix, *prefix ? "/" : "", file);
	s3_delete(&t, key, remote_deleted, NULL);
	explicit_bzero(ak, sizeof ak);
	explicit_bzero(sk, sizeof sk);
	free(key);
	free(bucket);
	free(prefix);
}

int
backup_prune(struct opsd *o, const char *name, int dry_run, json_t **result,
    char **msg)
{
	struct backup		*b;
	struct retention	 pol;
	json_t			*m, *gone, *kept, *keepers;
	int64_t			*ts;
	int			*ver, *keep;
	size_t			 i, n;
	char			*path;

	if ((b = backup_find(o, name)) == NULL) {
		xasprintf(msg, "no backup named '%s'", name);
		return (OPSD_ERR_NOT_FOUND);
	}
	n = json_array_size(b->items);
	ts = xcalloc(n + 1, sizeof *ts);
	ver = xcalloc(n + 1, sizeof *ver);
	keep = xcalloc(n + 1, sizeof *keep);
	json_array_foreach(b->items, i, m) {
		ts[i] = json_integer_value(json_object_get(m, "start"));
		/* without verification every written backup is "good" */
		ver[i] = b->conf->verify == BACKUP_VERIFY_NEVER ? 1 :
		    m_verified(m);
	}
	pol.keep_last = b->conf->keep_last;
	pol.keep_daily = b->conf->keep_daily;
	pol.keep_weekly = b->conf->keep_weekly;
	pol.keep_monthly = b->conf->keep_monthly;
	backup_retention(&pol, ts, ver, (unsigned int)n, keep);
	gone = json_array();
	kept = json_array();
	keepers = json_array();
	json_array_foreach(b->items, i, m) {
		if (keep[i]) {
			json_array_append_new(kept, json_string(m_str(m, "id")));
			json_array_append(keepers, m);
			continue;
		}
		/* a run or a verify in flight holds its manifest */
		if ((b->run != NULL && b->run->manifest == m) ||
		    (b->verify != NULL && b->verify->manifest == m)) {
			json_array_append(keepers, m);
			continue;
		}
		json_array_append_new(gone, json_string(m_str(m, "id")));
		if (dry_run) {
			json_array_append(keepers, m);
			continue;
		}
		xasprintf(&path, "%s/%s", b->conf->dir, m_str(m, "file"));
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("backup.prune", "cannot remove %s: %s", path,
			    strerror(errno));
		free(path);
		xasprintf(&path, "%s/%s.json", b->conf->dir, m_str(m, "id"));
		unlink(path);
		free(path);
		if (b->conf->remote_retention && b->conf->upload != NULL) {
			remote_delete(b, m_str(m, "file"));
			xasprintf(&path, "%s.json", m_str(m, "id"));
			remote_delete(b, path);
			free(path);
		}
		log_info("backup.prune", "removed %s (retention)",
		    m_str(m, "id"));
	}
	json_decref(b->items);
	b->items = keepers;
	stats_from_items(b);
	free(ts);
	free(ver);
	free(keep);
	*result = json_pack("{s:s, s:b, s:o, s:o}", "backup", name, "dry_run",
	    dry_run, "removed", gone, "kept", kept);
	return (0);
}

/* --- staleness, recovery, life cycle ------------------------------------ */

static int64_t
backup_max_age(struct backup *b)
{
	if (b->conf->max_age > 0)
		return ((int64_t)(b->conf->max_age / 1000));
	return (2 * sched_period(&b->conf->spec));
}

/* The newest backup opsd can call good: verified, or written if never. */
static int64_t
backup_newest_good(struct backup *b)
{
	return (b->conf->verify == BACKUP_VERIFY_NEVER ? b->last_success :
	    b->last_verified);
}

static void
format_age(int64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%lldd %lldh", (long long)s / 86400,
		    (long long)s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%lldh %lldm", (long long)s / 3600,
		    (long long)s % 3600 / 60);
	else
		snprintf(buf, len, "%lldm %llds", (long long)s / 60,
		    (long long)s % 60);
}

static void
stale_cb(evutil_socket_t fd, short what, void *arg)
{
	struct backup	*b = arg;
	struct timeval	 tv = { STALE_CHECK_S, 0 };
	int64_t		 now = (int64_t)time(NULL), good, max;
	int		 stale;

	(void)fd;
	(void)what;
	good = backup_newest_good(b);
	max = backup_max_age(b);
	/* a fresh install gets one max_age before it counts as stale */
	if (good == 0)
		good = b->opsd->start_time;
	stale = max > 0 && now - good > max;
	if (stale && !b->stale_firing) {
		b->stale_firing = 1;
		char	age[32], lim[32];

		format_age(now - good, age, sizeof age);
		format_age(max, lim, sizeof lim);
		backup_event(b, &EVT_BACKUP_STALE, NULL, "backup.stale", 1,
		    "backup %s is STALE: the newest %s backup is %s old "
		    "(max_age %s)", b->conf->name,
		    b->conf->verify == BACKUP_VERIFY_NEVER ? "successful" :
		    "verified", age, lim);
	} else if (!stale && b->stale_firing) {
		b->stale_firing = 0;
		backup_event(b, &EVT_BACKUP_STALE, NULL, "backup.stale", 0,
		    "backup "
		    "%s is fresh again", b->conf->name);
	}
	evtimer_add(b->stale_timer, &tv);
}

static void
recover_close(struct backup *b, struct pgq *q)
{
	pg_cancel(q);
	b->recover_q = NULL;
}

struct recover_drop {
	struct backup	*b;
	struct pgq	*q;
	char		*name;
};

static void
recover_dropped_once(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct recover_drop	*d = arg;
	struct backup		*b = d->b;
	unsigned int		 i;

	(void)q;
	(void)res;
	if (err != NULL)
		log_warn("backup.recover", "cannot drop stale scratch database "
		    "%s: %s", d->name, err);
	else
		log_notice("backup.recover", "dropped stale scratch database "
		    "%s", d->name);
	for (i = 0; i < b->ndrops; i++) {
		if (b->drops[i] == d) {
			b->drops[i] = b->drops[--b->ndrops];
			break;
		}
	}
	free(d->name);
	free(d);
}

static void
recover_listed(struct pgq *q, const PGresult *res, const char *err, void *arg)
{
	struct backup	*b = arg;
	char		*sql, *qi, *name;
	int		 i;

	if (err != NULL) {
		log_warn("backup.recover", "cannot look for stale scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
		return;
	}
	/* a one-shot admin connection per database: the list is short */
	for (i = 0; i < PQntuples(res); i++) {
		struct recover_drop *d = xcalloc(1, sizeof *d);

		name = xstrdup(PQgetvalue(res, i, 0));
		d->b = b;
		d->name = name;
		qi = pg_quote_ident(name);
		xasprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", qi);
		free(qi);
		d->q = db_query(b->opsd->base, b->db, 1, NULL, sql, 60000,
		    recover_dropped_once, d);
		b->drops = xreallocarray(b->drops, b->ndrops + 1,
		    sizeof *b->drops);
		b->drops[b->ndrops++] = d;
		free(sql);
	}
	/*
	 * The list is taken under the lock, so every name on it belongs to
	 * a run that is over: let go of the lock now, the drops need none.
	 */
	recover_close(b, q);
}

static void
recover_admin_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;
	char		*sql;

	(void)res;
	if (err != NULL) {
		log_warn("backup.recover", "cannot connect to clean up scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
		return;
	}
	/* only this backup's: not those of "app-2" when this is "app" */
	sql = db_scratch_list_sql("verify", b->conf->name);
	if (pg_exec(q, sql, 30000, recover_listed, b) != 0)
		recover_close(b, q);
	free(sql);
}

static void
recover_locked(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;

	if (err != NULL || !db_lock_held(res)) {
		/* another host runs this backup now: its scratch is its own */
		log_info("backup.recover", "not looking for scratch databases "
		    "of %s: %s", b->conf->name, err ? err : "another host "
		    "holds the backup's lock");
		recover_close(b, q);
		return;
	}
	recover_admin_open(q, NULL, NULL, b);
}

static void
recover_lock_open(struct pgq *q, const PGresult *res, const char *err,
    void *arg)
{
	struct backup	*b = arg;

	(void)res;
	if (err != NULL) {
		log_warn("backup.recover", "cannot connect to clean up scratch "
		    "databases of %s: %s", b->conf->name, err);
		recover_close(b, q);
		return;
	}
	if (db_try_lock(q, db_lock_key("backup", b->conf->name), 30000,
	    recover_locked, b) != 0)
		recover_close(b, q);
}

/* After a crash: no partial file, no run state, no scratch database. */
static void
backup_recover(struct backup *b)
{
	json_t		*st;
	DIR		*d;
	struct dirent	*de;
	char		*name = run_state_name(b), *path;
	int		 err;

	st = state_read_json(b->opsd->conf->state_dir, name, &err);
	if (st != NULL) {
		const char *id = json_string_value(json_object_get(st, "id"));
		const char *partial = json_string_value(json_object_get(st,
		    "partial"));

		const char *final = json_string_value(json_object_get(st,
		    "final"));
		const char *step = json_string_value(json_object_get(st,
		    "step"));
		char *mpath = NULL;
		struct stat sb;
		int complete;

		if (partial != NULL)
			unlink(partial);
		/* renamed but no manifest yet: no checksum, not a backup */
		if (id != NULL)
			xasprintf(&mpath, "%s/%s.json", b->conf->dir, id);
		complete = mpath != NULL && stat(mpath, &sb) == 0;
		if (!complete && final != NULL)
			unlink(final);
		free(mpath);
		backup_event(b, &EVT_BACKUP_INTERRUPTED, id, NULL, 0, "backup "
		    "run %s was interrupted while %s (opsd stopped or "
		    "crashed); %s", id ? id : "?", step ? step : "?",
		    complete ? "the backup itself is complete and kept; its "
		    "verification or upload did not finish" : "its partial "
		    "file was removed");
		json_decref(st);
		run_clear_state(b);
	}
	free(name);
	if ((d = opendir(b->conf->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!own_file(b, de->d_name, ".dump.partial"))
				continue;
			xasprintf(&path, "%s/%s", b->conf->dir, de->d_name);
			log_notice("backup.recover", "removing leftover %s",
			    path);
			unlink(path);
			free(path);
		}
		closedir(d);
	}
	xasprintf(&path, "%s-", b->conf->name);
	db_passfile_clean(b->opsd->conf->state_dir, path);
	free(path);
	/*
	 * Stale scratch databases go; in a fleet only while holding the
	 * backup's lock, so another host's verification is left alone.
	 */
	if (b->conf->lock == BACKUP_LOCK_ADVISORY)
		b->recover_q = session_open(b, 0, NULL, 30000,
		    recover_lock_open, b);
	else
		b->recover_q = session_open(b, 1, NULL, 30000,
		    recover_admin_open, b);
}

static struct backup_conf *
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

static void
backup_free(struct backup *b, int removed)
{
	static const char *const kinds[] = { "backup.run", "backup.verify",
	    "backup.upload", "backup.stale" };
	size_t	k;

	if (removed) {
		for (k = 0; k < nitems(kinds); k++)
			alert_resolve(b->opsd, kinds[k], b->conf->name,
			    "was removed from the configuration");
	}
	if (b->verify != NULL)
		verify_abort(b->verify, "opsd is stopping or the backup was "
		    "reconfigured");
	if (b->run != NULL) {
		/* the partial file goes; the state says nothing is left */
		struct brun *r = b->run;

		if (r->child != NULL) {
			child_abandon(r->child);
			r->child = NULL;
		}
		if (r->error == NULL)
			r->error = xstrdup("opsd is stopping or the backup was "
			    "removed");
		r->interrupted = 1;	/* not a failure of the backup */
		run_finish(r, 0, 0);
	}
	if (b->version_child != NULL)
		child_abandon(b->version_child);
	if (b->recover_q != NULL)
		pg_cancel(b->recover_q);
	while (b->ndrops > 0) {
		struct recover_drop *d = b->drops[--b->ndrops];

		pg_cancel(d->q);
		free(d->name);
		free(d);
	}
	free(b->drops);
	if (b->job != NULL)
		job_remove(b->job);
	if (b->verify_job != NULL)
		job_remove(b->verify_job);
	if (b->stale_timer != NULL)
		event_free(b->stale_timer);
	json_decref(b->items);
	backup_conf_free(b->conf);
	db_conf_free(b->db);
	free(b->pg_dump_version);
	free(b);
}

void
backup_apply_config(struct opsd *o)
{
	struct backup_set	*set = backup_set(o);
	struct opsd_config	*conf = o->conf;
	struct backup		*b, **fresh;
	struct timeval		 tv = { 1, 0 };
	unsigned int		 i, j;
	char			*jobname;

	fresh = xcalloc(conf->nbackups + 1, sizeof *fresh);
	for (i = 0; i < conf->nbackups; i++) {
		b = NULL;
		for (j = 0; j < set->n; j++) {
			if (set->v[j] != NULL && strcmp(set->v[j]->conf->name,
			    conf->backups[i]->name) == 0) {
				b = set->v[j];
				set->v[j] = NULL;
				break;
			}
		}
		if (b != NULL && (b->run != NULL || b->verify != NULL)) {
			/* busy: it keeps the settings it started with */
			log_warn("backup.reload", "backup %s is running; its "
			    "new settings are not applied (reload again once "
			    "it is done)", b->conf->name);
			fresh[i] = b;
			continue;
		}
		if (b != NULL) {
			/* idle: take the new settings, keep the counters */
			job_remove(b->job);
			b->job = NULL;
			if (b->verify_job != NULL)
				job_remove(b->verify_job);
			b->verify_job = NULL;
			backup_conf_free(b->conf);
			db_conf_free(b->db);
		} else {
			b = xcalloc(1, sizeof *b);
			b->opsd = o;
			b->stale_timer = evtimer_new(o->base, stale_cb, b);
			evtimer_add(b->stale_timer, &tv);
		}
		b->conf = backup_conf_copy(conf->backups[i]);
		b->db = db_conf_copy(db_conf_find(conf, b->conf->database));
		items_load(b);
		xasprintf(&jobname, "backup %s", b->conf->name);
		b->job = job_add(o, jobname, &b->conf->spec,
		    b->conf->random_delay, b->conf->persistent, backup_job_cb,
		    b);
		free(jobname);
		if (b->conf->verify_schedule != NULL) {
			xasprintf(&jobname, "verify %s", b->conf->name);
			b->verify_job = job_add(o, jobname,
			    &b->conf->verify_spec, b->conf->random_delay,
			    b->conf->persistent, verify_job_cb, b);
			free(jobname);
		}
		if (!set->recovered)
			backup_recover(b);
		fresh[i] = b;
	}
	for (j = 0; j < set->n; j++) {
		if (set->v[j] != NULL)
			backup_free(set->v[j], 1);
	}
	free(set->v);
	set->v = fresh;
	set->n = conf->nbackups;
	set->recovered = 1;
}

void
backup_stop_all(struct opsd *o)
{
	unsigned int	i;

	if (o->backups == NULL)
		return;
	for (i = 0; i < o->backups->n; i++)
		backup_free(o->backups->v[i], 0);
	free(o->backups->v);
	free(o->backups);
	o->backups = NULL;
}

/* --- views -------------------------------------------------------------- */

static json_t *
item_summary(json_t *m)
{
	json_t	*v = json_object_get(m, "verify"), *u = json_object_get(m,
		    "upload");

	return (json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", m_str(m,
	    "id"), "time", m_str(m, "start_iso"), "bytes",
	    json_integer_value(json_object_get(m, "bytes")), "sha256",
	    m_str(m, "sha256"), "verified", json_is_object(v) ?
	    (json_is_true(json_object_get(v, "ok")) ? "ok" : "FAILED") : "-",
	    "uploaded", json_is_object(u) ? (json_is_true(json_object_get(u,
	    "ok")) ? "ok" : "FAILED") : "-"));
}

json_t *
backup_list_json(struct opsd *o, const char *name)
{
	struct backup	*b;
	json_t		*list, *items, *m;
	unsigned int	 i;
	size_t		 k;
	char		 next[32], newest[32];
	int64_t		 good, now = (int64_t)time(NULL);

	list = json_array();
	for (i = 0; i < backup_count(o); i++) {
		b = o->backups->v[i];
		if (name != NULL && strcmp(name, b->conf->name) != 0)
			continue;
		items = json_array();
		json_array_foreach(b->items, k, m)
			json_array_append_new(items, item_summary(m));
		strcpy(next, "-");
		strcpy(newest, "-");
		if (job_next(b->job) > 0)
			iso_time(job_next(b->job), next, sizeof next);
		good = backup_newest_good(b);
		if (good > 0)
			iso_time(good, newest, sizeof newest);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, "
		    "s:s, s:I, s:b, s:I, s:s?, s:o}", "name", b->conf->name,
		    "database", b->conf->database, "schedule",
		    b->conf->schedule, "next_run", next, "newest_good", newest,
		    "age_seconds", (json_int_t)(good > 0 ? now - good : -1),
		    "stale", b->stale_firing, "max_age_seconds",
		    (json_int_t)backup_max_age(b), "running", b->run ?
		    b->run->id : NULL, "backups", items));
	}
	return (list);
}

json_t *
backup_show_json(struct opsd *o, const char *id)
{
	struct backup	*b = NULL;
	json_t		*m;

	if ((m = item_find(o, id, &b)) == NULL)
		return (NULL);
	return (json_deep_copy(m));
}

void
backup_metrics(struct opsd *o, struct evbuffer *buf)
{
	struct backup	*b;
	unsigned int	 i;
	static const struct {
		const char	*name, *type, *help;
	} m[] = {
		{ "opsd_backup_last_success_timestamp_seconds", "gauge",
		  "Start time of the newest successful backup." },
		{ "opsd_backup_last_verified_timestamp_seconds", "gauge",
		  "Start time of the newest backup that verified by a "
		  "restore." },
		{ "opsd_backup_size_bytes", "gauge",
		  "Size of the newest backup." },
		{ "opsd_backup_duration_seconds", "gauge",
		  "Wall time of the last successful run." },
		{ "opsd_backup_runs_total", "counter",
		  "Backup runs by result." },
		{ "opsd_backup_upload_total", "counter",
		  "Off-site copies by result." },
		{ "opsd_backup_stale", "gauge",
		  "1 while the newest good backup is older than max_age." },
	};
	size_t	k;

	for (k = 0; k < nitems(m); k++) {
		evbuffer_add_printf(buf, "# HELP %s %s\n# TYPE %s %s\n",
		    m[k].name, m[k].help, m[k].name, m[k].type);
		for (i = 0; i < backup_count(o); i++) {
			b = o->backups->v[i];
			/* backup names are [A-Za-z0-9._-]: no escaping */
			switch (k) {
			case 0:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%lld\n", m[k].name, b->conf->name,
				    (long long)b->last_success);
				break;
			case 1:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%lld\n", m[k].name, b->conf->name,
				    (long long)b->last_verified);
				break;
			case 2:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%llu\n", m[k].name, b->conf->name,
				    (unsigned long long)b->last_size);
				break;
			case 3:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%.3f\n", m[k].name, b->conf->name,
				    b->last_duration);
				break;
			case 4:
				evbuffer_add_printf(buf, "%s{backup=\"%s\","
				    "result=\"ok\"} %llu\n%s{backup=\"%s\","
				    "result=\"failed\"} %llu\n%s{backup=\"%s\","
				    "result=\"skipped\"} %llu\n", m[k].name,
				    b->conf->name, (unsigned long long)
				    b->runs_ok, m[k].name, b->conf->name,
				    (unsigned long long)b->runs_failed,
				    m[k].name, b->conf->name,
				    (unsigned long long)b->runs_skipped);
				break;
			case 5:
				evbuffer_add_printf(buf, "%s{backup=\"%s\","
				    "result=\"ok\"} %llu\n%s{backup=\"%s\","
				    "result=\"failed\"} %llu\n", m[k].name,
				    b->conf->name, (unsigned long long)
				    b->upload_ok, m[k].name, b->conf->name,
				    (unsigned long long)b->upload_failed);
				break;
			case 6:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%d\n", m[k].name, b->conf->name,
				    b->stale_firing);
				break;
			}
		}
	}
}
