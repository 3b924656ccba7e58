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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "ini.h"
#include "opsd-proto.h"
#include "util.h"

#define MAX_CONFIG_SIZE	(4 * 1024 * 1024)

#define O(f)	offsetof(struct opsd_config, f)
static const struct ini_key opsd_keys[] = {	/* sorted */
	{ "admin_group", INI_GROUP, O(admin_group), O(admin_gid), NULL,
	    0, 0, 0 },
	{ "client_buffer", INI_SIZE, O(client_buffer), 0, "1M",
	    64 * 1024, 64 * 1024 * 1024, 0 },
	{ "idle_timeout", INI_DURATION, O(idle_timeout), 0, "5m",
	    0, 7 * 86400 * 1000ULL, 0 },
	{ "log_level", INI_LOGLEVEL, O(log_level), 0, "info", 0, 0, 0 },
	{ "max_connections", INI_UINT, O(max_connections), 0, "4096",
	    1, 1000000, 0 },
	{ "shutdown_timeout", INI_DURATION, O(shutdown_timeout), 0, "4s",
	    100, 60 * 1000, 0 },
	{ "socket", INI_PATH, O(socket), 0, OPSD_DEFAULT_SOCKET, 0, 0, 0 },
	{ "socket_group", INI_GROUP, O(socket_group), O(socket_gid), NULL,
	    0, 0, 0 },
	{ "socket_mode", INI_MODE, O(socket_mode), 0, "0660", 0, 0, 0 },
	{ "state_dir", INI_PATH, O(state_dir), 0, "/var/lib/opsd", 0, 0, 0 },
};
#undef O

static void *
opsd_open(void *ctx, const char *name)
{
	(void)name;
	return (ctx);
}

static void
opsd_check(void *ctx, void *obj, const char *file, int line,
    struct config_errors *errs)
{
	struct opsd_config	*conf = obj;
	struct sockaddr_un	*sun;

	(void)ctx;
	if (strlen(conf->socket) >= sizeof sun->sun_path)
		ini_error(errs, file, line, "socket: path is longer than "
		    "%zu bytes", sizeof sun->sun_path - 1);
	if (conf->socket_mode & 0111)
		ini_error(errs, file, line, "socket_mode: %04o sets execute "
		    "bits; use read/write bits only, e.g. 0660",
		    (unsigned int)conf->socket_mode);
}

static const struct ini_section sections[] = {
	{ "opsd", 0, opsd_keys, nitems(opsd_keys), opsd_open, opsd_check },
};

struct opsd_config *
config_parse(const char *name, const char *buf, size_t len,
    struct config_errors *errs)
{
	struct opsd_config	*conf;

	conf = xcalloc(1, sizeof *conf);
	conf->path = xstrdup(name);
	if (ini_defaults(&sections[0], conf) != 0)
		fatalx("config: a built-in default does not parse");
	if (ini_parse(name, buf, len, sections, nitems(sections), conf,
	    errs) != 0) {
		config_free(conf);
		return (NULL);
	}
	/* [opsd] may be absent: check the defaults the same way */
	opsd_check(conf, conf, name, 0, errs);
	if (errs->n > 0) {
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
	if (conf == NULL)
		return;
	ini_free(&sections[0], conf);
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
	(void)conf;
	/* Subsystems add their section types here as they arrive. */
	return (json_object());
}
