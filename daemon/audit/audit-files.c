/*
 * The checks of files: the credential files (every [secret]'s, and
 * [audit] secret_files), the env files of [audit] env_files, and opsd's
 * own state dir, configuration and unit. Only listed files are read,
 * each once and at most SECRETFILE_MAX bytes, opened non-blocking (a
 * FIFO in the list does not stall the loop), so a run's file part is
 * bounded. Modes are tested bit by bit: 0640 and 0604 are different
 * problems, which a comparison of numbers cannot tell.
 *
 * Values are read to judge them and wiped; a finding names the key or
 * file, never what it holds.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "audit-int.h"
#include "config.h"
#include "daemon.h"
#include "secret-int.h"
#include "secretfile.h"
#include "util.h"

/* Reads at most SECRETFILE_MAX bytes of a regular file; -errno. */
static int
read_small(const char *path, struct stat *st, char **data, size_t *len)
{
	char	*buf;
	ssize_t	 n;
	size_t	 got = 0;
	int	 fd, e;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) <
	    0)
		return (-errno);
	if (fstat(fd, st) != 0) {
		e = -errno;
		close(fd);
		return (e);
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return (0);
	}
	buf = xmalloc(SECRETFILE_MAX + 1);
	while (got < SECRETFILE_MAX) {
		n = read(fd, buf + got, SECRETFILE_MAX - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			secretfile_cleanse(buf, SECRETFILE_MAX + 1);
			free(buf);
			close(fd);
			return (e);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return (0);
}

static void
run_scope(struct audit_run *r, int scope, const struct audit_input *in)
{
	size_t	i;

	for (i = 0; i < audit_nchecks; i++)
		if (audit_checks[i].scope == scope &&
		    audit_selected(r, &audit_checks[i]))
			audit_checks[i].fn(r, &audit_checks[i], in);
}

static int
scope_selected(struct audit_run *r, int scope)
{
	size_t	i;

	for (i = 0; i < audit_nchecks; i++)
		if (audit_checks[i].scope == scope &&
		    audit_selected(r, &audit_checks[i]))
			return (1);
	return (0);
}

static void
check_file(struct audit_run *r, int scope, struct audit_input *in)
{
	struct stat	 st;
	char		*data = NULL;
	size_t		 len = 0, i;
	int		 e;

	memset(&st, 0, sizeof st);
	e = read_small(in->path, &st, &data, &len);
	if (e == -ENOENT) {
		in->st = NULL;
		run_scope(r, scope, in);
		return;
	}
	if (e != 0) {
		/* not a finding: opsd could not look */
		for (i = 0; i < audit_nchecks; i++)
			if (audit_checks[i].scope == scope &&
			    audit_selected(r, &audit_checks[i]))
				audit_unchecked(r, audit_checks[i].id, in->path,
				    "cannot read the file: %s", strerror(-e));
		return;
	}
	in->st = &st;
	in->data = data;
	in->len = len;
	run_scope(r, scope, in);
	if (data != NULL) {
		secretfile_cleanse(data, len);
		free(data);
	}
	in->data = NULL;
}

static int
is_sample(const char *path)
{
	const char	*b = strrchr(path, '/');

	b = b != NULL ? b + 1 : path;
	return (strstr(b, ".sample") != NULL || strstr(b, ".example") !=
	    NULL || strncmp(b, "example", 7) == 0 || strncmp(b, "sample",
	    6) == 0 || strstr(b, ".dist") != NULL);
}

void
audit_files_run(struct audit_run *r)
{
	struct opsd		*o = audit_run_opsd(r);
	const struct audit_conf	*a = audit_run_conf(r);
	struct audit_input	 in;
	struct secret_conf	*s;
	unsigned int		 i, n, k;

	if (scope_selected(r, AUDIT_SECRET)) {
		n = config_count(o->conf, &secret_section);
		for (i = 0; i < n; i++) {
			s = config_at(o->conf, &secret_section, i);
			memset(&in, 0, sizeof in);
			in.path = s->path;
			in.managed = 1;
			in.is_value = 1;
			in.owner = s->name;
			in.want_uid = s->uid == (uid_t)-1 ? geteuid() : s->uid;
			in.want_gid = s->gid == (gid_t)-1 ? getegid() : s->gid;
			in.want_mode = s->mode;
			in.max_age = s->rotate_every > 0 ? s->rotate_every +
			    s->grace : s->schedule != NULL ? (uint64_t)
			    sched_period(&s->spec) * 1000 + s->grace :
			    a != NULL ? a->max_secret_age : AUDIT_MAX_AGE_DEFAULT;
			check_file(r, AUDIT_SECRET, &in);
			in.is_value = 0;
			if (s->combined_path != NULL) {
				in.path = s->combined_path;
				check_file(r, AUDIT_SECRET, &in);
			}
			/* the previous values: their modes, if they exist */
			for (k = 1; k <= s->keep_previous; k++) {
				char *prev;

				if (k == 1)
					xasprintf(&prev, "%s.previous", s->path);
				else
					xasprintf(&prev, "%s.previous.%u", s->path,
					    k);
				if (access(prev, F_OK) == 0) {
					in.path = prev;
					check_file(r, AUDIT_SECRET, &in);
				}
				free(prev);
			}
		}
		/* [env_file]s opsd renders hold secrets' values */
		n = config_count(o->conf, &env_section);
		for (i = 0; i < n; i++) {
			struct env_conf *e = config_at(o->conf, &env_section, i);

			memset(&in, 0, sizeof in);
			in.path = e->path;
			in.managed = 1;
			in.env_file = 1;
			in.owner = e->name;
			in.want_uid = e->uid == (uid_t)-1 ? geteuid() : e->uid;
			in.want_gid = e->gid == (gid_t)-1 ? getegid() : e->gid;
			in.want_mode = e->mode;
			check_file(r, AUDIT_SECRET, &in);
		}
		for (i = 0; a != NULL && i < a->nsecret_files; i++) {
			memset(&in, 0, sizeof in);
			in.path = a->secret_files[i];
			in.is_value = 1;
			in.max_age = a->max_secret_age;
			check_file(r, AUDIT_SECRET, &in);
		}
	}
	if (scope_selected(r, AUDIT_ENV))
		for (i = 0; a != NULL && i < a->nenv_files; i++) {
			memset(&in, 0, sizeof in);
			in.path = a->env_files[i];
			in.sample = is_sample(in.path);
			check_file(r, AUDIT_ENV, &in);
		}
	if (scope_selected(r, AUDIT_HOST)) {
		memset(&in, 0, sizeof in);
		run_scope(r, AUDIT_HOST, &in);
	}
}

/* --- secret files -------------------------------------------------------- */

static const char *
where_of(const struct audit_input *in)
{
	return (in->path);
}

static int
has_value(const struct audit_input *in)
{
	return (in->st != NULL && in->data != NULL && in->is_value);
}

void
audit_chk_secret_missing(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	char	fix[512];

	if (in->st != NULL)
		return;
	if (in->managed && in->env_file)
		snprintf(fix, sizeof fix, "restart opsd: it renders [env_file "
		    "%s] again", in->owner);
	else if (in->managed)
		snprintf(fix, sizeof fix, "opsd-cli secret rotate %s (or "
		    "restart opsd: it publishes a [secret]'s file again)",
		    in->owner);
	else
		snprintf(fix, sizeof fix, "create the file, or drop it from "
		    "[audit] secret_files");
	audit_finding(r, c, where_of(in), fix, "%s does not exist",
	    in->managed ? "the secret's file" : "the credential file");
}

void
audit_chk_secret_not_regular(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	if (in->st == NULL || S_ISREG(in->st->st_mode))
		return;
	audit_finding(r, c, where_of(in), "replace it with a regular file of "
	    "mode 0600", "not a regular file (%s)", S_ISDIR(in->st->st_mode) ?
	    "a directory" : S_ISFIFO(in->st->st_mode) ? "a FIFO" :
	    "a device or socket");
}

void
audit_chk_secret_world_readable(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	char	fix[512];

	if (in->st == NULL || !(in->st->st_mode & S_IROTH))
		return;
	snprintf(fix, sizeof fix, "chmod o-rwx %s%s", in->path, in->managed ?
	    " (and mode = 0600 in its [secret])" : "");
	audit_finding(r, c, where_of(in), fix, "mode %04o: any local user can "
	    "read the credential", (unsigned int)(in->st->st_mode & 07777));
}

void
audit_chk_secret_world_writable(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	char	fix[512];

	if (in->st == NULL || !(in->st->st_mode & S_IWOTH))
		return;
	snprintf(fix, sizeof fix, "chmod o-rwx %s", in->path);
	audit_finding(r, c, where_of(in), fix, "mode %04o: any local user can "
	    "replace the credential", (unsigned int)(in->st->st_mode & 07777));
}

void
audit_chk_secret_group_access(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	mode_t	extra;
	char	fix[512];

	if (in->st == NULL)
		return;
	extra = in->st->st_mode & (S_IRGRP | S_IWGRP);
	if (in->managed)
		extra &= ~in->want_mode;
	if (extra == 0)
		return;
	snprintf(fix, sizeof fix, "chmod g-%s%s %s", extra & S_IRGRP ? "r" :
	    "", extra & S_IWGRP ? "w" : "", in->path);
	/* a group that may read is often the consumer's; one that writes is not */
	audit_finding_sev(r, c, extra & S_IWGRP ? AUDIT_MEDIUM : in->managed ?
	    AUDIT_MEDIUM : AUDIT_LOW, where_of(in), fix, "mode %04o: group %u "
	    "may %s it%s", (unsigned int)(in->st->st_mode & 07777),
	    (unsigned int)in->st->st_gid, extra & S_IWGRP ? (extra & S_IRGRP ?
	    "read and write" : "write") : "read", in->managed ? ", which its "
	    "[secret] mode does not grant" : "; fine only if that group is "
	    "the consumer's");
}

void
audit_chk_secret_owner(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	char	fix[512];

	if (in->st == NULL || !in->managed)
		return;
	if (in->st->st_uid == in->want_uid && in->st->st_gid == in->want_gid)
		return;
	snprintf(fix, sizeof fix, "chown %u:%u %s", (unsigned int)in->want_uid,
	    (unsigned int)in->want_gid, in->path);
	audit_finding(r, c, where_of(in), fix, "owned by %u:%u, [%s %s] says "
	    "%u:%u", (unsigned int)in->st->st_uid,
	    (unsigned int)in->st->st_gid, in->env_file ? "env_file" : "secret",
	    in->owner, (unsigned int)in->want_uid, (unsigned int)in->want_gid);
}

void
audit_chk_secret_age(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	int64_t	age;
	char	fix[512];

	if (in->st == NULL || in->max_age == 0 || !in->is_value)
		return;
	age = (int64_t)time(NULL) - (int64_t)in->st->st_mtime;
	if (age < 0 || (uint64_t)age * 1000 <= in->max_age)
		return;
	if (in->managed)
		snprintf(fix, sizeof fix, "opsd-cli secret rotate %s; check "
		    "why its schedule did not (opsd-cli secret show %s)",
		    in->owner, in->owner);
	else
		snprintf(fix, sizeof fix, "rotate the credential, or let opsd "
		    "manage it with a [secret] section and rotate_every");
	audit_finding(r, c, where_of(in), fix, "last changed %lld days ago; "
	    "the policy is %llu days", (long long)(age / 86400),
	    (unsigned long long)(in->max_age / 86400000));
}

void
audit_chk_secret_empty(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	struct audit_strength	s;

	if (!has_value(in))
		return;
	audit_strength(in->data, in->len, &s);
	if (s.length > 0)
		return;
	audit_finding(r, c, where_of(in), "write the credential into the "
	    "file, or generate one with a [secret] section", "the file holds "
	    "no value");
}

void
audit_chk_secret_placeholder(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	struct audit_strength	s;

	if (!has_value(in))
		return;
	audit_strength(in->data, in->len, &s);
	if (s.length == 0 || !s.placeholder)
		return;
	audit_finding(r, c, where_of(in), "replace it with a generated value: "
	    "a [secret] section (kind = random, bytes = 32) writes and rotates "
	    "one", "the value is a known placeholder%s", s.reference ?
	    " (an unexpanded ${VAR})" : "");
}

void
audit_chk_secret_short(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const struct audit_conf	*a = audit_run_conf(r);
	struct audit_strength	 s;
	uint64_t		 min = a != NULL ? a->min_length : 16;

	if (!has_value(in))
		return;
	audit_strength(in->data, in->len, &s);
	if (s.length == 0 || s.placeholder || s.length >= min)
		return;
	audit_finding(r, c, where_of(in), "generate a longer value ([secret] "
	    "kind = random, bytes = 32)", "%zu characters, fewer than "
	    "min_length %llu", s.length, (unsigned long long)min);
}

void
audit_chk_secret_weak(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	const struct audit_conf	*a = audit_run_conf(r);
	struct audit_strength	 s;
	uint64_t		 min = a != NULL ? a->min_length : 16;

	if (!has_value(in))
		return;
	audit_strength(in->data, in->len, &s);
	if (s.length < min || s.placeholder || s.bits >= 80)
		return;
	audit_finding(r, c, where_of(in), "generate a value from more "
	    "character classes or a longer one ([secret] encoding = base64)",
	    "%zu characters of %u character class%s: about %.0f bits",
	    s.length, s.classes, s.classes == 1 ? "" : "es", s.bits);
}

void
audit_chk_secret_newline(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	struct audit_strength	s;
	char			fix[512];

	if (!has_value(in))
		return;
	audit_strength(in->data, in->len, &s);
	if (!s.trailing_newline || s.length == 0)
		return;
	snprintf(fix, sizeof fix, "printf %%s \"$(cat %s)\" > %s.new && mv "
	    "%s.new %s (keep the mode), or let a [secret] write it",
	    in->path, in->path, in->path, in->path);
	audit_finding(r, c, where_of(in), fix, "the file ends in a newline: "
	    "consumers of *_FILE (PostgreSQL's image, most frameworks) take it "
	    "as part of the password");
}

/* --- env files ----------------------------------------------------------- */

enum env_what {
	ENV_SYNTAX, ENV_LITERAL, ENV_PLACEHOLDER, ENV_WEAK, ENV_EMPTY,
	ENV_DUP, ENV_CREDS
};

struct env_ctx {
	struct audit_run		*r;
	const struct audit_check	*c;
	const struct audit_input	*in;
	enum env_what			 what;
	unsigned int			 ncreds;
	/* duplicates: fingerprints of the values seen, not the values */
	struct {
		char	fp[SECRETFILE_FP_LEN];
		char	key[64];
		int	line;
	}				*seen;
	unsigned int			 nseen;
};

static void
env_where(const struct audit_input *in, int line, const char *key,
    char *buf, size_t len)
{
	if (key != NULL)
		snprintf(buf, len, "%s:%d %s", in->path, line, key);
	else
		snprintf(buf, len, "%s:%d", in->path, line);
}

static void
env_cb(int line, const char *key, const char *value, size_t vlen,
    const char *msg, void *arg)
{
	struct env_ctx		*x = arg;
	const struct audit_conf	*a = audit_run_conf(x->r);
	struct audit_strength	 s;
	char			 where[1024], fix[512], fp[SECRETFILE_FP_LEN];
	uint64_t		 min = a != NULL ? a->min_length : 16;
	unsigned int		 i;

	if (key == NULL) {
		if (x->what == ENV_SYNTAX) {
			env_where(x->in, line, NULL, where, sizeof where);
			audit_finding(x->r, x->c, where, "write KEY=VALUE, or "
			    "'#' for a comment", "%s: not checked", msg);
		}
		return;
	}
	if (!audit_key_is_credential(key))
		return;
	audit_strength(value, vlen, &s);
	env_where(x->in, line, key, where, sizeof where);
	switch (x->what) {
	case ENV_CREDS:
		if (vlen > 0 && !s.reference)
			x->ncreds++;
		break;
	case ENV_LITERAL:
		if (vlen == 0 || s.placeholder)
			break;
		snprintf(fix, sizeof fix, "put the value in a file of mode 0600 "
		    "and set %s_FILE=/run/secrets/%s instead (a [secret] or "
		    "[env_file] section can write it)", key, key);
		audit_finding(x->r, x->c, where, fix, "%s holds its credential "
		    "in the file%s", key, x->in->sample ? " (a sample file: "
		    "is this a real value?)" : "");
		break;
	case ENV_PLACEHOLDER:
		if (vlen == 0 || !s.placeholder || x->in->sample || s.reference)
			break;
		snprintf(fix, sizeof fix, "generate a value ([secret] kind = "
		    "random) and point %s_FILE at it", key);
		audit_finding(x->r, x->c, where, fix, "%s holds a known "
		    "placeholder", key);
		break;
	case ENV_WEAK:
		if (vlen == 0 || s.placeholder || x->in->sample ||
		    (s.length >= min && s.bits >= 80))
			break;
		snprintf(fix, sizeof fix, "generate a value of at least %llu "
		    "characters ([secret] kind = random, bytes = 32)",
		    (unsigned long long)min);
		audit_finding(x->r, x->c, where, fix, "%s holds %zu characters "
		    "of %u class%s (about %.0f bits)", key, s.length, s.classes,
		    s.classes == 1 ? "" : "es", s.bits);
		break;
	case ENV_EMPTY:
		/* gitleaks #1828: an empty value in a sample is the point */
		if (vlen > 0 || x->in->sample)
			break;
		snprintf(fix, sizeof fix, "set %s_FILE to a credential file, or "
		    "drop the key", key);
		audit_finding(x->r, x->c, where, fix, "%s is empty", key);
		break;
	case ENV_DUP:
		if (vlen == 0 || s.reference || s.placeholder)
			break;
		secretfile_fingerprint(value, vlen, fp);
		for (i = 0; i < x->nseen; i++)
			if (strcmp(x->seen[i].fp, fp) == 0) {
				snprintf(fix, sizeof fix, "give %s a value of its "
				    "own", key);
				audit_finding(x->r, x->c, where, fix, "%s holds the "
				    "same value as %s on line %d", key,
				    x->seen[i].key, x->seen[i].line);
				return;
			}
		x->seen = xreallocarray(x->seen, x->nseen + 1,
		    sizeof *x->seen);
		memcpy(x->seen[x->nseen].fp, fp, sizeof fp);
		snprintf(x->seen[x->nseen].key, sizeof x->seen[x->nseen].key,
		    "%s", key);
		x->seen[x->nseen].line = line;
		x->nseen++;
		break;
	case ENV_SYNTAX:
		break;
	}
}

static int
is_yaml(const char *path)
{
	size_t	n = strlen(path);

	return ((n > 4 && strcmp(path + n - 4, ".yml") == 0) || (n > 5 &&
	    strcmp(path + n - 5, ".yaml") == 0));
}

static unsigned int
env_walk(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in, enum env_what what)
{
	struct env_ctx	x;

	if (in->st == NULL || in->data == NULL)
		return (0);
	memset(&x, 0, sizeof x);
	x.r = r;
	x.c = c;
	x.in = in;
	x.what = what;
	audit_env_parse(in->data, in->len, is_yaml(in->path) ? AUDIT_ENV_YAML :
	    0, env_cb, &x);
	free(x.seen);
	return (x.ncreds);
}

void
audit_chk_env_missing(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	if (in->st != NULL)
		return;
	audit_finding(r, c, in->path, "drop it from [audit] env_files, or "
	    "fix the path", "the env file does not exist");
}

void
audit_chk_env_syntax(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_SYNTAX);
}

