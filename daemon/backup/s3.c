#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "s3.h"
#include "util.h"

enum s3_step {
	S3_PUT,
	S3_HEAD,
	S3_DELETE,
};

struct s3_op {
	struct opsd		*opsd;
	enum s3_step		 step;
	CURL			*easy;
	struct curl_slist	*headers;
	char			*url;
	char			*userpwd;
	char			*sigv4;
	uint64_t		 size;
	uint64_t		 timeout_ms;
	uint64_t		 connect_timeout_ms;
	uint64_t		 stall_timeout_ms;
	int			 fd;
	char			 errbuf[CURL_ERROR_SIZE];
	s3_done_cb		 done;
	void			*arg;
};

int
s3_parse_url(const char *url, char **bucket, char **prefix)
{
	const char	*b, *slash;

	if (strncmp(url, "s3://", 5) != 0)
		return (-EINVAL);
	b = url + 5;
	slash = strchr(b, '/');
	if (slash == b || *b == '\0')
		return (-EINVAL);
	*bucket = slash ? xstrndup(b, (size_t)(slash - b)) : xstrdup(b);
	*prefix = xstrdup(slash ? slash + 1 : "");
	/* no trailing slash: keys are PREFIX/NAME */
	if (**prefix != '\0' && (*prefix)[strlen(*prefix) - 1] == '/')
		(*prefix)[strlen(*prefix) - 1] = '\0';
	return (0);
}

static void
s3_free(struct s3_op *op)
{
	if (op->easy != NULL) {
		http_cancel(op->easy);
		curl_easy_cleanup(op->easy);
	}
	curl_slist_free_all(op->headers);
	if (op->fd != -1)
		close(op->fd);
	if (op->userpwd != NULL)
		explicit_bzero(op->userpwd, strlen(op->userpwd));
	free(op->userpwd);
	free(op->sigv4);
	free(op->url);
	free(op);
}

void
s3_cancel(struct s3_op *op)
{
	s3_free(op);
}

static size_t
s3_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct s3_op	*op = arg;
	ssize_t		 r;

	r = read(op->fd, buf, size * n);
	return (r < 0 ? CURL_READFUNC_ABORT : (size_t)r);
}

static size_t
s3_discard(char *d, size_t size, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return (size * n);
}

static void	s3_done(CURL *, CURLcode, void *);

static int
s3_easy(struct s3_op *op)
{
	CURL	*e;

	if (op->easy != NULL)
		curl_easy_cleanup(op->easy);
	if ((e = op->easy = http_easy_create()) == NULL)
		return (-errno);
	http_easy_defaults(e);
	curl_easy_setopt(e, CURLOPT_URL, op->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, op->sigv4);
	curl_easy_setopt(e, CURLOPT_USERPWD, op->userpwd);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)op->timeout_ms);
	/*
	 * A blackholed or silent endpoint must fail an attempt in seconds,
	 * not after the whole timeout: the connect has its own bound, and
	 * a transfer that moves less than a byte a second for the stall
	 * time is given up.
	 */
	if (op->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)op->connect_timeout_ms);
	if (op->stall_timeout_ms > 0) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
		    (long)((op->stall_timeout_ms + 999) / 1000));
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s3_discard);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->headers);
	op->errbuf[0] = '\0';
	return (0);
}

static void
s3_finish(struct s3_op *op, int ok, const char *error)
{
	s3_done_cb	 done = op->done;
	void		*arg = op->arg;

	/* free first: the callback may start the next operation */
	http_cancel(op->easy);
	curl_easy_cleanup(op->easy);
	op->easy = NULL;
	done(op, ok, error, arg);
	s3_free(op);
}

