/*
 * opsd --dump-writer FIFO FILE: the child a backup run writes its dump
 * with, so that no dump byte passes through the event loop.
 *
 * pg_dump (a child of opsd, as before) writes its custom-format archive
 * into FIFO (--file=FIFO: not seekable, so the bytes are those it writes
 * to a pipe); this process reads the FIFO, appends to FILE (the run's
 * .partial, created by opsd), hashes with SHA-256 and starts writeback
 * every SYNC_EVERY bytes, and at EOF syncs the data (fdatasync: the
 * run's syncing step, `sync --data`, then finds nothing left). It prints
 *
 *	SHA256HEX BYTES
 *
 * on stdout and exits 0; on an error it prints one line on stderr (the
 * run's error) and exits 1. Its death closes the FIFO's last reader, so
 * pg_dump ends on a broken pipe: it dies with opsd (PR_SET_PDEATHSIG),
 * and a kill -9 of opsd leaves no dump running.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backup.h"

#define SYNC_EVERY	(16 * 1024 * 1024)
#define CHUNK		(1024 * 1024)

static int	fail(const char *, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return (1);
}

static int
write_fail(const char *file, int e)
{
	return (fail("%s writing %s%s", strerror(e), file, e == ENOSPC ||
	    e == EDQUOT ? " (disk full)" : ""));
}

/* FIFO to file, hashed; the digest into md. 0, or 1 with the reason said. */
static int
copy(int in, int out, const char *file, unsigned char *md,
    unsigned int *mdlen, unsigned long long *bytes)
{
	unsigned long long synced = 0;
	EVP_MD_CTX	*sha;
	char		*buf;
	ssize_t		 n, w;
	size_t		 off;
	int		 r = 1;

	*bytes = 0;
	buf = malloc(CHUNK);
	sha = EVP_MD_CTX_new();
	if (buf == NULL || sha == NULL ||
	    EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
		fail("out of memory");
		goto out;
	}
	for (;;) {
		n = read(in, buf, CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fail("reading pg_dump's output: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		for (off = 0; off < (size_t)n; off += (size_t)w) {
			w = write(out, buf + off, (size_t)n - off);
			if (w == -1 && errno == EINTR)
				w = 0;
			else if (w == -1) {
				write_fail(file, errno);
				goto out;
			}
		}
		EVP_DigestUpdate(sha, buf, (size_t)n);
		*bytes += (unsigned long long)n;
		/* start writeback early: the final fsync has little left */
		if (*bytes - synced >= SYNC_EVERY) {
			sync_file_range(out, (off_t)synced,
			    (off_t)(*bytes - synced), SYNC_FILE_RANGE_WRITE);
			synced = *bytes;
		}
	}
	/*
	 * The data on disk before opsd hears of the end: the journal entry
	 * of the next step is fsynced on the loop, and on ext4 (data=ordered)
	 * that commit would otherwise wait for whatever of this file is
	 * still in writeback (0.1-0.5 s seen at 1 GB).
	 */
	if (fdatasync(out) == -1) {
		write_fail(file, errno);
		goto out;
	}
	EVP_DigestFinal_ex(sha, md, mdlen);
	r = 0;
out:
	EVP_MD_CTX_free(sha);
	free(buf);
	return (r);
}

int
backup_dump_writer(int argc, char **argv)
{
	const char		*fifo, *file;
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0, i;
	unsigned long long	 bytes = 0;
	struct stat		 st;
	pid_t			 parent = getppid();
	int			 in, out, r;

	if (argc != 3)
		return (fail("usage: opsd --dump-writer FIFO FILE"));
	fifo = argv[1];
	file = argv[2];
	/* opsd gone (kill -9): stop, and pg_dump stops on the broken pipe */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		return (1);
	if ((out = open(file, O_WRONLY | O_CLOEXEC)) == -1)
		return (fail("cannot open %s: %s", file, strerror(errno)));
#ifdef OPSD_FAULT_INJECTION
	{
		/* tests: a writer that starts late, as on a loaded host */
		const char	*d = getenv("OPSD_WRITER_DELAY_MS");

		if (d != NULL)
			usleep((useconds_t)atoi(d) * 1000);
	}
#endif
	/*
	 * Without O_NONBLOCK this open waits for a writer to come, and none
	 * would if pg_dump had already written a small dump into the FIFO's
	 * buffer and exited. opsd holds a write end until pg_dump has ended,
	 * so the blocking reads below see the end of the dump only then.
	 */
	if ((in = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1 ||
	    fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK) == -1) {
		r = fail("cannot open %s: %s", fifo, strerror(errno));
		if (in != -1)
			close(in);
		close(out);
		return (r);
	}
	/*
	 * The name stays: pg_dump may not have opened it yet (opsd removes
	 * it when the run ends).
	 */
	if (fstat(in, &st) == -1 || !S_ISFIFO(st.st_mode))
		r = fail("%s is not a FIFO", fifo);
	else {
		/* fewer, larger reads: pg_dump writes a few KiB at a time */
		(void)fcntl(in, F_SETPIPE_SZ, CHUNK);
		r = copy(in, out, file, md, &mdlen, &bytes);
	}
	close(in);
	/* a write error the file system kept until now shows at close */
	if (close(out) == -1 && r == 0)
		r = write_fail(file, errno);
	if (r != 0)
		return (r);
	for (i = 0; i < mdlen; i++)
		printf("%02x", md[i]);
	printf(" %llu\n", bytes);
	return (fflush(stdout) == 0 ? 0 : 1);
}
