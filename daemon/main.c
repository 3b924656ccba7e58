/*
 * opsd: start-up, signals, systemd notification, the watchdog and the loop
 * statistics, reload and shutdown. Everything else hangs off the event
 * loop created here; nothing in the daemon blocks it.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "backup.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "evt.h"
#include "opsd-proto.h"
#include "state.h"
#include "subsys.h"
#include "util.h"

#define TICK_USEC	(1000 * 1000)
#define RUN_STATE	"opsd.json"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: opsd [-c FILE] [--check-config] [--log-target=journal|stderr|auto]\n"
"            [--list-events] [--version] [--help]\n"
"\n"
"The opsd production-operations daemon.\n"
"\n"
"  -c, --config FILE     configuration file (default %s)\n"
"  -n, --check-config    check the configuration, print 'FILE: ok' or its\n"
"                        errors as FILE:LINE: message, and exit\n"
"      --log-target=T    journal, stderr (JSON lines) or auto (default:\n"
"                        journal when present, else stderr)\n"
"      --list-events     print every event type with a MESSAGE_ID (name\n"
"                        and id, one a line: docs/opsd.catalog has them)\n"
"  -V, --version         print the version and exit\n"
"  -h, --help            print this help and exit\n"
"\n"
"Signals: SIGHUP reloads the configuration, SIGTERM and SIGINT stop.\n"
"Control it with opsd-cli(1); see opsd(8) and opsd.conf(5).\n",
	    OPSD_DEFAULT_CONFIG);
}

static void
write_run_state(struct opsd *o, int clean)
{
	json_t	*st;
	int	 r;

	st = json_pack("{s:s, s:I, s:I, s:b}", "version", OPSD_VERSION,
	    "pid", (json_int_t)getpid(), "started", (json_int_t)o->start_time,
	    "clean_shutdown", clean);
	if ((r = state_write_json(o->conf->state_dir, RUN_STATE, st)) != 0)
		log_warn("state.write", "cannot write %s/%s: %s",
		    o->conf->state_dir, RUN_STATE, strerror(-r));
	json_decref(st);
}

static void
check_previous_run(struct opsd *o)
{
	struct evt	*ev;
	json_t		*st;
	int		 err;

	if ((st = state_read_json(o->conf->state_dir, RUN_STATE, &err)) ==
	    NULL) {
		if (err != -ENOENT)
			log_warn("state.read", "cannot read %s/%s: %s",
			    o->conf->state_dir, RUN_STATE, strerror(-err));
		return;
	}
	if (!json_is_true(json_object_get(st, "clean_shutdown"))) {
		ev = evt_new(&EVT_UNCLEAN_SHUTDOWN);
		evt_add(ev, "prev_pid", "%lld", (long long)json_integer_value(
		    json_object_get(st, "pid")));
		evt_emit(ev, "the previous opsd (pid %lld) did not stop "
		    "cleanly: killed, crashed or the host lost power",
		    (long long)json_integer_value(json_object_get(st, "pid")));
	}
	json_decref(st);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct opsd		*o = arg;
	struct config_errors	 errs = { NULL, 0 };

	(void)what;
	switch (sig) {
	case SIGHUP:
		if (o->stopping)
			return;
		log_info("opsd.reload", "SIGHUP: reloading %s", o->conf_path);
		opsd_reload(o, &errs);
		config_errors_clear(&errs);
		break;
	case SIGTERM:
	case SIGINT:
		opsd_shutdown(o, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

static uint64_t
cpu_usec(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	    (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec));
}

/*
 * The next tick on a whole second of the monotonic clock, less the timer
 * slack: the probes' grid is aligned on it too (probe-sched.c), so an idle opsd
 * wakes once for both, not twice.
 */
static void
tick_arm(struct opsd *o, uint64_t now)
{
	struct timeval	tv;
	uint64_t	wait;

	o->loop.tick_due_usec = now - now % TICK_USEC + TICK_USEC -
	    OPSD_TIMER_SLACK_USEC;
	if (o->loop.tick_due_usec <= now)
		o->loop.tick_due_usec += TICK_USEC;
	wait = o->loop.tick_due_usec - now;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	event_add(o->ev_tick, &tv);
}

