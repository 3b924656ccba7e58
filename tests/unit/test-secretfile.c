/*
 * Credential files (daemon/core/secretfile.c): what a read returns for
 * each way a file may end, what it refuses (too long, a NUL byte, a
 * symlink), the mode check bit by bit, a write's mode and owner and the
 * temp file it must not leave, and the fingerprint.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretfile.h"
#include "tap.h"

static char	 top[] = "/tmp/opsd-test-secretfile.XXXXXX";
static int	 nfile;

/* A new file of len bytes with mode; its path (static, reused). */
static const char *
put(const char *data, size_t len, mode_t mode)
{
	static char	path[256];
	int		fd;

	snprintf(path, sizeof path, "%s/f%d", top, ++nfile);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1 ||
	    write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) == -1)
		tap_diag("cannot create %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return (path);
}

static int
rd(const char *data, size_t len, char *buf, size_t buflen, int flags)
{
	return (secretfile_read(put(data, len, 0600), buf, buflen, flags,
	    NULL));
}

static void
test_trailing_newline(void)
{
	char	buf[64];

	CHECK_INT(rd("pw", 2, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "pw");
	CHECK_INT(rd("pw\n", 3, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "pw");
	CHECK_INT(rd("pw\r\n", 4, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "pw");
	/* only one line end is the editor's; the rest is the value */
	CHECK_INT(rd("pw\n\n", 4, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "pw\n");
	CHECK_INT(rd("pw\r\n\r\n", 6, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "pw\r\n");
	CHECK_INT(rd(" pw \n", 5, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, " pw ");
}

static void
test_one_line(void)
{
	char	buf[64];

	CHECK_INT(rd("pw\n", 3, buf, sizeof buf, SECRETFILE_ONE_LINE), 0);
	CHECK_STR(buf, "pw");
	CHECK_INT(rd("pw\r\n", 4, buf, sizeof buf, SECRETFILE_ONE_LINE), 0);
	CHECK_STR(buf, "pw");
	/* a second line would end up in a header or a pgpass line */
	CHECK_INT(rd("pw\nX-Evil: 1\n", 13, buf, sizeof buf,
	    SECRETFILE_ONE_LINE), -EBADMSG);
	CHECK_STR(buf, "");
	CHECK_INT(rd("pw\n\n", 4, buf, sizeof buf, SECRETFILE_ONE_LINE),
	    -EBADMSG);
	CHECK_INT(rd("pw\r", 3, buf, sizeof buf, SECRETFILE_ONE_LINE),
	    -EBADMSG);
	CHECK_INT(rd("a\nb", 3, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "a\nb");
}

static void
test_too_long(void)
{
	char	buf[4], big[SECRETFILE_MAX + 10];

	CHECK_INT(rd("abc", 3, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "abc");
	CHECK_INT(rd("abc\r\n", 5, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "abc");
	CHECK_INT(rd("abcd", 4, buf, sizeof buf, 0), -EFBIG);
	CHECK_STR(buf, "");
	CHECK_INT(rd("abcd\n", 5, buf, sizeof buf, 0), -EFBIG);
	CHECK_INT(rd("abc\n\n", 5, buf, sizeof buf, 0), -EFBIG);
	CHECK_INT(rd("abcdefgh", 8, buf, sizeof buf, 0), -EFBIG);

	/* over the limit, whatever the caller's buffer */
	memset(big, 'x', sizeof big);
	{
		char	*large = malloc(2 * SECRETFILE_MAX);

		CHECK_INT(rd(big, sizeof big, large, 2 * SECRETFILE_MAX, 0),
		    -EFBIG);
		free(large);
	}
	CHECK_INT(rd("abc", 3, buf, 0, 0), -EINVAL);
}

static void
test_nul_inside(void)
{
	char	buf[64];

	CHECK_INT(rd("p\0w\n", 4, buf, sizeof buf, 0), -EBADMSG);
	CHECK_STR(buf, "");
	CHECK_INT(rd("pw\0", 3, buf, sizeof buf, 0), -EBADMSG);
	CHECK_INT(rd("\0", 1, buf, sizeof buf, 0), -EBADMSG);
}

static void
test_empty(void)
{
	char	buf[64] = "stale";

	CHECK_INT(rd("", 0, buf, sizeof buf, 0), 0);
	CHECK_STR(buf, "");
	strcpy(buf, "stale");
	CHECK_INT(rd("\n", 1, buf, sizeof buf, SECRETFILE_ONE_LINE), 0);
	CHECK_STR(buf, "");
}

static void
test_refused_files(void)
{
	char	buf[64], link[256], dir[256];

	snprintf(link, sizeof link, "%s/link", top);
	CHECK_INT(symlink(put("pw\n", 3, 0600), link), 0);
	CHECK_INT(secretfile_read(link, buf, sizeof buf, 0, NULL), -ELOOP);
	CHECK_STR(buf, "");
	snprintf(dir, sizeof dir, "%s/dir", top);
	CHECK_INT(mkdir(dir, 0700), 0);
	CHECK_INT(secretfile_read(dir, buf, sizeof buf, 0, NULL), -EINVAL);
	snprintf(dir, sizeof dir, "%s/fifo", top);
	CHECK_INT(mkfifo(dir, 0600), 0);
	/* would block on a FIFO without O_NONBLOCK */
	CHECK_INT(secretfile_read(dir, buf, sizeof buf, 0, NULL), -EINVAL);
	CHECK_INT(secretfile_read("/nonexistent/pw", buf, sizeof buf, 0,
	    NULL), -ENOENT);
}

static void
test_mode_check(void)
{
	static const struct {
		mode_t	mode;
		int	loose;
	} cases[] = {
		{ 0600, 0 }, { 0400, 0 }, { 0700, 0 },
		{ 0640, 1 }, { 0620, 1 }, { 0604, 1 }, { 0602, 1 },
		{ 0644, 1 }, { 0666, 1 },
		/* execute bits give no one the secret */
		{ 0610, 0 }, { 0601, 0 }, { 0711, 0 },
	};
	const char	*path;
	char		 buf[64];
	unsigned int	 i;
	int		 loose;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		path = put("pw\n", 3, cases[i].mode);
		loose = -1;
		CHECK_INT(secretfile_read(path, buf, sizeof buf, 0, &loose), 0);
		CHECK_STR(buf, "pw");
		if (loose != cases[i].loose)
			tap_diag("mode %04o: loose %d", (unsigned int)
			    cases[i].mode, loose);
		CHECK_INT(loose, cases[i].loose);
		CHECK_INT(secretfile_read(path, buf, sizeof buf,
		    SECRETFILE_STRICT_MODE, &loose), cases[i].loose ? -EPERM :
		    0);
		CHECK_STR(buf, cases[i].loose ? "" : "pw");
	}
}

/* Entries of dir besides "." and ".." */
static int
count_entries(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..")
		    != 0)
			n++;
	}
	closedir(d);
	return (n);
}

static void
test_write(void)
{
	struct stat	 st;
	char		 dir[256], path[300], buf[64];
	mode_t		 old;

	snprintf(dir, sizeof dir, "%s/w", top);
	CHECK_INT(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/secret", dir);

	/* the mode is the one asked for, not what the umask leaves */
	old = umask(077);
	CHECK_INT(secretfile_write(path, "s3cret\n", 7, 0640, (uid_t)-1,
	    (gid_t)-1), 0);
	umask(old);
	CHECK_INT(lstat(path, &st), 0);
	CHECK_MODE(st.st_mode & 07777, 0640);
	CHECK(S_ISREG(st.st_mode));
	CHECK_INT(secretfile_read(path, buf, sizeof buf, 0, NULL), 0);
	CHECK_STR(buf, "s3cret");

	/* replaced in place, narrower */
	CHECK_INT(secretfile_write(path, "new", 3, 0400, (uid_t)-1,
	    (gid_t)-1), 0);
	CHECK_INT(lstat(path, &st), 0);
	CHECK_MODE(st.st_mode & 07777, 0400);
	CHECK_INT(secretfile_read(path, buf, sizeof buf,
	    SECRETFILE_STRICT_MODE, NULL), 0);
	CHECK_STR(buf, "new");
	CHECK_INT(count_entries(dir), 1);

	/* the owner, when we may give files away */
	if (geteuid() == 0) {
		CHECK_INT(secretfile_write(path, "x", 1, 0600, 65534, 65533),
		    0);
		CHECK_INT(lstat(path, &st), 0);
		CHECK_UINT(st.st_uid, 65534);
		CHECK_UINT(st.st_gid, 65533);
		CHECK_MODE(st.st_mode & 07777, 0600);
		/* -1: the writer's own, not the replaced file's */
		CHECK_INT(secretfile_write(path, "y", 1, 0600, (uid_t)-1,
		    65533), 0);
		CHECK_INT(lstat(path, &st), 0);
		CHECK_UINT(st.st_uid, geteuid());
		CHECK_UINT(st.st_gid, 65533);
	}
	CHECK_INT(count_entries(dir), 1);
}

static void
test_write_failures(void)
{
	struct stat	 st;
	char		 dir[256], path[300], buf[64];

	snprintf(path, sizeof path, "%s/missing/secret", top);
	CHECK_INT(secretfile_write(path, "x", 1, 0600, (uid_t)-1, (gid_t)-1),
	    -ENOENT);

	snprintf(dir, sizeof dir, "%s/wf", top);
	CHECK_INT(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/secret", dir);
	CHECK_INT(secretfile_write(path, "old", 3, 0600, (uid_t)-1,
	    (gid_t)-1), 0);

	/* rename onto a directory fails: the old file stays, no temp file */
	snprintf(path, sizeof path, "%s/adir", dir);
	CHECK_INT(mkdir(path, 0700), 0);
	CHECK(secretfile_write(path, "x", 1, 0600, (uid_t)-1, (gid_t)-1) <
	    0);
	CHECK_INT(count_entries(dir), 2);
	CHECK_INT(lstat(path, &st), 0);
	CHECK(S_ISDIR(st.st_mode));

	/* fchown refused (not root, or an owner change we may not make) */
	if (geteuid() != 0) {
		snprintf(path, sizeof path, "%s/secret", dir);
		CHECK_INT(secretfile_write(path, "x", 1, 0600, 0, 0), -EPERM);
		CHECK_INT(count_entries(dir), 2);
	}
	snprintf(path, sizeof path, "%s/secret", dir);
	CHECK_INT(secretfile_read(path, buf, sizeof buf, 0, NULL), 0);
	CHECK_STR(buf, "old");
	CHECK_INT(secretfile_write("", "x", 1, 0600, (uid_t)-1, (gid_t)-1),
	    -EINVAL);
	CHECK_INT(secretfile_write("/tmp/", "x", 1, 0600, (uid_t)-1,
	    (gid_t)-1), -EINVAL);
}

static void
test_fingerprint(void)
{
	char	a[SECRETFILE_FP_LEN], b[SECRETFILE_FP_LEN];
	char	c[SECRETFILE_FP_LEN];
	const char *secret = "0123456789abcdef";

	secretfile_fingerprint(secret, strlen(secret), a);
	secretfile_fingerprint(secret, strlen(secret), b);
	CHECK_STR(a, b);
	CHECK_UINT(strlen(a), SECRETFILE_FP_LEN - 1);
	CHECK_UINT(strlen(a), 23);
	CHECK(strncmp(a, "sha256:", 7) == 0);
	CHECK(strspn(a + 7, "0123456789abcdef") == 16);
	CHECK(strstr(a, secret) == NULL);
	CHECK(strstr(a, "01234567") == NULL);
	/* SHA-256("abc") starts ba7816bf8f01cfea */
	secretfile_fingerprint("abc", 3, c);
	CHECK_STR(c, "sha256:ba7816bf8f01cfea");
	secretfile_fingerprint("abd", 3, c);
	CHECK(strcmp(c, "sha256:ba7816bf8f01cfea") != 0);
	secretfile_fingerprint("", 0, c);
	CHECK_STR(c, "sha256:e3b0c44298fc1c14");
}

static void
test_cleanse(void)
{
	char	buf[16];
	size_t	i;

	memset(buf, 'x', sizeof buf);
	secretfile_cleanse(buf, sizeof buf);
	for (i = 0; i < sizeof buf; i++)
		CHECK(buf[i] == 0);
}

int
main(void)
{
	char	cmd[300];
	int	r;

	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	RUN(test_trailing_newline);
	RUN(test_one_line);
	RUN(test_too_long);
	RUN(test_nul_inside);
	RUN(test_empty);
	RUN(test_refused_files);
	RUN(test_mode_check);
	RUN(test_write);
	RUN(test_write_failures);
	RUN(test_fingerprint);
	RUN(test_cleanse);
	r = tap_done();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0)
		fprintf(stderr, "# cannot remove %s\n", top);
	return (r);
}
