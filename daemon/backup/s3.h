/*
 * Off-site copies to S3-compatible storage with libcurl's SigV4 signing
 * (CURLOPT_AWS_SIGV4), on the curl multi handle: PUT streamed from the
 * file (never loaded into memory) with x-amz-content-sha256 set to the
 * file's SHA-256 (curl 7.88 does not add it), HEAD to check the size, and
 * DELETE for remote retention. Path-style URLs: ENDPOINT/BUCKET/KEY.
 */
#ifndef OPSD_S3_H
#define OPSD_S3_H

#include <stdint.h>

struct opsd;

struct s3_target {
	struct opsd	*opsd;		/* whose transfers (its multi handle) */
	const char	*endpoint;	/* http(s)://host:port */
	const char	*region;
	const char	*bucket;
	const char	*access_key;
	const char	*secret_key;
	uint64_t	 timeout_ms;		/* a whole request */
	uint64_t	 connect_timeout_ms;	/* 0: curl's default */
	uint64_t	 stall_timeout_ms;	/* nothing moved for so long */
};

struct s3_op;
/* ok: 1/0; error: a message when !ok. */
typedef void (*s3_done_cb)(struct s3_op *, int ok, const char *error,
    void *arg);

/*
 * PUT then HEAD: done when the object is there with the right size.
 * path is opened with O_NOFOLLOW and must be a regular file.
 */
struct s3_op *s3_upload(const struct s3_target *, const char *key,
	    const char *path, uint64_t size, const char *sha256_hex,
	    s3_done_cb, void *arg);
struct s3_op *s3_delete(const struct s3_target *, const char *key,
	    s3_done_cb, void *arg);
void	 s3_cancel(struct s3_op *);

/* "s3://bucket/some/prefix" -> bucket, prefix (may be ""). */
int	 s3_parse_url(const char *url, char **bucket, char **prefix);

#endif
