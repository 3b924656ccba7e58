/*
 * The HTTP/1.1 response parser of the plain-http probe transport, as a
 * pure function: bytes in, the status, the headers the caller asks to
 * see, the body and how it is framed (Content-Length, chunked or until
 * the close) out, or an error that says what was wrong. No sockets, no
 * allocation: probe-http.c feeds it what a bufferevent read, the unit
 * tests and the fuzz target feed it strings in pieces.
 *
 * The caller keeps the bytes the parser did not consume (at most an
 * incomplete line) and presents them again, followed by what arrives
 * next: a line is only parsed whole, and the parser holds no copy.
 */
#ifndef OPSD_HTTP_PARSE_H
#define OPSD_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* The status line and the headers together; and the trailer section. */
#define HTTP_HEADER_MAX		(64 * 1024)
/* Body bytes: a health check that reads more is not one. */
#define HTTP_BODY_MAX		(16 * 1024 * 1024)

enum http_framing {
	HTTP_FRAME_NONE,	/* HEAD, 204, 304, Content-Length: 0 */
	HTTP_FRAME_LENGTH,	/* Content-Length */
	HTTP_FRAME_CHUNKED,
	HTTP_FRAME_CLOSE,	/* until the server closes */
};

enum http_parse_rc {
	HTTP_PARSE_ERROR = -1,
	HTTP_PARSE_MORE = 0,	/* all usable bytes consumed; feed more */
	HTTP_PARSE_DONE = 1,	/* the response is whole */
};

struct http_resp {
	/* set by the caller (http_resp_init, then these) */
	int		  head;		/* the request was HEAD: no body */
	uint64_t	  header_max;	/* 0: HTTP_HEADER_MAX */
	uint64_t	  body_max;	/* 0: HTTP_BODY_MAX */
	/* each header of the final response, name and value trimmed */
	void		(*on_header)(void *, const char *, size_t,
			    const char *, size_t);
	/* each piece of the decoded body */
	void		(*on_body)(void *, const char *, size_t);
	/* a new status line: headers seen so far were of a 1xx */
	void		(*on_status)(void *);
	void		 *arg;

	/* results */
	int		  major, minor;
	int		  status;
	enum http_framing framing;
	int		  keep_alive;	/* the connection may carry another */
	int64_t		  content_length;	/* -1: none */
	uint64_t	  body_bytes;
	uint64_t	  nread;	/* bytes consumed, all of the response */
	char		  error[160];	/* after HTTP_PARSE_ERROR */

	/* the parser's own */
	int		  state;
	uint64_t	  hdr_bytes;	/* of the section being read */
	uint64_t	  remain;	/* of the Content-Length or chunk */
	int		  chunked;	/* Transfer-Encoding ends in chunked */
	int		  te;		/* any Transfer-Encoding */
	int		  conn_close, conn_keep;
};

void	http_resp_init(struct http_resp *);
/*
 * Parses what it can of buf[0..len); *used says how much it consumed.
 * After HTTP_PARSE_DONE, buf[*used..len) is not part of this response.
 */
int	http_parse_response(struct http_resp *, const char *buf, size_t len,
	    size_t *used);
/*
 * The server closed the connection; pending: the bytes not consumed.
 * HTTP_PARSE_DONE if that ends a close-delimited body, else
 * HTTP_PARSE_ERROR with the reason.
 */
int	http_parse_eof(struct http_resp *, size_t pending);
/* Where the parser stands, for a reason: "status line", "headers", ... */
const char *http_parse_where(const struct http_resp *);

#endif
