/*
 * Credential files (see secretfile.h). Reading is done at each use so a
 * rotated secret is picked up without a reload; the file is opened with
 * O_NOFOLLOW and O_NONBLOCK (a FIFO planted in its place must not stall
 * the event loop) and checked with fstat on the descriptor that is read.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secretfile.h"
#include "util.h"

#define LOOSE_BITS	(S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)

void
secretfile_cleanse(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}

/* Reads up to len bytes, to EOF; the count or -errno. */
static ssize_t
read_full(int fd, char *buf, size_t len)
{
	size_t	got = 0;
	ssize_t	n;

	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-errno);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return ((ssize_t)got);
}

int
secretfile_read(const char *path, char *buf, size_t len, int flags,
    int *loose)
{
	struct stat	 st;
	char		*tmp = NULL;
	size_t		 cap, n;
	ssize_t		 got;
	int		 fd, r = 0;

	if (loose != NULL)
		*loose = 0;
	if (len == 0)
		return (-EINVAL);
	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return (-errno);
	if (fstat(fd, &st) == -1) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((st.st_mode & LOOSE_BITS) != 0) {
		if (flags & SECRETFILE_STRICT_MODE) {
			r = -EPERM;
			goto out;
		}
		if (loose != NULL)
			*loose = 1;
	}
	/* the value, "\r\n", and one byte more to see that it does not fit */
	cap = len - 1 + 2;
	if (cap > SECRETFILE_MAX)
		cap = SECRETFILE_MAX;
	if (st.st_size > (off_t)cap) {
		r = -EFBIG;
		goto out;
	}
	tmp = xmalloc(cap + 1);
	if ((got = read_full(fd, tmp, cap + 1)) < 0) {
		r = (int)got;
		goto out;
	}
	n = (size_t)got;
	if (n > cap) {
		r = -EFBIG;	/* grew since fstat */
		goto out;
	}
	if (n > 0 && tmp[n - 1] == '\n') {
		n--;
		if (n > 0 && tmp[n - 1] == '\r')
			n--;
	}
	if (n >= len) {
		r = -EFBIG;
		goto out;
	}
	if (memchr(tmp, '\0', n) != NULL ||
	    ((flags & SECRETFILE_ONE_LINE) && (memchr(tmp, '\n', n) != NULL ||
	    memchr(tmp, '\r', n) != NULL))) {
		r = -EBADMSG;
		goto out;
	}
	memcpy(buf, tmp, n);
	buf[n] = '\0';
out:
	if (tmp != NULL) {
		OPENSSL_cleanse(tmp, cap + 1);
		free(tmp);
	}
	close(fd);
	return (r);
}

static int
write_all(int fd, const void *data, size_t len)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-errno);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* A new, empty temp file next to path, created with mode; fd or -errno. */
static int
tmp_create(const char *path, mode_t mode, char **tmpp)
{
	const char	*slash;
	unsigned char	 rnd[6];
	char		*tmp;
	int		 fd, tries;

	slash = strrchr(path, '/');
	for (tries = 0; tries < 16; tries++) {
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			return (-EIO);
		if (slash != NULL)
			xasprintf(&tmp, "%.*s.%s.%02x%02x%02x%02x%02x%02x",
			    (int)(slash - path + 1), path, slash + 1, rnd[0],
			    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		else
			xasprintf(&tmp, ".%s.%02x%02x%02x%02x%02x%02x", path,
			    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, mode & 07777);
		if (fd != -1) {
			*tmpp = tmp;
			return (fd);
		}
		free(tmp);
		if (errno != EEXIST)
			return (-errno);
	}
	return (-EEXIST);
}

int
secretfile_write(const char *path, const void *data, size_t len,
    mode_t mode, uid_t uid, gid_t gid)
{
	char	*tmp = NULL, *dir;
	int	 fd, dfd, r;

	if (path[0] == '\0' || path[strlen(path) - 1] == '/')
		return (-EINVAL);
	if ((fd = tmp_create(path, mode, &tmp)) < 0)
		return (fd);
	/*
	 * Owner first (fchown may clear set-id bits), then the mode, which
	 * the umask narrowed at creation; both before the first byte so no
	 * reader ever sees the secret under wider access.
	 */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchown(fd, uid, gid) == -1) {
		r = -errno;
		goto fail;
	}
	if (fchmod(fd, mode & 07777) == -1) {
		r = -errno;
		goto fail;
	}
	if ((r = write_all(fd, data, len)) != 0)
		goto fail;
	if (fsync(fd) == -1) {
		r = -errno;
		goto fail;
	}
	r = close(fd);
	fd = -1;
	if (r == -1 || rename(tmp, path) == -1) {
		r = -errno;
		goto fail;
	}
	free(tmp);

	/* the rename is durable only once the directory is synced */
	if (strrchr(path, '/') == NULL)
		dir = xstrdup(".");
	else if (strrchr(path, '/') == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	r = 0;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1)
		r = -errno;
	if (dfd != -1)
		close(dfd);
	free(dir);
	return (r);
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	free(tmp);
	return (r);
}

void
secretfile_fingerprint(const void *data, size_t len,
    char out[SECRETFILE_FP_LEN])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0, i;
	char		*p;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 8)
		fatalx("secretfile: SHA-256 is not available");
	p = out + strlen(strcpy(out, "sha256:"));
	for (i = 0; i < 8; i++)
		p += snprintf(p, 3, "%02x", md[i]);
	OPENSSL_cleanse(md, sizeof md);
}
