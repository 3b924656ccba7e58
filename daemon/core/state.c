/*
 * The fsyncs here run on the event loop, so they are for small files
 * only: state, journal entries and manifests of a few KiB, where a sync is
 * a short, bounded wait and what makes the file durable. Anything large
 * (a dump) is written and synced by a child; files that need no
 * durability (throw-away password files for a child) are written with
 * state_write_scratch, which does not sync at all.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

int
state_mkdir(const char *dir, mode_t mode)
{
	struct stat	 st;
	char		*p, *s;
	size_t		 n;
	int		 r = 0;

	if (*dir == '\0')
		return (-EINVAL);
	s = xstrdup(dir);
	/* "a/b/" is "a/b": the mode is for the last component */
	for (n = strlen(s); n > 1 && s[n - 1] == '/'; n--)
		s[n - 1] = '\0';
	for (p = s + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(s, c == '\0' ? mode : 0755) == -1 &&
		    errno != EEXIST) {
			r = -errno;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (r == 0) {
		/* EEXIST above may have been a file of that name */
		if (stat(s, &st) == -1)
			r = -errno;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
	}
	free(s);
	return (r);
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

static int
write_file(const char *dir, const char *name, const void *data, size_t len,
    mode_t mode, int durable)
{
	char	*tmp = NULL, *dst = NULL;
	int	 fd = -1, dfd = -1, r = 0;

	if (strchr(name, '/') != NULL || name[0] == '.')
		return (-EINVAL);
	xasprintf(&dst, "%s/%s", dir, name);
	xasprintf(&tmp, "%s/.%s.XXXXXX", dir, name);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		r = -errno;
		goto fail;
	}
	/* mode before the first byte, so no reader sees wider access */
	if (fchmod(fd, mode) == -1 ||
	    (r = write_all(fd, data, len)) != 0 ||
	    (durable && fsync(fd) == -1)) {
		r = r != 0 ? r : -errno;
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, dst) == -1) {
		r = -errno;
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	if (!durable) {
		free(dst);
		return (0);
	}
	/* the rename itself is durable only once the directory is synced */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		r = -errno;
		goto fail;
	}
	close(dfd);
	free(dst);
	return (0);
fail:
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(dst);
	return (r);
}

int
state_write(const char *dir, const char *name, const void *data, size_t len,
    mode_t mode)
{
	return (write_file(dir, name, data, len, mode, 1));
}

int
state_write_scratch(const char *dir, const char *name, const void *data,
    size_t len, mode_t mode)
{
	return (write_file(dir, name, data, len, mode, 0));
}

int
state_write_json(const char *dir, const char *name, const json_t *o)
{
	char	*s;
	int	 r;

	if ((s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return (-ENOMEM);
	/* a trailing newline keeps the file friendly to cat and diff */
	s = xreallocarray(s, strlen(s) + 2, 1);
	strcat(s, "\n");
	r = state_write(dir, name, s, strlen(s), 0640);
	free(s);
	return (r);
}

json_t *
state_read_json(const char *dir, const char *name, int *err)
{
	json_error_t	 jerr;
	json_t		*o;
	char		*path;

	xasprintf(&path, "%s/%s", dir, name);
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
		*err = access(path, R_OK) == 0 ? -EBADMSG : -errno;
	else
		*err = 0;
	free(path);
	return (o);
}
