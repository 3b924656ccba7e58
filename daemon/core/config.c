/*
 * opsd's configuration schema on top of the INI reader. A config is built
 * whole and checked whole; the caller swaps it in only when it is valid,
 * so a bad reload never leaves the daemon with half a configuration.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "ini.h"
#include "opsd-parse.h"
#include "opsd-proto.h"
#include "subsys.h"
#include "util.h"

#define MAX_CONFIG_SIZE	(4 * 1024 * 1024)

/* host:port, [v6]:port, or off */
static const char *
validate_listen(const char *value, char *buf, size_t len)
{
	const char	*colon = strrchr(value, ':');
	uint64_t	 port;

	if (strcmp(value, "off") == 0)
		return (NULL);
	if (colon == NULL || colon == value ||
	    parse_uint(colon + 1, 1, 65535, &port) != 0) {
		snprintf(buf, len, "'%s' is not host:port (e.g. "
		    "127.0.0.1:9187) or off", value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct opsd_config, f)
static const struct ini_key opsd_keys[] = {	/* sorted */
	{ .name = "admin_group", .kind = INI_GROUP, .off = O(admin_group),
	  .off2 = O(admin_gid) },
	{ .name = "client_buffer", .kind = INI_SIZE, .off = O(client_buffer),
	  .dflt = "1M", .min = 64 * 1024, .max = 64 * 1024 * 1024 },
	{ .name = "idle_timeout", .kind = INI_DURATION, .off = O(idle_timeout),
	  .dflt = "5m", .max = 7 * 86400 * 1000ULL },
	{ .name = "log_level", .kind = INI_LOGLEVEL, .off = O(log_level),
	  .dflt = "info" },
	{ .name = "max_connections", .kind = INI_UINT,
	  .off = O(max_connections), .dflt = "4096", .min = 1, .max = 1000000 },
	{ .name = "metrics_auth_file", .kind = INI_PATH,
	  .off = O(metrics_auth_file) },
	{ .name = "metrics_listen", .kind = INI_STRING,
	  .off = O(metrics_listen), .dflt = "127.0.0.1:9187",
	  .validate = validate_listen },
	{ .name = "metrics_max_connections", .kind = INI_UINT,
	  .off = O(metrics_max_connections), .dflt = "64", .min = 1,
	  .max = 10000 },
	{ .name = "metrics_tls_cert", .kind = INI_PATH,
	  .off = O(metrics_tls_cert) },
	{ .name = "metrics_tls_key", .kind = INI_PATH,
	  .off = O(metrics_tls_key) },
	{ .name = "output_buffer_total", .kind = INI_SIZE,
	  .off = O(output_buffer_total), .dflt = "64M", .min = 1024 * 1024,
	  .max = 1ULL << 40 },
	{ .name = "shutdown_timeout", .kind = INI_DURATION,
	  .off = O(shutdown_timeout), .dflt = "4s", .min = 100,
	  .max = 60 * 1000 },
	{ .name = "socket", .kind = INI_PATH, .off = O(socket),
	  .dflt = OPSD_DEFAULT_SOCKET },
	{ .name = "socket_group", .kind = INI_GROUP, .off = O(socket_group),
	  .off2 = O(socket_gid) },
	{ .name = "socket_mode", .kind = INI_MODE, .off = O(socket_mode),
	  .dflt = "0660" },
	{ .name = "state_dir", .kind = INI_PATH, .off = O(state_dir),
	  .dflt = "/var/lib/opsd" },
	{ .name = "status_cache", .kind = INI_DURATION,
	  .off = O(status_cache), .dflt = "1s", .max = 60 * 1000 },
	{ .name = "status_page", .kind = INI_BOOL, .off = O(status_page),
	  .dflt = "yes" },
};
#undef O

static void *
opsd_open(void *ctx, const char *name)
{
	(void)name;
	return (ctx);
}

/* the key's own line when the file set it, else the section's */
#define KEYLINE(k)	(keylines != NULL && ini_keyline(&opsd_section, \
			    keylines, (k)) ? ini_keyline(&opsd_section, \
			    keylines, (k)) : line)

