/*
 * The [deploy NAME] schema, the checks across its keys and across
 * sections, and the templates: commands, URLs and the upstream include
 * are written with {deploy}, {slot}, {version} and {port}, and every
 * other brace is left alone (nginx's configuration is full of them).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "config.h"
#include "deploy-int.h"
#include "ini.h"
#include "util.h"

static const char *const slot_names[] = { "blue", "green", NULL };

const char deploy_default_template[] =
    "# written by opsd for [deploy {deploy}]: slot {slot}, version "
    "{version}\n"
    "upstream {deploy} {\n"
    "    server 127.0.0.1:{port};\n"
    "}\n";

const char *
deploy_slot_name(int slot)
{
	return (slot == SLOT_GREEN ? "green" : "blue");
}

int
deploy_slot_parse(const char *s)
{
	if (s == NULL)
		return (-1);
	if (strcmp(s, "blue") == 0)
		return (SLOT_BLUE);
	if (strcmp(s, "green") == 0)
		return (SLOT_GREEN);
	return (-1);
}

int
deploy_other(int slot)
{
	return (slot == SLOT_BLUE ? SLOT_GREEN : SLOT_BLUE);
}

uint64_t
deploy_port(const struct deploy_conf *c, int slot)
{
	return (slot == SLOT_GREEN ? c->green_port : c->blue_port);
}

int
deploy_version_ok(const char *v)
{
	size_t	i;

	if (v == NULL || !isalnum((unsigned char)v[0]))
		return (0);
	for (i = 1; v[i] != '\0'; i++)
		if (i >= DEPLOY_VERSION_MAX || (!isalnum((unsigned char)v[i]) &&
		    v[i] != '.' && v[i] != '_' && v[i] != '+' && v[i] != '-'))
			return (0);
	return (1);
}

char *
deploy_expand(const char *tmpl, const struct deploy_vars *v)
{
	size_t		 cap = strlen(tmpl) + 64, len = 0, n;
	char		*out = xmalloc(cap), port[16];
	const char	*p, *rep;

	snprintf(port, sizeof port, "%llu", (unsigned long long)v->port);
	for (p = tmpl; *p != '\0'; ) {
		rep = NULL;
		n = 0;
		if (*p == '{') {
			if (strncmp(p, "{deploy}", 8) == 0)
				rep = v->deploy, n = 8;
			else if (strncmp(p, "{slot}", 6) == 0)
				rep = v->slot, n = 6;
			else if (strncmp(p, "{version}", 9) == 0)
				rep = v->version, n = 9;
			else if (strncmp(p, "{port}", 6) == 0)
				rep = port, n = 6;
		}
		if (rep == NULL) {
			rep = p;
			n = 1;
			p++;
		} else {
			p += n;
			n = strlen(rep);
		}
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			out = xreallocarray(out, cap, 1);
		}
		memcpy(out + len, rep, n);
		len += n;
	}
	out[len] = '\0';
	return (out);
}

/* --- validators ----------------------------------------------------------- */

