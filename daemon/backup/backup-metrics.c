/*
 * The backup room's /metrics collector: freshness, size, duration and
 * result counters per backup.
 */
#include <event2/buffer.h>

#include "backup-int.h"
#include "daemon.h"
#include "util.h"

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
		  "restore; none for a backup with verify = never." },
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
			b = BACKUPS(o)->v[i];
			/* backup names are [A-Za-z0-9._-]: no escaping */
			switch (k) {
			case 0:
				evbuffer_add_printf(buf, "%s{backup=\"%s\"} "
				    "%lld\n", m[k].name, b->conf->name,
				    (long long)b->last_success);
				break;
			case 1:
				/*
				 * Not verified by design: no series, so that
				 * a rule on the verified time leaves it out.
				 */
				if (b->conf->verify == BACKUP_VERIFY_NEVER)
					break;
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