static const struct ini_section opsd_section;

static void
opsd_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct opsd_config	*conf = obj;
	struct sockaddr_un	*sun;

	(void)ctx;
	if (strlen(conf->socket) >= sizeof sun->sun_path)
		ini_error(errs, file, KEYLINE("socket"), "socket: path is longer than "
		    "%zu bytes", sizeof sun->sun_path - 1);
	if (conf->socket_mode & 0111) {
		char	mode[16];
		const char *w = keylines != NULL ? ini_written(&opsd_section,
		    keylines, "socket_mode") : NULL;

		if (w == NULL)
			snprintf(mode, sizeof mode, "%04o",
			    (unsigned int)conf->socket_mode);
		ini_error(errs, file, KEYLINE("socket_mode"), "socket_mode: %s "
		    "sets execute bits; use read/write bits only, e.g. 0660",
		    w != NULL ? w : mode);
	}
}

static const struct ini_section opsd_section = {
	"opsd", 0, opsd_keys, nitems(opsd_keys), opsd_open, opsd_check, NULL,
	NULL
};

/* --- the per-type lists ------------------------------------------------- */

static struct config_list *
config_list(const struct opsd_config *conf, const struct ini_section *sec)
{
	unsigned int	i;

	for (i = 0; i < conf->nlists; i++)
		if (conf->lists[i].sec == sec)
			return (&conf->lists[i]);
	return (NULL);
}

void
config_add(struct opsd_config *conf, const struct ini_section *sec,
    void *obj)
{
	struct config_list	*l;

	if ((l = config_list(conf, sec)) == NULL)
		fatalx("config: section [%s] is not registered", sec->name);
	l->v = xreallocarray(l->v, l->n + 1, sizeof *l->v);
	l->v[l->n++] = obj;
}

unsigned int
config_count(const struct opsd_config *conf, const struct ini_section *sec)
{
	const struct config_list	*l = config_list(conf, sec);

	return (l != NULL ? l->n : 0);
}

void *
config_at(const struct opsd_config *conf, const struct ini_section *sec,
    unsigned int i)
{
	const struct config_list	*l = config_list(conf, sec);

	return (l != NULL && i < l->n ? l->v[i] : NULL);
}

void *
config_find(const struct opsd_config *conf, const struct ini_section *sec,
    const char *name)
{
	const struct config_list	*l = config_list(conf, sec);
	unsigned int			 i;

	for (i = 0; l != NULL && i < l->n; i++)
		if (strcmp(((struct config_obj *)l->v[i])->name, name) == 0)
			return (l->v[i]);
	return (NULL);
}

static int
section_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct ini_section *)a)->name,
	    ((const struct ini_section *)b)->name));
}

/* One empty list per section type of the registered subsystems. */
static void
config_lists_init(struct opsd_config *conf)
{
	const struct ini_section *const	*sp;
	size_t				 i;

	for (i = 0; i < SUBSYS_N; i++) {
		for (sp = subsys_table[i]->sections; sp != NULL && *sp != NULL;
		    sp++) {
			conf->lists = xreallocarray(conf->lists,
			    conf->nlists + 1, sizeof *conf->lists);
			memset(&conf->lists[conf->nlists], 0,
			    sizeof *conf->lists);
			conf->lists[conf->nlists++].sec = *sp;
		}
	}
}

/* The N of "FILE:N: message"; errors about the whole file sort last. */
static long
error_line(const char *err, const char *file)
{
	size_t	 n = strlen(file);
	char	*end;
	long	 line;

	if (strncmp(err, file, n) != 0 || err[n] != ':')
		return (LONG_MAX);
	line = strtol(err + n + 1, &end, 10);
	return (end != err + n + 1 && *end == ':' ? line : LONG_MAX);
}

/*
 * Errors from errs->v[from] on in line order: the reader reports a
 * section's missing keys when the section ends and the cross-section
 * checks come last, but a person fixes a file top to bottom. Stable, so
 * the errors of one line keep their order (at most INI_MAX_ERRORS).
 */