void
audit_chk_env_world_readable(struct audit_run *r,
    const struct audit_check *c, const struct audit_input *in)
{
	unsigned int	n;
	char		fix[512];

	if (in->st == NULL || !(in->st->st_mode & S_IROTH) || in->sample)
		return;
	if ((n = env_walk(r, c, in, ENV_CREDS)) == 0)
		return;
	snprintf(fix, sizeof fix, "chmod o-rwx %s", in->path);
	audit_finding(r, c, in->path, fix, "mode %04o: any local user can "
	    "read its %u credential%s", (unsigned int)(in->st->st_mode & 07777),
	    n, n == 1 ? "" : "s");
}

void
audit_chk_env_literal(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_LITERAL);
}

void
audit_chk_env_placeholder(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_PLACEHOLDER);
}

void
audit_chk_env_weak(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_WEAK);
}

void
audit_chk_env_empty(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_EMPTY);
}

void
audit_chk_env_duplicate(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	env_walk(r, c, in, ENV_DUP);
}

/* --- the host ------------------------------------------------------------ */

void
audit_chk_host_state_dir(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	struct opsd	*o = audit_run_opsd(r);
	struct stat	 st;
	char		 fix[512];
	mode_t		 m;

	(void)in;
	if (stat(o->conf->state_dir, &st) != 0) {
		audit_unchecked(r, c->id, o->conf->state_dir, "cannot stat: %s",
		    strerror(errno));
		return;
	}
	m = st.st_mode & 07777;
	if ((m & 0027) == 0)
		return;
	snprintf(fix, sizeof fix, "chmod 0700 %s (StateDirectoryMode=0700 in "
	    "the unit)", o->conf->state_dir);
	audit_finding_sev(r, c, m & 0022 ? AUDIT_HIGH : c->sev,
	    o->conf->state_dir, fix, "mode %04o: it holds secrets' versions "
	    "and op journals; group or others may %s it", (unsigned int)m,
	    m & 0022 ? "write" : "list");
}

