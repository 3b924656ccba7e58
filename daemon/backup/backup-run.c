/*
 * A backup run: connect -> lock (optional advisory lock for fleets) ->
 * dump (pg_dump into a FIFO, the dump writer from it through SHA-256
 * into a .partial file) -> sync -> rename + manifest -> verify -> upload
 * -> prune. A run is an op of kind backup.run (core/op.h) on the backup's
 * name, its run id saved as "run": run_step() puts each step in the
 * journal before the step's side effect, so that start-up recovery
 * (backup_run_recover) knows what to undo, and the same steps reach the
 * run's --follow clients through the op's listener.
 *
 * Nothing here blocks the loop on something slow: pg_dump, the dump
 * writer and the final fsync (`sync FILE`) are children, queries go
 * through pg.c. No dump byte passes through opsd; what stays inline are
 * small state files (the journal, the manifest).
 *
 * Why a writer child (pg_dump --file=FIFO, the writer copying, hashing,
 * starting writeback and syncing) and not pg_dump --file=PARTIAL with a
 * hash pass after it. Measured with bench/backup (pgbench scale 110,
 * -Fc -Z0, a 1.13 GB dump, 2 CPUs shared with other load):
 *
 *                          CPU ratio  wall ratio  loop lag_max
 *   opsd copying on loop     1.84       1.23       20.9 ms (457 ms in a
 *                                                  run at 822 MB)
 *   writer child             1.64       1.05        7.6 ms
 *
 * (CPU ratio: pg_dump + opsd's children + opsd over pg_dump alone. With
 * -Z0 pg_dump itself is cheap, ~4.5 s, so copying and hashing 1.1 GB,
 * ~2 s whoever does it, weighs; with compression pg_dump dominates:
 * -Fc at scale 30, an 8 MB dump, 1.12 with the writer on a loaded host,
 * ~1.03 reported for the old path.) A hash pass after pg_dump --file would save the
 * pipe copy but read the file again after the dump, on the run's wall
 * time: `openssl dgst -sha256` took 1.2 s CPU and 2.5 s for 1.1 GB here
 * (sha256sum 6 s), where the writer hashes while pg_dump runs. And a
 * pg_dump writing its file itself outlives a kill -9 of opsd, finishing
 * a dump nobody wants next to the new run's; behind the writer, which
 * dies with opsd (PR_SET_PDEATHSIG), it ends on a broken pipe as it did
 * when opsd read it. pg_dump stays opsd's own child, so its exit status,
 * stderr and timeout are handled as before.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "backup-int.h"
#include "child.h"
#include "daemon.h"
#include "evt.h"
#include "jobs.h"
#include "op.h"
#include "rpc.h"
#include "s3.h"
#include "state.h"
#include "util.h"

/* The steps of backup.run: docs/hacking.md, "The op journal". */
const char *const backup_run_steps[RUN_NSTEPS] = {
	[RUN_CONNECT] = "connecting",
	[RUN_LOCK] = "locking",
	[RUN_DUMP] = "dumping",
	[RUN_SYNC] = "syncing",
	[RUN_RENAME] = "renaming",
	[RUN_VERIFY] = "verifying",
	[RUN_UPLOAD] = "uploading",
	[RUN_PRUNE] = "pruning",
};
#define step_names	backup_run_steps

const struct op_kind backup_run_kind = {
	.name = "backup.run",
	.steps = backup_run_steps,
	.nsteps = RUN_NSTEPS,
	.rollback = backup_run_recover,
};