static void
config_errors_sort(struct config_errors *errs, unsigned int from,
    const char *file)
{
	unsigned int	 i, j;
	char		*e;

	for (i = from + 1; i < errs->n; i++) {
		e = errs->v[i];
		for (j = i; j > from && error_line(errs->v[j - 1], file) >
		    error_line(e, file); j--)
			errs->v[j] = errs->v[j - 1];
		errs->v[j] = e;
	}
}

struct opsd_config *
config_parse(const char *name, const char *buf, size_t len,
    struct config_errors *errs)
{
	struct opsd_config	*conf;
	struct ini_section	*sections;
	unsigned int		 i, before = errs->n;
	int			 r;

	conf = xcalloc(1, sizeof *conf);
	conf->path = xstrdup(name);
	if (ini_defaults(&opsd_section, conf) != 0)
		fatalx("config: a built-in default does not parse");
	config_lists_init(conf);
	sections = xcalloc(conf->nlists + 1, sizeof *sections);
	sections[0] = opsd_section;
	for (i = 0; i < conf->nlists; i++)
		sections[i + 1] = *conf->lists[i].sec;
	/* [opsd] first, then by name: how "known sections" lists them */
	qsort(sections + 1, conf->nlists, sizeof *sections, section_cmp);
	r = ini_parse(name, buf, len, sections, conf->nlists + 1, conf, errs);
	free(sections);
	if (r != 0) {
		config_errors_sort(errs, before, name);
		config_free(conf);
		return (NULL);
	}
	/* [opsd] may be absent: check the defaults the same way */
	opsd_check(conf, conf, name, 0, NULL, errs);
	for (i = 0; i < SUBSYS_N; i++)
		if (subsys_table[i]->check_refs != NULL)
			subsys_table[i]->check_refs(conf, errs);
	if (conf->metrics_listen != NULL &&
	    strcmp(conf->metrics_listen, "off") == 0) {
		free(conf->metrics_listen);
		conf->metrics_listen = NULL;
	}
	if (errs->n > 0) {
		config_errors_sort(errs, before, name);
		config_free(conf);
		return (NULL);
	}
	return (conf);
}

struct opsd_config *
config_load(const char *path, struct config_errors *errs)
{
	struct opsd_config	*conf;
	struct stat		 st;
	char			*buf;
	ssize_t			 n = 0;
	size_t			 off = 0;
	int			 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		ini_error(errs, path, 0, "cannot open: %s%s", strerror(errno),
		    errno == ENOENT ? " (start from opsd.conf.example, or "
		    "pass another file with -c)" : "");
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > MAX_CONFIG_SIZE) {
		ini_error(errs, path, 0, "not a regular file of at most %d "
		    "bytes", MAX_CONFIG_SIZE);
		close(fd);
		return (NULL);
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	if (off != (size_t)st.st_size) {
		ini_error(errs, path, 0, "read failed: %s",
		    n == -1 ? strerror(errno) : "file changed while reading");
		free(buf);
		return (NULL);
	}
	conf = config_parse(path, buf, off, errs);
	free(buf);
	return (conf);
}

void
config_free(struct opsd_config *conf)
{
	unsigned int	i, j;

	if (conf == NULL)
		return;
	ini_free(&opsd_section, conf);
	for (i = 0; i < conf->nlists; i++) {
		for (j = 0; j < conf->lists[i].n; j++)
			conf->lists[i].sec->free(conf->lists[i].v[j]);
		free(conf->lists[i].v);
	}
	free(conf->lists);
	free(conf->path);
	free(conf);
}

void
config_errors_clear(struct config_errors *errs)
{
	unsigned int	i;

	for (i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

json_t *
config_counts(const struct opsd_config *conf)
{
	json_t		*counts = json_object();
	unsigned int	 i;

	for (i = 0; i < conf->nlists; i++)
		if (conf->lists[i].sec->plural != NULL)
			json_object_set_new(counts, conf->lists[i].sec->plural,
			    json_integer(conf->lists[i].n));
	return (counts);
}