/*
 * Once a second: how late the timer fired is the loop's lag (what any
 * event waits behind work on the loop); CPU time over wall time is its
 * load. The status line follows the connection count.
 */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opsd	*o = arg;
	uint64_t	 now = now_usec(), cpu = cpu_usec(), elapsed;

	(void)fd;
	(void)what;
	elapsed = now - o->loop.tick_prev_usec;
	o->loop.lag_usec = now > o->loop.tick_due_usec ? now -
	    o->loop.tick_due_usec : 0;
	tick_arm(o, now);
	if (o->loop.lag_usec > o->loop.lag_max_usec)
		o->loop.lag_max_usec = o->loop.lag_usec;
	if (elapsed > 0)
		o->loop.cpu_percent = 100.0 * (double)(cpu -
		    o->loop.cpu_prev_usec) / (double)elapsed;
	o->loop.tick_prev_usec = now;
	o->loop.cpu_prev_usec = cpu;
	if (++o->loop.ticks % 60 == 0) {
		o->loop.lag_max_prev = o->loop.lag_max_usec;
		o->loop.lag_max_usec = 0;
	}
	if (o->loop.ticks % 10 == 0)
		opsd_notify_status(o);
}

static void
raise_nofile(void)
{
	struct rlimit	rl;

	/* 1,000 clients need more than the usual soft limit of 1024 fds */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The core's key event types, then each subsystem's, from the registry. */
static int
list_events(void)
{
	const struct evt_type *const	*t;
	size_t				 i;

	for (t = evt_core_types; *t != NULL; t++)
		printf("%s %s\n", (*t)->name, (*t)->message_id);
	for (i = 0; i < SUBSYS_N; i++)
		for (t = subsys_table[i]->events; t != NULL && *t != NULL; t++)
			printf("%s %s\n", (*t)->name, (*t)->message_id);
	return (0);
}

static int
check_config(const char *path)
{
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*conf;
	unsigned int		 i;

	if ((conf = config_load(path, &errs)) == NULL) {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.v[i]);
		config_errors_clear(&errs);
		return (1);
	}
	printf("%s: ok\n", path);
	config_free(conf);
	return (0);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "log-target", required_argument, NULL, 'L' },
		{ "list-events", no_argument, NULL, 'E' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	struct config_errors	 errs = { NULL, 0 };
	struct opsd		 o;
	struct evt		*ev;
	struct timeval		 tv;
	enum log_target		 target = LOG_TARGET_AUTO;
	const char		*path = OPSD_DEFAULT_CONFIG;
	unsigned int		 i;
	int			 ch, check = 0, r;

	/* not for people: the backup run's own child (backup-writer.c) */
	if (argc > 1 && strcmp(argv[1], "--dump-writer") == 0)
		return (backup_dump_writer(argc - 1, argv + 1));
	/*
	 * Blocks of 128 KiB and more (the output chains of big replies to
	 * clients that read slowly) come from mmap and go back to the system
	 * once freed. glibc raises this threshold after the first such free,
	 * and from then on they come from the heap, which keeps what is
	 * freed: with clients holding up to output_buffer_total that come and
	 * go, RSS crept up by 3-4 MiB for minutes after the first ones left.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	while ((ch = getopt_long(argc, argv, "c:nVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'L':
			if (strcmp(optarg, "journal") == 0)
				target = LOG_TARGET_JOURNAL;
			else if (strcmp(optarg, "stderr") == 0)
				target = LOG_TARGET_STDERR;
			else if (strcmp(optarg, "auto") == 0)
				target = LOG_TARGET_AUTO;
			else {
				fprintf(stderr, "opsd: --log-target must be "
				    "journal, stderr or auto, not '%s'\n",
				    optarg);
				return (2);
			}
			break;
		case 'E':
			return (list_events());
		case 'V':
			printf("opsd %s (protocol %d)\n", OPSD_VERSION,
			    OPSD_PROTO_VERSION);
			return (0);
		case 'h':
			usage(stdout);
			return (0);
		default:
			usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "opsd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return (2);
	}
	if (check)
		return (check_config(path));

	memset(&o, 0, sizeof o);
	log_init(target);
	/* absolute, so the path in status and reloads means one file */
	o.conf_path = realpath(path, NULL);
	if (o.conf_path == NULL)
		o.conf_path = xstrdup(path);
	if ((o.conf = config_load(path, &errs)) == NULL) {
		for (i = 0; i < errs.n; i++)
			log_err("config.error", "%s", errs.v[i]);
		/* on a terminal, also plainly */
		if (log_get_target() == LOG_TARGET_JOURNAL && isatty(2))
			for (i = 0; i < errs.n; i++)
				fprintf(stderr, "%s\n", errs.v[i]);
		config_errors_clear(&errs);
		free(o.conf_path);
		return (1);
	}
	log_set_level(o.conf->log_level);
	o.start_usec = now_usec();
	o.start_time = time(NULL);

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if ((r = state_mkdir(o.conf->state_dir, 0750)) != 0) {
		log_err("state.dir", "cannot create state_dir %s: %s",
		    o.conf->state_dir, strerror(-r));
		config_free(o.conf);
		free(o.conf_path);
		return (1);
	}
	/*
	 * opsd's timers want milliseconds, not the kernel's default 50 us
	 * timer slack: letting wakeups coalesce over 2 ms cuts the loop's
	 * wakeups by 40% with 1,000 probes (bench/probes).
	 */
	prctl(PR_SET_TIMERSLACK, OPSD_TIMER_SLACK_USEC * 1000UL, 0UL, 0UL, 0UL);
	if (opsd_init(&o) != 0)
		fatalx("cannot set up the event loop, child processes or "
		    "libcurl");
	if (control_init(&o) != 0) {
		opsd_free(&o);
		config_free(o.conf);
		free(o.conf_path);
		return (1);
	}
	/* only now: a second opsd that failed to bind must not say this */
	check_previous_run(&o);
	opsd_start(&o);

	for (i = 0; i < nitems(sigs); i++) {
		o.ev_signals[i] = evsignal_new(o.base, sigs[i], signal_cb, &o);
		evsignal_add(o.ev_signals[i], NULL);
	}
	if (sd_watchdog_enabled(0, &o.watchdog_usec) > 0) {
		o.ev_watchdog = event_new(o.base, -1, EV_PERSIST, watchdog_cb,
		    &o);
		tv.tv_sec = (time_t)(o.watchdog_usec / 2 / 1000000);
		tv.tv_usec = (suseconds_t)(o.watchdog_usec / 2 % 1000000);
		event_add(o.ev_watchdog, &tv);
	} else
		o.watchdog_usec = 0;
	o.ev_tick = evtimer_new(o.base, tick_cb, &o);
	o.loop.tick_prev_usec = now_usec();
	o.loop.cpu_prev_usec = cpu_usec();
	tick_arm(&o, o.loop.tick_prev_usec);

	write_run_state(&o, 0);
	ev = evt_new(&EVT_STARTED);
	evt_add(ev, "version", "%s", OPSD_VERSION);
	evt_add(ev, "config", "%s", o.conf_path);
	evt_add(ev, "socket", "%s", control_path(&o));
	evt_emit(ev, "opsd %s started, listening on %s%s", OPSD_VERSION,
	    control_path(&o), control_activated(&o) ? " (socket activation)" :
	    "");
	/* The socket accepts from here on: only now are we ready. */
	sd_notify(0, "READY=1");
	opsd_notify_status(&o);

	event_base_dispatch(o.base);

	control_free(&o);
	opsd_free(&o);
	write_run_state(&o, 1);
	ev = evt_new(&EVT_STOPPED);
	evt_add(ev, "uptime_seconds", "%llu", (unsigned long long)
	    ((now_usec() - o.start_usec) / 1000000));
	evt_emit(ev, "opsd stopped");

	config_free(o.conf);
	free(o.conf_path);
	return (0);
}