/* NAME-YYYYMMDDTHHMMSSZ of this backup (and a real time), else -1. */
int64_t
backup_run_id_time(struct backup *b, const char *id)
{
	struct tm	 tm;
	time_t		 t;
	char		 back[32];
	const char	*ts;

	if (id == NULL || !backup_own_file(b, id, ""))
		return (-1);
	ts = id + strlen(b->conf->name) + 1;
	memset(&tm, 0, sizeof tm);
	if (sscanf(ts, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon,
	    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return (-1);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	/* no 20261399T...: the time must print back to the same text */
	gmtime_r(&t, &tm);
	strftime(back, sizeof back, "%Y%m%dT%H%M%SZ", &tm);
	if (strcmp(back, ts) != 0)
		return (-1);
	return ((int64_t)t);
}

static void	run_fail(struct brun *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * Makes step the run's current one, in the journal before its side
 * effect. -1 when it could not be recorded: the run has then failed (and
 * is gone), and the caller must not do the step.
 */
static int
run_step(struct brun *r, enum brun_step step)
{
	int	e;

	r->step = step;
	if ((e = op_step(r->op, step)) != 0) {
		run_fail(r, "cannot record step %s in the op journal: %s",
		    step_names[step], strerror(-e));
		return (-1);
	}
	return (0);
}

static json_t *
run_progress(struct brun *r)
{
	double		el = (double)(now_usec() - r->start_usec) / 1e6;
	struct stat	st;

	/* the writer's progress: what it has written so far */
	if (r->step == RUN_DUMP && r->fd != -1 && fstat(r->fd, &st) == 0)
		r->bytes = (uint64_t)st.st_size;

	return (json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:f}", "run", r->id,
	    "op", r->op_id, "backup", r->b->conf->name, "step",
	    step_names[r->step], "bytes", (json_int_t)r->bytes,
	    "elapsed_seconds", el, "rate_bytes_per_second", el > 0 ?
	    (double)r->bytes / el : 0.0));
}

static void
run_notify(struct brun *r)
{
	rpc_followers_notify(&r->followers, "backup.progress",
	    run_progress(r));
}

/* The op's listener: every step the journal records reaches --follow. */
static void
run_op_step(struct op *op, void *arg)
{
	if (op_state(op) == OP_RUNNING)
		run_notify(arg);
}

void
backup_run_tick(evutil_socket_t fd, short what, void *arg)
{
	struct brun	*r = arg;
	struct timeval	 tv = { 1, 0 };

	(void)fd;
	(void)what;
	run_notify(r);
	evtimer_add(r->timer, &tv);
}

static void	run_dump_stop(struct brun *);

static void
run_free(struct brun *r)
{
	if (r->b->verify != NULL && r->b->verify->arg == r)
		backup_verify_abort(r->b->verify, "the run ended");
	rpc_followers_end(&r->followers, NULL, NULL);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->lock_retry != NULL)
		event_free(r->lock_retry);
	if (r->sess != NULL)
		pg_cancel(r->sess);
	if (r->child != NULL)
		child_abandon(r->child);
	run_dump_stop(r);
	if (r->s3 != NULL)
		s3_cancel(r->s3);
	if (r->fd != -1)
		close(r->fd);
	db_passfile_remove(&r->passfile);
	json_decref(r->manifest);
	json_decref(r->pruned);
	free(r->verify_error);
	free(r->partial);
	free(r->final);
	free(r->error);
	free(r);
}

static void
run_fail(struct brun *r, const char *fmt, ...)
{
	va_list	ap;

	if (r->error == NULL) {
		va_start(ap, fmt);
		xvasprintf(&r->error, fmt, ap);
		va_end(ap);
	}
	backup_run_finish(r, 0, 0);
}

