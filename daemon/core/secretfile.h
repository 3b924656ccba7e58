/*
 * Credential files: the one place that reads and writes them, so every
 * secret gets the same checks (no symlink, a size limit, no NUL byte,
 * the mode) and every write the same order (owner and mode before the
 * first byte, then an atomic rename). A secret is shown as its
 * fingerprint, never as itself.
 */
#ifndef OPSD_SECRETFILE_H
#define OPSD_SECRETFILE_H

#include <sys/types.h>

#include <stddef.h>

/* A file larger than this is not a credential. */
#define SECRETFILE_MAX		65536

/* secretfile_read() flags */
#define SECRETFILE_ONE_LINE	0x01	/* a CR or LF in the value: -EBADMSG */
#define SECRETFILE_STRICT_MODE	0x02	/* group/other access: -EPERM */

/*
 * Reads the secret in path into buf as a string: the whole file less one
 * trailing "\n" or "\r\n" (so "pw\n\n" reads as "pw\n"). An empty file
 * reads as "". Refused: a symlink (-ELOOP), anything but a regular file
 * (-EINVAL), a file over SECRETFILE_MAX or a value that does not fit in
 * len - 1 bytes (-EFBIG), a NUL byte in the value (-EBADMSG).
 *
 * A file that group or other may read or write is refused with -EPERM
 * under SECRETFILE_STRICT_MODE; otherwise it is read and *loose (when not
 * NULL) is set to 1 so the caller can warn. Returns 0 or -errno; on error
 * buf holds "".
 */
int	 secretfile_read(const char *path, char *buf, size_t len, int flags,
	    int *loose);

/*
 * Replaces path with len bytes of data: a temp file in the same
 * directory, created exclusively with mode, its owner (uid, gid;
 * (uid_t)-1 or (gid_t)-1 leaves that one as created, the writer's, not
 * the replaced file's) and mode set before the first byte, written, synced, renamed into place, the directory synced.
 * The temp file is removed on any failure. Returns 0 or -errno.
 */
int	 secretfile_write(const char *path, const void *data, size_t len,
	    mode_t mode, uid_t uid, gid_t gid);

/*
 * "sha256:" and the first 8 bytes of the SHA-256 of data in hex: enough
 * to tell two versions of a secret apart in logs and RPC results, and
 * nothing to guess it from.
 */
#define SECRETFILE_FP_LEN	(sizeof "sha256:" - 1 + 16 + 1)
void	 secretfile_fingerprint(const void *data, size_t len,
	    char out[SECRETFILE_FP_LEN]);

/* Wipes a buffer that held a secret (the compiler may not drop it). */
void	 secretfile_cleanse(void *, size_t);

#endif
