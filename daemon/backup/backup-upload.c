/*
 * The off-site copy: the dump, then its manifest beside it, to S3 with a
 * few retries (2, 4, 8 s); a failure is reported but the local backup
 * stays good. Removal of remote copies for remote_retention.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "backup-int.h"
#include "daemon.h"
#include "evt.h"
#include "probe.h"
#include "s3.h"
#include "secretfile.h"
#include "util.h"

#define UPLOAD_TRIES	4

static int
read_key(const char *path, char *buf, size_t len)
{
	return (secretfile_read(path, buf, len, SECRETFILE_ONE_LINE, NULL));
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
		backup_run_upload(r);
		return;
	}
	if (!ok && r->upload_try < UPLOAD_TRIES && !b->opsd->stopping) {
		tv.tv_sec = 1 << r->upload_try;	/* 2, 4, 8 s */
		tv.tv_usec = 0;
		backup_log(b, LOG_WARNING, "backup.upload", r->id, "upload of "
		    "%s failed (try %u of %d): %s; retrying in %lds", r->id,
		    r->upload_try, UPLOAD_TRIES, error, (long)tv.tv_sec);
		event_free(r->timer);
		r->timer = evtimer_new(b->opsd->base, run_upload_retry, r);
		evtimer_add(r->timer, &tv);
		return;
	}
	util_iso_time(time(NULL), at, sizeof at);
	up = json_pack("{s:b, s:I, s:s, s:s, s:s?, s:i}", "ok", ok, "at",
	    (json_int_t)time(NULL), "at_iso", at, "url", b->conf->upload,
	    "error", ok ? NULL : error, "tries", r->upload_manifest ?
	    r->dump_tries : r->upload_try);
	json_object_set_new(r->manifest, "upload", up);
	backup_manifest_save(b, r->manifest);
	if (ok) {
		b->upload_ok++;
		backup_log(b, LOG_INFO, "backup.upload", r->id, "%s uploaded "
		    "to %s", r->id, b->conf->upload);
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
	backup_run_pruned(r);
}

static void
run_upload_retry(evutil_socket_t fd, short what, void *arg)
{
	struct brun	*r = arg;
	struct timeval	 tv = { 1, 0 };

	(void)fd;
	(void)what;
	event_free(r->timer);
	r->timer = evtimer_new(r->b->opsd->base, backup_run_tick, r);
	evtimer_add(r->timer, &tv);
	backup_run_upload(r);
}

void
backup_run_upload(struct brun *r)
{
	struct backup		*b = r->b;
	struct s3_target	 t;
	char			 ak[512], sk[512], *bucket = NULL, *prefix = NULL;
	char			*key, *path, msg[256];
	const char		*file;
	struct stat		 st;

	/* the uploading step is in the op journal already (backup-run.c) */
	r->step = RUN_UPLOAD;
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
	t.opsd = b->opsd;
	t.endpoint = b->conf->s3_endpoint;
	t.region = b->conf->s3_region;
	t.bucket = bucket;
	t.access_key = ak;
	t.secret_key = sk;
	t.timeout_ms = b->conf->timeout;
	t.connect_timeout_ms = b->conf->upload_connect_timeout;
	t.stall_timeout_ms = b->conf->upload_stall_timeout;
	/* both names derive from the run's id, not from the manifest */
	xasprintf(&path, "%s/%s.%s", b->conf->dir, r->id, r->upload_manifest ?
	    "json" : "dump");
	file = strrchr(path, '/') + 1;
	xasprintf(&key, "%s%s%s", prefix, *prefix ? "/" : "", file);
	if (r->upload_manifest) {
		/* small: hash it here */
		unsigned char	 md[32];
		char		 hex[65], *buf = NULL;
		size_t		 n = 0;
		int		 fd = open(path, O_RDONLY | O_NOFOLLOW |
				    O_CLOEXEC);
		ssize_t		 got;

		buf = xmalloc(BACKUP_MANIFEST_MAX);
		while (fd != -1 && n < BACKUP_MANIFEST_MAX && (got = read(fd,
		    buf + n, BACKUP_MANIFEST_MAX - n)) > 0)
			n += (size_t)got;
		if (fd != -1)
			close(fd);
		EVP_Digest(buf, n, md, NULL, EVP_sha256(), NULL);
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		free(buf);
		r->s3 = s3_upload(&t, key, path, n, hex, run_uploaded, r);
	} else if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
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

/* What a remote delete reports with: the backup may be gone by then. */
struct remote_del {
	char	*backup;
	char	*database;
	char	*key;
};

static const struct evt_type remote_del_type = {
	"backup.prune", NULL, LOG_WARNING };

static void
remote_deleted(struct s3_op *op, int ok, const char *error, void *arg)
{
	struct remote_del	*d = arg;
	struct evt		*ev;

	(void)op;
	if (!ok) {
		ev = evt_new(&remote_del_type);
		evt_add(ev, "backup", "%s", d->backup);
		evt_add(ev, "database", "%s", d->database);
		evt_emit(ev, "remote delete of %s failed: %s", d->key, error);
	}
	free(d->backup);
	free(d->database);
	free(d->key);
	free(d);
}

void
backup_remote_delete(struct backup *b, const char *file)
{
	struct s3_target	 t;
	char			 ak[512], sk[512], *bucket, *prefix, *key;

	if (read_key(b->conf->s3_access_key_file, ak, sizeof ak) != 0 ||
	    read_key(b->conf->s3_secret_key_file, sk, sizeof sk) != 0 ||
	    s3_parse_url(b->conf->upload, &bucket, &prefix) != 0)
		return;
	memset(&t, 0, sizeof t);
	t.opsd = b->opsd;
	t.endpoint = b->conf->s3_endpoint;
	t.region = b->conf->s3_region;
	t.bucket = bucket;
	t.access_key = ak;
	t.secret_key = sk;
	t.timeout_ms = 60000;
	t.connect_timeout_ms = b->conf->upload_connect_timeout;
	t.stall_timeout_ms = b->conf->upload_stall_timeout;
	xasprintf(&key, "%s%s%s", prefix, *prefix ? "/" : "", file);
	{
		struct remote_del *d = xcalloc(1, sizeof *d);

		d->backup = xstrdup(b->conf->name);
		d->database = xstrdup(b->conf->database);
		d->key = xstrdup(key);
		if (s3_delete(&t, key, remote_deleted, d) == NULL) {
			free(d->backup);
			free(d->database);
			free(d->key);
			free(d);
		}
	}
	explicit_bzero(ak, sizeof ak);
	explicit_bzero(sk, sizeof sk);
	free(key);
	free(bucket);
	free(prefix);
}