/* Ends the run: no partial file stays, the job and followers learn. */
void
backup_run_finish(struct brun *r, int ok, int skipped)
{
	struct backup	*b = r->b;
	json_t		*fin;
	double		 dur = (double)(now_usec() - r->start_usec) / 1e6;

	if (r->fd != -1) {
		close(r->fd);
		r->fd = -1;
	}
	run_dump_stop(r);
	if (r->partial != NULL)
		unlink(r->partial);
	db_passfile_remove(&r->passfile);
	if (r->op != NULL) {
		/*
		 * A dump with its manifest is a backup, whatever came after;
		 * before that, nothing of the run is left: rolled back.
		 */
		if (r->interrupted && r->manifest != NULL)
			op_finish(r->op, OP_OK, NULL);
		else if (r->interrupted)
			op_finish(r->op, OP_ROLLED_BACK, "interrupted while %s: "
			    "%s; the partial dump was removed",
			    step_names[r->step], r->error);
		else if (skipped)
			op_finish(r->op, OP_ROLLED_BACK, "skipped: %s",
			    r->error);
		else if (ok)
			op_finish(r->op, OP_OK, NULL);
		else
			op_finish(r->op, OP_FAILED, "%s", r->error);
		r->op = NULL;
	}
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
		/* written; the job says so, and what the verification said */
		if (r->job != NULL && r->verify_result == 0)
			job_finished(r->job, 0, "%s, %llu bytes in %.1fs; "
			    "verification FAILED: %s", r->id, (unsigned long
			    long)r->bytes, dur, r->verify_error);
		else if (r->job != NULL && r->verify_result == -1)
			job_finished(r->job, 0, "%s, %llu bytes in %.1fs; "
			    "verification could not run: %s", r->id,
			    (unsigned long long)r->bytes, dur, r->verify_error);
		else if (r->job != NULL)
			job_finished(r->job, 1, "%s, %llu bytes in %.1fs%s",
			    r->id, (unsigned long long)r->bytes, dur,
			    r->verify_result > 0 ? ", verified" : "");
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
	/* a scheduled run that failed is tried again; a success ends that */
	if (!r->interrupted && !skipped && (r->scheduled || ok))
		backup_retry_plan(b, !ok);
	fin = run_progress(r);
	json_object_set_new(fin, "result", json_string(r->interrupted ?
	    "interrupted" : skipped ? "skipped" : ok ? "ok" : "failed"));
	if (r->error != NULL)
		json_object_set_new(fin, "error", json_string(r->error));
	/* the backup is written; was it proven to restore? */
	if (r->verify_result != -2) {
		json_object_set_new(fin, "verification", json_string(
		    r->verify_result > 0 ? "ok" : r->verify_result == 0 ?
		    "failed" : "unavailable"));
		if (r->verify_error != NULL)
			json_object_set_new(fin, "verify_error",
			    json_string(r->verify_error));
	}
	if (r->pruned != NULL)
		json_object_set_new(fin, "pruned", json_incref(r->pruned));
	rpc_followers_notify(&r->followers, "backup.finished", fin);
	b->run = NULL;
	run_free(r);
}

void
backup_run_pruned(struct brun *r)
{
	json_t	*res = NULL;
	char	*msg = NULL;

	if (run_step(r, RUN_PRUNE) != 0)
		return;
	if (backup_prune(r->b->opsd, r->b->conf->name, 0, &res, &msg) != 0) {
		backup_log(r->b, LOG_WARNING, "backup.prune", r->id, "pruning "
		    "%s: %s", r->b->conf->name, msg);
		free(msg);
	}
	/* what went: in the run's result, for --follow and the event */
	if (res != NULL && json_array_size(json_object_get(res,
	    "removed")) > 0)
		r->pruned = json_incref(json_object_get(res, "removed"));
	json_decref(res);
	backup_run_finish(r, 1, 0);
}

static void
run_after_verify(struct brun *r)
{
	if (r->b->conf->upload != NULL) {
		if (run_step(r, RUN_UPLOAD) != 0)
			return;
		backup_run_upload(r);
	} else
		backup_run_pruned(r);
}

static void
run_verified(struct verify *v, int ok, void *arg)
{
	struct brun	*r = arg;

	/* reported on its own too; the dump is good, the run says both */
	r->verify_result = ok;
	free(r->verify_error);
	r->verify_error = v->error != NULL ? xstrdup(v->error) : NULL;
	run_after_verify(r);
}