void
audit_chk_host_config(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	struct opsd	*o = audit_run_opsd(r);
	struct stat	 st;
	char		 fix[512];

	(void)in;
	if (o->conf_path == NULL)
		return;
	if (stat(o->conf_path, &st) != 0) {
		audit_unchecked(r, c->id, o->conf_path, "cannot stat: %s",
		    strerror(errno));
		return;
	}
	if (!(st.st_mode & 0022))
		return;
	snprintf(fix, sizeof fix, "chmod go-w %s", o->conf_path);
	audit_finding(r, c, o->conf_path, fix, "mode %04o: whoever may write "
	    "it chooses the commands opsd runs", (unsigned int)(st.st_mode &
	    07777));
}

const char *
audit_unit_file(const struct audit_conf *a)
{
	static const char *const paths[] = {
		"/etc/systemd/system/opsd.service",
		"/usr/lib/systemd/system/opsd.service",
		"/lib/systemd/system/opsd.service", NULL
	};
	size_t	i;

	if (a != NULL && a->unit_file != NULL)
		return (a->unit_file);
	for (i = 0; paths[i] != NULL; i++)
		if (access(paths[i], F_OK) == 0)
			return (paths[i]);
	return (NULL);
}

/* 1 if v (up to blanks) is one of the blank-separated words of list */
static int
word_in(const char *list, const char *v)
{
	size_t	n = strcspn(v, " \t\r"), w;

	while (*list != '\0') {
		w = strcspn(list, " ");
		if (w == n && strncmp(list, v, n) == 0)
			return (1);
		list += w;
		list += strspn(list, " ");
	}
	return (0);
}