static const char *
validate_version(const char *value, char *buf, size_t len)
{
	if (!deploy_version_ok(value)) {
		snprintf(buf, len, "'%s' is not a version opsd deploys (a "
		    "letter or digit, then letters, digits and . _ + -, at "
		    "most %d bytes)", value, DEPLOY_VERSION_MAX);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_url(const char *value, char *buf, size_t len)
{
	if (strncmp(value, "http://", 7) != 0 &&
	    strncmp(value, "https://", 8) != 0) {
		snprintf(buf, len, "'%s' must start with http:// or https://",
		    value);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_header(const char *value, char *buf, size_t len)
{
	size_t	i;

	for (i = 0; value[i] != '\0'; i++)
		if (!isalnum((unsigned char)value[i]) && value[i] != '-' &&
		    value[i] != '_')
			break;
	if (i == 0 || value[i] != '\0' || i > 64) {
		snprintf(buf, len, "'%s' is not a header name (letters, digits, "
		    "'-' and '_')", value);
		return (buf);
	}
	return (NULL);
}

static const char *
validate_pid_path(const char *value, char *buf, size_t len)
{
	if (strcmp(value, "none") != 0 && value[0] != '/') {
		snprintf(buf, len, "'%s' must be an absolute path, or none",
		    value);
		return (buf);
	}
	return (NULL);
}

#define O(f)	offsetof(struct deploy_conf, f)
static const struct ini_key deploy_keys[] = {	/* sorted */
	{ .name = "active", .kind = INI_ENUM, .off = O(active),
	  .choices = slot_names, .flags = INI_REQUIRED },
	{ .name = "active_version", .kind = INI_STRING,
	  .off = O(active_version), .validate = validate_version },
	{ .name = "alert", .kind = INI_LIST, .off = O(alert),
	  .off2 = O(nalert) },
	{ .name = "auto_rollback", .kind = INI_BOOL, .off = O(auto_rollback),
	  .dflt = "yes" },
	{ .name = "blue_port", .kind = INI_UINT, .off = O(blue_port),
	  .min = 1, .max = 65535, .flags = INI_REQUIRED },
	{ .name = "drain", .kind = INI_DURATION, .off = O(drain),
	  .dflt = "30s", .max = 86400ULL * 1000 },
	{ .name = "green_port", .kind = INI_UINT, .off = O(green_port),
	  .min = 1, .max = 65535, .flags = INI_REQUIRED },
	{ .name = "health", .kind = INI_STRING, .off = O(health),
	  .flags = INI_REQUIRED, .validate = validate_url },
	{ .name = "health_deadline", .kind = INI_DURATION,
	  .off = O(health_deadline), .dflt = "60s", .min = 1000,
	  .max = 86400ULL * 1000 },
	{ .name = "health_fall", .kind = INI_UINT, .off = O(health_fall),
	  .dflt = "3", .min = 1, .max = 100 },
	{ .name = "health_host", .kind = INI_STRING, .off = O(health_host) },
	{ .name = "health_interval", .kind = INI_DURATION,
	  .off = O(health_interval), .dflt = "1s", .min = 100,
	  .max = 3600ULL * 1000 },
	{ .name = "health_rise", .kind = INI_UINT, .off = O(health_rise),
	  .dflt = "3", .min = 1, .max = 100 },
	{ .name = "health_start_delay", .kind = INI_DURATION,
	  .off = O(health_start_delay), .dflt = "0",
	  .max = 86400ULL * 1000 },
	{ .name = "health_timeout", .kind = INI_DURATION,
	  .off = O(health_timeout), .dflt = "5s", .min = 100,
	  .max = 3600ULL * 1000 },
	{ .name = "migrate", .kind = INI_STRING, .off = O(migrate) },
	{ .name = "migrate_reversible", .kind = INI_BOOL,
	  .off = O(migrate_reversible), .dflt = "yes" },
	{ .name = "migrate_timeout", .kind = INI_DURATION,
	  .off = O(migrate_timeout), .dflt = "10m", .min = 100 },
	{ .name = "pid_file", .kind = INI_STRING, .off = O(pid_file),
	  .validate = validate_pid_path },
	{ .name = "proxy_pid_file", .kind = INI_STRING,
	  .off = O(proxy_pid_file), .dflt = "/run/nginx.pid",
	  .validate = validate_pid_path },
	{ .name = "proxy_reload", .kind = INI_STRING, .off = O(proxy_reload),
	  .dflt = "nginx -s reload" },
	{ .name = "proxy_test", .kind = INI_STRING, .off = O(proxy_test),
	  .dflt = "nginx -t" },
	{ .name = "proxy_timeout", .kind = INI_DURATION,
	  .off = O(proxy_timeout), .dflt = "30s", .min = 100 },
	{ .name = "rollback_window", .kind = INI_DURATION,
	  .off = O(rollback_window), .dflt = "10m",
	  .max = 30ULL * 86400 * 1000 },
	{ .name = "start", .kind = INI_STRING, .off = O(start),
	  .flags = INI_REQUIRED },
	{ .name = "start_timeout", .kind = INI_DURATION,
	  .off = O(start_timeout), .dflt = "5m", .min = 100 },
	{ .name = "stop", .kind = INI_STRING, .off = O(stop),
	  .flags = INI_REQUIRED },
	{ .name = "stop_timeout", .kind = INI_DURATION, .off = O(stop_timeout),
	  .dflt = "60s", .min = 100 },
	{ .name = "upstream_file", .kind = INI_PATH, .off = O(upstream_file),
	  .flags = INI_REQUIRED },
	{ .name = "upstream_template", .kind = INI_PATH,
	  .off = O(upstream_template), .validate = ini_validate_readable },
	{ .name = "verify_body", .kind = INI_STRING, .off = O(verify_body) },
	{ .name = "verify_host", .kind = INI_STRING, .off = O(verify_host) },
	{ .name = "verify_timeout", .kind = INI_DURATION,
	  .off = O(verify_timeout), .dflt = "10s", .min = 100 },
	{ .name = "verify_url", .kind = INI_STRING, .off = O(verify_url),
	  .validate = validate_url },
	{ .name = "version_header", .kind = INI_STRING,
	  .off = O(version_header), .validate = validate_header },
	{ .name = "watch", .kind = INI_DURATION, .off = O(watch),
	  .dflt = "2m", .max = 86400ULL * 1000 },
};
#undef O

static void *
deploy_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct deploy_conf	*d;

	d = xcalloc(1, sizeof *d);
	d->name = xstrdup(name);
	if (ini_defaults(&deploy_section, d) != 0)
		fatalx("deploy: a built-in default does not parse");
	config_add(conf, &deploy_section, d);
	return (d);
}

/* Reads the template once, here: a reload picks up an edited one. */
static void
read_template(struct deploy_conf *d, const char *file, int line,
    struct config_errors *errs)
{
	struct stat	 st;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(d->upstream_template, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_size > DEPLOY_INCLUDE_MAX) {
		ini_error(errs, file, line, "upstream_template %s: %s",
		    d->upstream_template, fd == -1 ? strerror(errno) :
		    !S_ISREG(st.st_mode) ? "not a regular file" :
		    "larger than 64 KiB");
		if (fd != -1)
			close(fd);
		return;
	}
	d->template_text = xmalloc((size_t)st.st_size + 1);
	r = read(fd, d->template_text, (size_t)st.st_size);
	close(fd);
	if (r != st.st_size) {
		ini_error(errs, file, line, "upstream_template %s: short read",
		    d->upstream_template);
		r = 0;
	}
	d->template_text[r] = '\0';
	if (strlen(d->template_text) != (size_t)r)
		ini_error(errs, d->upstream_template, 1, "a NUL byte in the "
		    "template");
	else if (strstr(d->template_text, "{port}") == NULL)
		ini_error(errs, file, line, "upstream_template %s has no "
		    "{port}: it would send traffic to the same place for both "
		    "slots", d->upstream_template);
}

#define KL(k)	ini_keyline(&deploy_section, keylines, (k))

static void
deploy_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct deploy_conf	*d = obj;
	struct stat		 st;
	char			*dir, *slash;
	size_t			 i;

	(void)ctx;
	d->line = line;
	d->alert_line = KL("alert");
	for (i = 0; d->name[i] != '\0'; i++)
		if (!isalnum((unsigned char)d->name[i]) && d->name[i] != '-' &&
		    d->name[i] != '_' && d->name[i] != '.')
			break;
	if (d->name[i] != '\0' || i > 64)
		ini_error(errs, file, line, "deploy '%s': a name is letters, "
		    "digits, '-', '_' and '.' (at most 64): it names an nginx "
		    "upstream and a state file", d->name);
	if (d->blue_port != 0 && d->blue_port == d->green_port)
		ini_error(errs, file, KL("green_port"), "blue_port and "
		    "green_port are the same port: the slots must not share "
		    "one");
	if (d->verify_body != NULL && d->verify_url == NULL)
		ini_error(errs, file, KL("verify_body"), "verify_body is what "
		    "verify_url must answer, and there is no verify_url");
	if (d->verify_host != NULL && d->verify_url == NULL)
		ini_error(errs, file, KL("verify_host"), "verify_host is the "
		    "Host header of verify_url, and there is no verify_url");
	if (d->health_rise > 1 && d->health_deadline < d->health_interval *
	    (d->health_rise - 1))
		ini_error(errs, file, KL("health_deadline"), "health_deadline "
		    "is shorter than health_rise - 1 intervals: the gate could "
		    "never pass");
	if (d->proxy_pid_file != NULL && strcmp(d->proxy_pid_file, "none") ==
	    0) {
		free(d->proxy_pid_file);
		d->proxy_pid_file = NULL;
	}
	if (d->pid_file != NULL && strcmp(d->pid_file, "none") == 0) {
		free(d->pid_file);
		d->pid_file = NULL;
	}
	if (d->upstream_file != NULL) {
		dir = xstrdup(d->upstream_file);
		if ((slash = strrchr(dir, '/')) != NULL)
			slash[slash == dir ? 1 : 0] = '\0';
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
			ini_error(errs, file, KL("upstream_file"), "upstream_file"
			    " %s: its directory %s %s", d->upstream_file, dir,
			    stat(dir, &st) != 0 ? "does not exist" :
			    "is not a directory");
		free(dir);
	}
	if (d->upstream_template != NULL)
		read_template(d, file, KL("upstream_template"), errs);
	if (d->migrate == NULL && KL("migrate_reversible") != 0)
		ini_error(errs, file, KL("migrate_reversible"),
		    "migrate_reversible says what migrate does, and there is "
		    "no migrate");
}

#undef KL

const struct ini_section deploy_section = {
	"deploy", 1, deploy_keys, nitems(deploy_keys), deploy_open,
	deploy_check, deploy_conf_free, "deploys"
};

void
deploy_conf_free(void *obj)
{
	struct deploy_conf	*d = obj;

	if (d == NULL)
		return;
	ini_free(&deploy_section, d);
	free(d->template_text);
	free(d->name);
	free(d);
}

struct deploy_conf *
deploy_conf_copy(const struct deploy_conf *src)
{
	struct deploy_conf	*d;

	d = ini_copy(&deploy_section, src, sizeof *src);
	d->name = xstrdup(src->name);
	d->template_text = src->template_text != NULL ?
	    xstrdup(src->template_text) : NULL;
	return (d);
}

/* --- across sections -------------------------------------------------------- */

void
deploy_conf_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	const char		*file = conf->path;
	struct deploy_conf	*d, *e;
	unsigned int		 i, j, k, n;

	n = config_count(conf, &deploy_section);
	for (i = 0; i < n; i++) {
		d = config_at(conf, &deploy_section, i);
		for (k = 0; k < d->nalert; k++)
			if (alert_conf_find(conf, d->alert[k]) == NULL)
				ini_error(errs, file, d->alert_line, "unknown "
				    "alert route '%s'", d->alert[k]);
		for (j = 0; j < i; j++) {
			e = config_at(conf, &deploy_section, j);
			if (d->upstream_file != NULL && e->upstream_file !=
			    NULL && strcmp(d->upstream_file,
			    e->upstream_file) == 0)
				ini_error(errs, file, d->line, "deploys %s and "
				    "%s write the same upstream_file %s",
				    e->name, d->name, d->upstream_file);
			if (d->blue_port == e->blue_port || d->blue_port ==
			    e->green_port || d->green_port == e->blue_port ||
			    d->green_port == e->green_port)
				ini_error(errs, file, d->line, "deploys %s and "
				    "%s share a slot port", e->name, d->name);
		}
	}
}