static void
run_synced(struct child *c, const struct child_result *res, void *arg)
{
	struct brun	*r = arg;
	struct backup	*b = r->b;
	char		 name[192], *final_name, s_at[32], e_at[32];
	const char	*hex = r->sha256;
	int		 e;

	(void)c;
	r->child = NULL;
	if (!WIFEXITED(res->status) || WEXITSTATUS(res->status) != 0) {
		run_fail(r, "cannot sync %s to disk: %.*s", r->partial,
		    (int)strcspn(res->err, "\n"), res->err);
		return;
	}
	/* the rename and the manifest: after this the backup exists */
	if (run_step(r, RUN_RENAME) != 0)
		return;
	snprintf(name, sizeof name, "%s.dump", r->id);
	if (rename(r->partial, r->final) == -1) {
		run_fail(r, "cannot rename %s: %s", r->partial,
		    strerror(errno));
		return;
	}
	free(r->partial);
	r->partial = NULL;
	util_iso_time(r->start, s_at, sizeof s_at);
	util_iso_time(time(NULL), e_at, sizeof e_at);
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
	if ((e = backup_manifest_save(b, r->manifest)) != 0) {
		final_name = r->final;
		unlink(final_name);
		run_fail(r, "cannot write the manifest in %s: %s", b->conf->dir,
		    strerror(-e));
		return;
	}
	json_array_append(b->items, r->manifest);
	backup_items_sort(b);
	b->last_success = r->start;
	b->last_size = r->bytes;
	backup_event(b, &EVT_BACKUP_OK, r->id, NULL, 0, "backup %s written: "
	    "%llu bytes, sha256 %.12s", r->id, (unsigned long long)r->bytes,
	    hex);
	if (b->conf->verify == BACKUP_VERIFY_EACH) {
		if (run_step(r, RUN_VERIFY) != 0)
			return;
		backup_verify_start(b, r->manifest, run_verified, r, NULL);
	} else
		run_after_verify(r);
}

/* The dump's children and FIFO go (killed if they still run). */
static void
run_dump_stop(struct brun *r)
{
	if (r->writer != NULL) {
		child_abandon(r->writer);
		r->writer = NULL;
	}
	if (r->fifo_wfd != -1) {
		close(r->fifo_wfd);
		r->fifo_wfd = -1;
	}
	if (r->fifo != NULL) {
		close(r->fifo_fd);
		r->fifo_fd = -1;
		unlink(r->fifo);
		free(r->fifo);
		r->fifo = NULL;
	}
	free(r->dump_why);
	r->dump_why = NULL;
}

/*
 * pg_dump and the writer have both ended: the dump is in the partial
 * file, or the run fails with the first cause (the writer's own error,
 * such as a full disk, over pg_dump's broken pipe that follows from it).
 */
static void
run_dump_end(struct brun *r)
{
	struct child_spec	 spec;
	int			 e = 0;

	if (r->dump_running || r->writer != NULL)
		return;
	if (r->error != NULL) {
		run_fail(r, "%s", r->error);
		return;
	}
	if (r->dump_why != NULL) {
		run_fail(r, "pg_dump %s", r->dump_why);
		return;
	}
	if (!r->write_ok) {
		run_fail(r, "the dump writer ended without a checksum");
		return;
	}
	run_dump_stop(r);
	if (close(r->fd) == -1) {
		r->fd = -1;
		run_fail(r, "closing %s: %s", r->partial, strerror(errno));
		return;
	}
	r->fd = -1;
	xasprintf(&r->final, "%s/%s.dump", r->b->conf->dir, r->id);
	if (run_step(r, RUN_SYNC) != 0)
		return;
	{
		/* fsync in a child: a large file can take seconds */
		const char *argv[] = { "sync", "--data", r->partial, NULL };

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = r->b->conf->timeout;
		r->child = child_spawn(r->b->opsd, &spec, run_synced, r, &e);
	}
	if (r->child == NULL)
		run_fail(r, "cannot run sync: %s", strerror(-e));
}