void
audit_chk_host_unit(struct audit_run *r, const struct audit_check *c,
    const struct audit_input *in)
{
	static const struct { const char *key; const char *vals; } want[] = {
		{ "NoNewPrivileges=", "yes true 1 on" },
		{ "ProtectSystem=", "strict full yes true" },
		{ "PrivateTmp=", "yes true 1 on" },
	};
	const char		*path = audit_unit_file(audit_run_conf(r));
	struct stat		 st;
	char			*data, *p, *eol, fix[512];
	size_t			 len, i, kl;
	int			 found[3] = { 0, 0, 0 }, e;

	(void)in;
	if (path == NULL) {
		audit_unchecked(r, c->id, "opsd.service", "no unit file found "
		    "(not installed with systemd, or set [audit] unit_file)");
		return;
	}
	if ((e = read_small(path, &st, &data, &len)) != 0 || data == NULL) {
		audit_unchecked(r, c->id, path, "cannot read the unit: %s",
		    e != 0 ? strerror(-e) : "not a regular file");
		return;
	}
	for (p = data; p != NULL && *p != '\0'; p = eol) {
		eol = strchr(p, '\n');
		if (eol != NULL)
			*eol++ = '\0';
		for (i = 0; i < nitems(want); i++) {
			kl = strlen(want[i].key);
			if (strncmp(p, want[i].key, kl) == 0 && p[kl] != '\0' &&
			    word_in(want[i].vals, p + kl))
				found[i] = 1;
		}
	}
	free(data);
	for (i = 0; i < nitems(want); i++) {
		if (found[i])
			continue;
		snprintf(fix, sizeof fix, "add %s%.*s to [Service] (opsd's own "
		    "units/opsd.service has it)", want[i].key,
		    (int)strcspn(want[i].vals, " "), want[i].vals);
		audit_finding(r, c, path, fix, "%.*s is not set to %s",
		    (int)strlen(want[i].key) - 1, want[i].key, want[i].vals);
	}
}