static void
s3_done(CURL *easy, CURLcode code, void *arg)
{
	struct s3_op	*op = arg;
	curl_off_t	 len = -1;
	long		 status = 0;
	char		 msg[CURL_ERROR_SIZE + 96];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK) {
		curl_off_t	 conn = 0;
		const char	*hint = "";

		if (code == CURLE_OPERATION_TIMEDOUT) {
			curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &conn);
			hint = conn == 0 && op->connect_timeout_ms > 0 ?
			    " (no connection within upload_connect_timeout)" :
			    strstr(op->errbuf, "too slow") != NULL ?
			    " (stalled for upload_stall_timeout)" :
			    " (the backup's timeout)";
		}
		snprintf(msg, sizeof msg, "%s %s: %s%s", op->step == S3_PUT ?
		    "upload to" : op->step == S3_HEAD ? "checking" : "deleting",
		    op->url, op->errbuf[0] ? op->errbuf :
		    curl_easy_strerror(code), hint);
		s3_finish(op, 0, msg);
		return;
	}
	switch (op->step) {
	case S3_PUT:
		if (status < 200 || status >= 300) {
			snprintf(msg, sizeof msg, "upload to %s refused: HTTP "
			    "%ld%s", op->url, status, status == 403 ?
			    " (wrong access key or secret, or clock skew)" :
			    "");
			s3_finish(op, 0, msg);
			return;
		}
		/* check that the object is there, with every byte */
		op->step = S3_HEAD;
		close(op->fd);
		op->fd = -1;
		curl_slist_free_all(op->headers);
		op->headers = curl_slist_append(NULL,
		    "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb924"
		    "27ae41e4649b934ca495991b7852b855");
		if (s3_easy(op) != 0) {
			s3_finish(op, 0, "out of memory");
			return;
		}
		curl_easy_setopt(op->easy, CURLOPT_NOBODY, 1L);
		if (http_start(op->opsd, op->easy, s3_done, op) != 0)
			s3_finish(op, 0, "cannot start the HEAD request");
		return;
	case S3_HEAD:
		curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
		    &len);
		if (status != 200 || len != (curl_off_t)op->size) {
			snprintf(msg, sizeof msg, "after upload, %s has HTTP "
			    "%ld and %lld bytes, expected %llu", op->url,
			    status, (long long)len,
			    (unsigned long long)op->size);
			s3_finish(op, 0, msg);
			return;
		}
		s3_finish(op, 1, NULL);
		return;
	case S3_DELETE:
		if (status != 204 && status != 200 && status != 404) {
			snprintf(msg, sizeof msg, "delete of %s: HTTP %ld",
			    op->url, status);
			s3_finish(op, 0, msg);
			return;
		}
		s3_finish(op, 1, NULL);
		return;
	}
}

static struct s3_op *
s3_new(const struct s3_target *t, const char *key, s3_done_cb done, void *arg)
{
	struct s3_op	*op;
	char		*ekey;
	CURL		*tmp;

	op = xcalloc(1, sizeof *op);
	op->fd = -1;
	op->done = done;
	op->arg = arg;
	op->opsd = t->opsd;
	op->timeout_ms = t->timeout_ms;
	op->connect_timeout_ms = t->connect_timeout_ms;
	op->stall_timeout_ms = t->stall_timeout_ms;
	/* keep '/' in keys, escape the rest of each segment */
	/* no handle (no libcurl): s3_easy() fails the same way next */
	tmp = http_easy_create();
	ekey = tmp != NULL ? curl_easy_escape(tmp, key, 0) : NULL;
	for (char *p = ekey; p != NULL && (p = strstr(p, "%2F")) != NULL; ) {
		*p = '/';
		memmove(p + 1, p + 3, strlen(p + 3) + 1);
	}
	xasprintf(&op->url, "%s/%s/%s", t->endpoint, t->bucket,
	    ekey != NULL ? ekey : key);
	curl_free(ekey);
	curl_easy_cleanup(tmp);
	xasprintf(&op->userpwd, "%s:%s", t->access_key, t->secret_key);
	xasprintf(&op->sigv4, "aws:amz:%s:s3", t->region);
	return (op);
}

struct s3_op *
s3_upload(const struct s3_target *t, const char *key, const char *path,
    uint64_t size, const char *sha256_hex, s3_done_cb done, void *arg)
{
	struct s3_op	*op;
	struct stat	 st;
	char		*hdr;

	op = s3_new(t, key, done, arg);
	op->step = S3_PUT;
	op->size = size;
	/* never through a symlink: what goes off-site is the file here */
	if ((op->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    fstat(op->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		s3_free(op);
		return (NULL);
	}
	xasprintf(&hdr, "x-amz-content-sha256: %s", sha256_hex);
	op->headers = curl_slist_append(op->headers, hdr);
	free(hdr);
	op->headers = curl_slist_append(op->headers,
	    "Content-Type: application/octet-stream");
	if (s3_easy(op) != 0) {
		s3_free(op);
		return (NULL);
	}
	curl_easy_setopt(op->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(op->easy, CURLOPT_READFUNCTION, s3_read_cb);
	curl_easy_setopt(op->easy, CURLOPT_READDATA, op);
	curl_easy_setopt(op->easy, CURLOPT_INFILESIZE_LARGE,
	    (curl_off_t)size);
	if (http_start(op->opsd, op->easy, s3_done, op) != 0) {
		s3_free(op);
		return (NULL);
	}
	return (op);
}

struct s3_op *
s3_delete(const struct s3_target *t, const char *key, s3_done_cb done,
    void *arg)
{
	struct s3_op	*op;

	op = s3_new(t, key, done, arg);
	op->step = S3_DELETE;
	op->headers = curl_slist_append(NULL,
	    "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
	if (s3_easy(op) != 0) {
		s3_free(op);
		return (NULL);
	}
	curl_easy_setopt(op->easy, CURLOPT_CUSTOMREQUEST, "DELETE");
	if (http_start(op->opsd, op->easy, s3_done, op) != 0) {
		s3_free(op);
		return (NULL);
	}
	return (op);
}