/* The last line of a child's stderr, without trailing blanks. */
static char *
err_line(const struct child_result *res)
{
	size_t	n = res->errlen, b;

	while (n > 0 && (res->err[n - 1] == '\n' || res->err[n - 1] == ' '))
		n--;
	for (b = n; b > 0 && res->err[b - 1] != '\n'; b--)
		;
	return (xstrndup(res->err + b, n - b));
}

static void
run_written(struct child *c, const struct child_result *res, void *arg)
{
	struct brun		*r = arg;
	char			 why[640];
	unsigned long long	 bytes;

	(void)c;
	r->writer = NULL;
	if (WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0 &&
	    res->outlen > 65 && sscanf(res->out, "%64[0-9a-f] %llu",
	    r->sha256, &bytes) == 2 && strlen(r->sha256) == 64) {
		r->write_ok = 1;
		r->bytes = bytes;
	} else if (WIFEXITED(res->status) && WEXITSTATUS(res->status) != 0) {
		/* its own error: "No space left on device writing ..." */
		if (r->error == NULL && (r->error = err_line(res))[0] == '\0') {
			free(r->error);
			r->error = NULL;
		}
		if (r->error == NULL) {
			child_failed(res, why, sizeof why);
			xasprintf(&r->error, "the dump writer %s", why);
		}
	} else if (!res->killed && r->error == NULL) {
		child_describe(res, why, sizeof why);
		xasprintf(&r->error, "the dump writer %s", why);
	}
	/* without its reader pg_dump would wait on the FIFO for ever */
	if (!r->write_ok && r->dump_running && r->child != NULL)
		child_kill(r->child);
	run_dump_end(r);
}

static void
run_dumped(struct child *c, const struct child_result *res, void *arg)
{
	struct brun		*r = arg;
	char			 why[640];

	(void)c;
	r->child = NULL;
	r->dump_running = 0;
	db_passfile_remove(&r->passfile);
	if (child_failed(res, why, sizeof why)) {
		r->dump_why = xstrdup(why);
		/* the writer may wait for pg_dump to open the FIFO at all */
		if (r->writer != NULL)
			child_kill(r->writer);
	}
	/* pg_dump's end is closed: the writer sees the end of the dump */
	if (r->fifo_wfd != -1) {
		close(r->fifo_wfd);
		r->fifo_wfd = -1;
	}
	run_dump_end(r);
}

