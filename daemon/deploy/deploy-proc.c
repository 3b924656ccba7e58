/*
 * Processes seen from /proc: a slot's process (from its pid file), and
 * nginx's master and workers. `nginx -s reload` only sends SIGHUP and
 * returns; the reload took effect when the master runs workers it did not
 * run before (a reload that fails, a configuration nginx -t passed but
 * the master refused, keeps the old ones). These are small reads of
 * files the kernel makes, cheap enough for the loop.
 */
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy-int.h"

#define PID_FILE_MAX	64

int
deploy_pid_parse(const char *buf, size_t len, pid_t *pid)
{
	size_t		i = 0;
	long long	v = 0;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	if (i == len || !isdigit((unsigned char)buf[i]))
		return (-EINVAL);
	for (; i < len && isdigit((unsigned char)buf[i]); i++) {
		v = v * 10 + (buf[i] - '0');
		if (v > 0x7fffffff)
			return (-EINVAL);
	}
	for (; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
		    buf[i] != '\r')
			return (-EINVAL);
	if (v <= 1)
		return (-EINVAL);
	*pid = (pid_t)v;
	return (0);
}

size_t
deploy_children_parse(const char *buf, size_t len, pid_t *out, size_t max)
{
	size_t		i = 0, n = 0, start;
	long long	v;

	while (n < max) {
		while (i < len && (buf[i] == ' ' || buf[i] == '\n'))
			i++;
		if (i == len)
			break;
		start = i;
		v = 0;
		for (; i < len && isdigit((unsigned char)buf[i]); i++) {
			v = v * 10 + (buf[i] - '0');
			if (v > 0x7fffffff)
				return (n);
		}
		if (i == start || v <= 1 || (i < len && buf[i] != ' ' &&
		    buf[i] != '\n'))
			break;
		out[n++] = (pid_t)v;
	}
	return (n);
}

/* Reads at most max - 1 bytes of path into buf; the length or -errno. */
static ssize_t
read_proc(const char *path, char *buf, size_t max)
{
	ssize_t	r;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return (-errno);
	r = read(fd, buf, max - 1);
	if (r == -1)
		r = -errno;
	close(fd);
	if (r >= 0)
		buf[r] = '\0';
	return (r);
}

int
deploy_pid_file(const char *path, pid_t *pid)
{
	char	buf[PID_FILE_MAX + 1];
	ssize_t	r;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) ==
	    -1)
		return (-errno);
	r = read(fd, buf, sizeof buf);
	if (r == -1)
		r = -errno;
	close(fd);
	if (r < 0)
		return ((int)r);
	if (r > PID_FILE_MAX)
		return (-EFBIG);
	return (deploy_pid_parse(buf, (size_t)r, pid));
}

int
deploy_pid_alive(pid_t pid)
{
	char	path[64], buf[512], *p;
	ssize_t	r;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((r = read_proc(path, buf, sizeof buf)) <= 0)
		return (0);
	/* "pid (comm) S ...": the state follows the last ')' */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return (0);
	return (p[2] != 'Z' && p[2] != 'X' && p[2] != '\0');
}

/* Children by scanning /proc, where task/PID/children is missing. */
static size_t
children_scan(pid_t parent, pid_t *out, size_t max)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[300], buf[512], *p;
	size_t		 n = 0;
	long		 ppid;
	pid_t		 pid;

	if ((d = opendir("/proc")) == NULL)
		return (0);
	while (n < max && (de = readdir(d)) != NULL) {
		if (deploy_pid_parse(de->d_name, strlen(de->d_name), &pid) != 0)
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		if (read_proc(path, buf, sizeof buf) <= 0 ||
		    (p = strrchr(buf, ')')) == NULL)
			continue;
		/* ") S PPID ..." */
		if (sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == parent)
			out[n++] = pid;
	}
	closedir(d);
	return (n);
}

int
deploy_workers_read(const char *pid_file, struct deploy_workers *w)
{
	char	path[96], buf[4096];
	ssize_t	r;
	int	e;

	memset(w, 0, sizeof *w);
	if ((e = deploy_pid_file(pid_file, &w->master)) != 0)
		return (e);
	if (!deploy_pid_alive(w->master))
		return (-ESRCH);
	snprintf(path, sizeof path, "/proc/%d/task/%d/children",
	    (int)w->master, (int)w->master);
	if ((r = read_proc(path, buf, sizeof buf)) >= 0)
		w->n = deploy_children_parse(buf, (size_t)r, w->v,
		    DEPLOY_WORKERS_MAX);
	else
		w->n = children_scan(w->master, w->v, DEPLOY_WORKERS_MAX);
	return (0);
}

int
deploy_workers_changed(const struct deploy_workers *before,
    const struct deploy_workers *now)
{
	size_t	i, j;

	if (now->master == 0)
		return (0);
	if (before->master != 0 && now->master != before->master)
		return (1);
	for (i = 0; i < now->n; i++) {
		for (j = 0; j < before->n; j++)
			if (before->v[j] == now->v[i])
				break;
		if (j == before->n)
			return (1);
	}
	return (0);
}

int
deploy_workers_gone(const struct deploy_workers *before,
    const struct deploy_workers *now)
{
	size_t	i, j;

	if (before->master != now->master)
		return (1);
	for (i = 0; i < before->n; i++)
		for (j = 0; j < now->n; j++)
			if (before->v[i] == now->v[j])
				return (0);
	return (1);
}