static void
run_dump(struct brun *r)
{
	struct backup		*b = r->b;
	struct child_spec	 spec;
	char			*bin, *ci, *dbarg, *farg, *args, *tok;
	char			*env[2] = { NULL, NULL }, *perr = NULL;
	char			*rundir, *save = NULL;
	const char		**argv;
	unsigned int		 n = 0;
	int			 e = 0;

	if (run_step(r, RUN_DUMP) != 0)
		return;
	if ((e = state_mkdir(b->conf->dir, 0750)) != 0) {
		run_fail(r, "cannot create %s: %s", b->conf->dir, strerror(-e));
		return;
	}
	xasprintf(&r->partial, "%s/%s.dump.partial", b->conf->dir, r->id);
	r->fd = open(r->partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd == -1) {
		e = errno;
		free(r->partial);
		r->partial = NULL;
		run_fail(r, "cannot create %s/%s.dump.partial: %s",
		    b->conf->dir, r->id, strerror(e));
		return;
	}
	/*
	 * The FIFO: one per backup (one run at a time), where only opsd
	 * writes, so a name left by a kill -9 is replaced here. opsd holds
	 * a read end, so pg_dump's open never waits for a writer that failed
	 * to start, and a write end until pg_dump has exited, so the
	 * writer's open never waits for pg_dump: a small dump fits in the
	 * FIFO's buffer, and pg_dump can write it, close and exit before a
	 * slow writer (a loaded host, a sanitizer build) opens the FIFO,
	 * whose open would then wait for a writer for ever.
	 */
	xasprintf(&rundir, "%s/run", b->opsd->conf->state_dir);
	e = state_mkdir(rundir, 0700);
	xasprintf(&r->fifo, "%s/dump-%s.fifo", rundir, b->conf->name);
	free(rundir);
	r->fifo_fd = r->fifo_wfd = -1;
	unlink(r->fifo);
	if (e != 0 || mkfifo(r->fifo, 0600) == -1 || (r->fifo_fd =
	    open(r->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1 ||
	    (r->fifo_wfd = open(r->fifo, O_WRONLY | O_NONBLOCK |
	    O_CLOEXEC)) == -1) {
		e = e != 0 ? -e : errno;
		run_fail(r, "cannot make the FIFO %s: %s", r->fifo,
		    strerror(e));
		return;
	}
	{
		/* opsd itself, whatever its path: the binary now running */
		const char *wargv[] = { "/proc/self/exe", "--dump-writer",
		    r->fifo, r->partial, NULL };

#ifdef OPSD_FAULT_INJECTION
		/* tests: a writer that starts late, as on a loaded host */
		const char	*delay = getenv("OPSD_WRITER_DELAY_MS");
		char		*wenv[2] = { NULL, NULL };
#endif

		memset(&spec, 0, sizeof spec);
		spec.argv = wargv;
		spec.max_output = 256;
#ifdef OPSD_FAULT_INJECTION
		if (delay != NULL) {
			xasprintf(&wenv[0], "OPSD_WRITER_DELAY_MS=%s", delay);
			spec.env = (const char *const *)wenv;
		}
#endif
		/* no timeout of its own: it ends with pg_dump, or is killed */
		r->writer = child_spawn(r->b->opsd, &spec, run_written, r, &e);
#ifdef OPSD_FAULT_INJECTION
		free(wenv[0]);
#endif
		if (r->writer == NULL) {
			run_fail(r, "cannot run the dump writer: %s",
			    strerror(-e));
			return;
		}
	}
	r->passfile = backup_passfile_create(b, "dump", 0, &perr);
	if (perr != NULL) {
		run_fail(r, "%s", perr);
		free(perr);
		return;
	}
	bin = backup_pg_bin(b, "pg_dump");
	ci = db_conninfo(b->db, 0, NULL);
	xasprintf(&dbarg, "--dbname=%s", ci);
	xasprintf(&farg, "--file=%s", r->fifo);
	args = xstrdup(b->conf->pg_dump_args);
	argv = xcalloc(strlen(args) + 8, sizeof *argv);
	argv[n++] = bin;
	for (tok = strtok_r(args, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save))
		argv[n++] = tok;
	argv[n++] = "--format=custom";	/* what verify and restore read */
	argv[n++] = "--no-password";
	/*
	 * pg_dump's own fsync of --file is meaningless on the FIFO (fsync
	 * there is EINVAL, and pg_dump exits 1 if it gets that far); the
	 * dump writer's file is synced by opsd (the syncing step).
	 */
	argv[n++] = "--no-sync";
	argv[n++] = farg;
	argv[n++] = dbarg;
	argv[n] = NULL;
	memset(&spec, 0, sizeof spec);
	if (r->passfile != NULL) {
		xasprintf(&env[0], "PGPASSFILE=%s", r->passfile);
		spec.env = (const char *const *)env;
	}
	spec.argv = argv;
	spec.timeout_ms = b->conf->timeout;
	r->child = child_spawn(r->b->opsd, &spec, run_dumped, r, &e);
	free(env[0]);
	free(argv);
	free(args);
	free(bin);
	free(ci);
	free(dbarg);
	free(farg);
	if (r->child == NULL) {
		run_fail(r, "cannot run pg_dump: %s", strerror(-e));
		return;
	}
	r->dump_running = 1;
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
		backup_run_finish(r, 0, 1);
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
		if (run_step(r, RUN_LOCK) != 0)
			return;
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

struct brun *
backup_run_start(struct backup *b, struct job *job,
    struct rpc_pending *follower, char **err, int *code)
{
	struct brun	*r;
	struct tm	 tm;
	time_t		 t = time(NULL);
	struct timeval	 tv = { 0, 0 };
	char		 ts[32];
	int		 e;

	*err = NULL;
	r = xcalloc(1, sizeof *r);
	r->b = b;
	r->fd = -1;
	r->fifo_fd = r->fifo_wfd = -1;
	r->job = job;
	r->verify_result = -2;
	r->start = (int64_t)t;
	r->start_usec = now_usec();
	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(r->id, sizeof r->id, "%s-%s", b->conf->name, ts);
	if ((e = op_begin(b->opsd, &backup_run_kind, b->conf->name, &r->op,
	    err)) != 0) {
		*code = e;
		free(r);
		return (NULL);
	}
	snprintf(r->op_id, sizeof r->op_id, "%s", op_id(r->op));
	/* the first step: nothing has happened yet if it cannot be saved */
	if ((e = op_set(r->op, "run", r->id)) != 0 ||
	    (e = op_step(r->op, RUN_CONNECT)) != 0) {
		xasprintf(err, "cannot record backup run %s in the op journal: "
		    "%s", r->id, strerror(-e));
		op_finish(r->op, OP_FAILED, "%s", *err);
		*code = e;
		free(r);
		return (NULL);
	}
	r->step = RUN_CONNECT;
	op_listen(r->op, run_op_step, r);
	if (follower != NULL)
		rpc_followers_add(&r->followers, follower);
	b->run = r;
	/*
	 * The first tick at once, from the loop: a follower hears the
	 * connecting step after the reply that names the run; the later
	 * steps come from the op's listener as the journal records them.
	 */
	r->timer = evtimer_new(b->opsd->base, backup_run_tick, r);
	evtimer_add(r->timer, &tv);
	if (b->pg_dump_version == NULL && b->version_child == NULL) {
		char *bin = backup_pg_bin(b, "pg_dump");
		const char *argv[] = { bin, "--version", NULL };
		struct child_spec spec;

		memset(&spec, 0, sizeof spec);
		spec.argv = argv;
		spec.timeout_ms = 10000;
		spec.max_output = 256;
		b->version_child = child_spawn(b->opsd, &spec,
		    pg_dump_version_cb, b, &e);
		free(bin);
	}
	backup_log(b, LOG_INFO, "backup.start", r->id, "backup %s started "
	    "(%s, op %s)", b->conf->name, r->id, r->op_id);
	r->sess = backup_session_open(b, 0, NULL, 30000, run_connected, r);
	return (r);
}

int
backup_rpc_run(struct opsd *o, const char *name, struct rpc_pending *follower,
    char **run_id, char **msg)
{
	struct backup	*b;
	struct brun	*r;
	char		*err = NULL;
	int		 e = 0;

	if ((b = backup_find(o, name)) == NULL) {
		xasprintf(msg, "no backup named '%s' (backup list shows them)",
		    name);
		return (-ENOENT);
	}
	if (b->run != NULL) {
		xasprintf(msg, "backup %s is already running (run %s)", name,
		    b->run->id);
		return (-EBUSY);
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
				return (-EBUSY);
			}
		}
	}
	if ((r = backup_run_start(b, NULL, follower, &err, &e)) == NULL) {
		/* -EBUSY: a run, or the roll-back of one, is unfinished */
		if (e == -EBUSY)
			xasprintf(msg, "backup %s is already running: %s", name,
			    err);
		else
			xasprintf(msg, "cannot start backup %s: %s", name, err);
		free(err);
		return (e == -EBUSY ? -EBUSY : -EIO);
	}
	/* the job learns once the run is under way (job_started) */
	if (b->job != NULL) {
		job_started(b->job);
		r->job = b->job;
	}
	*run_id = xstrdup(r->id);
	return (0);
}
