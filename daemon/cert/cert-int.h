/*
 * What the files of the certificate room share. cert.h is its face.
 *
 *   cert.c          the set, reload, the checks (expiry, overdue, the
 *                   served certificates), events, the list/show views
 *   cert-conf.c     the [cert NAME] schema and its checks
 *   cert-x509.c     pure PEM/X.509 work: parsing, key match, chain
 *                   verification, names, when to renew, endpoints
 *   cert-renew.c    a renewal, an op of kind cert.renew, its rollback
 *                   and its recovery after a crash
 *   cert-served.c   the certificate an endpoint serves, fetched with a
 *                   non-blocking TLS handshake (PostgreSQL: SSLRequest
 *                   first)
 *   rpc-cert.c      cert.list, cert.show, cert.check, cert.renew
 *   cert-subsys.c   the registry entry, /metrics and opsd.health
 */
#ifndef OPSD_CERT_INT_H
#define OPSD_CERT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cert.h"
#include "schedule.h"
#include "subsys.h"

struct opsd;
struct op;
struct job;
struct event;
struct rpc_pending;
struct ini_section;
struct opsd_config;
struct config_errors;
struct op_kind;
struct evbuffer;
struct health;
struct renewal;
struct served;

#define CERT_NAMES_MAX		64	/* subjectAltNames kept */
#define CERT_NAME_LEN		256
#define CERT_FILE_MAX		(1024 * 1024)	/* a PEM bundle, at most */
#define CERT_ERROR_MAX		512
#define CERT_ENDPOINTS_MAX	16

/* --- pure X.509 (cert-x509.c) ------------------------------------------- */

struct cert_info {
	char		 sha256[65];	/* hex, of the leaf's DER */
	char		 serial[132];	/* hex, upper case */
	char		 subject[CERT_NAME_LEN];
	char		 issuer[CERT_NAME_LEN];
	int64_t		 not_before;
	int64_t		 not_after;
	char		 names[CERT_NAMES_MAX][CERT_NAME_LEN];	/* DNS, IP */
	unsigned int	 nnames;
	char		 key_type[16];	/* RSA, EC, ED25519, ... */
	int		 key_bits;
	char		 sig_alg[64];
	unsigned int	 nextra;	/* certificates after the leaf */
	int		 self_signed;
};

/*
 * The first certificate of a PEM buffer (outside bytes: a renew command
 * wrote it) and what follows it. 0, or -EBADMSG with why in err.
 */
int	 cert_parse_pem(const char *buf, size_t len, struct cert_info *,
	    char *err, size_t errlen);
/* The same facts of a certificate already decoded (served ones). */
struct x509_st;
void	 cert_info_x509(struct x509_st *, struct cert_info *);
/*
 * 0 if the private key in keypem belongs to the first certificate of
 * certpem; -EBADMSG (unreadable) or -EKEYREJECTED (another key).
 */
int	 cert_key_match(const char *certpem, size_t certlen,
	    const char *keypem, size_t keylen, char *err, size_t errlen);
/*
 * Verifies the first certificate of certpem at time now, with the rest
 * of certpem and chainpem (may be NULL) as intermediates, against
 * ca_file (NULL: the system's roots). 0, or -EBADMSG with why.
 */
int	 cert_verify(const char *certpem, size_t certlen,
	    const char *chainpem, size_t chainlen, const char *ca_file,
	    int64_t now, char *err, size_t errlen);
/*
 * 1 if every name of old is covered by new (the same name, or a
 * "*.example.org" wildcard of new for one label); else 0 with the first
 * missing name in missing.
 */
int	 cert_names_cover(const struct cert_info *old,
	    const struct cert_info *new, char *missing, size_t len);
/*
 * When a certificate is due for renewal: renew_days before its end if
 * set, else when a third of its lifetime is left (half for lifetimes
 * under ten days).
 */
int64_t	 cert_renew_at(const struct cert_info *, uint64_t renew_days);

enum cert_ep_kind { CERT_EP_TLS, CERT_EP_POSTGRES };

struct cert_endpoint {
	int		 kind;
	char		 host[256];
	char		 port[8];
	char		 text[300];	/* as configured */
};

/*
 * host:port, [v6]:port, https://host[:port][/path] (port 443) or
 * postgres://host[:port] (port 5432). 0, or -EINVAL with why.
 */
int	 cert_endpoint_parse(const char *, struct cert_endpoint *, char *err,
	    size_t errlen);

/* Reads at most CERT_FILE_MAX bytes; NULL with -errno in *e. */
char	*cert_read_file(const char *path, size_t *len, int *e);

/* --- the TLS grader's verdict (cert-rate.c) ---------------------------- */

enum { TLSV_SSL3, TLSV_10, TLSV_11, TLSV_12, TLSV_13, TLSV_N };
enum { OFFER_UNKNOWN, OFFER_NO, OFFER_YES, OFFER_UNTESTABLE };
extern const char *const cert_tlsv_names[TLSV_N];

#define GRADE_CIPHERS_MAX	128
#define GRADE_FINDINGS_MAX	48

struct grade_cipher {
	char		 name[64];
	int		 version;	/* TLSV_* */
	int		 bits;
	int		 fs;		/* forward secrecy */
	int		 aead;
	int		 order;		/* as found */
};

/* What the probes found. */
struct grade_facts {
	char		 servername[256];
	char		 error[CERT_ERROR_MAX];	/* no handshake at all */
	int		 offered[TLSV_N];
	struct grade_cipher ciphers[GRADE_CIPHERS_MAX];
	unsigned int	 nciphers;
	int		 have_cert;
	char		 key_type[16];
	int		 key_bits;
	char		 sig_alg[64];
	int64_t		 not_after;
	int64_t		 now;
	int		 verify_ok;
	char		 verify_msg[160];
	int		 name_ok;
	int		 self_signed;
	int		 incomplete_chain;
	int		 chain_len;
	int		 secure_reneg;	/* -1: not known */
	int		 ocsp_stapled;
	/* HTTPS only */
	int		 https;
	int		 hsts;
	int64_t		 hsts_max_age;
	int		 hsts_sub;
	int		 hsts_preload;
	int		 error_checked;
	int		 hsts_on_error;
	int		 nosniff;
	int		 frame_ok;
	int		 csp;
	int		 referrer_ok;
	char		 referrer[64];
	int		 permissions;
	char		 server_banner[128];
	int		 insecure_cookies;
	int		 redirect_checked;
	int		 redirect_ok;
	char		 redirect_note[256];
};

struct grade_finding {
	char		 severity[12];	/* info, warn, high, critical */
	char		 id[32];
	char		 text[384];
	char		 fix[256];
};

struct grade_result {
	char		 grade[4];	/* A+ A A- B C D E F T M */
	int		 score, proto_score, kx_score, cipher_score;
	struct grade_finding findings[GRADE_FINDINGS_MAX];
	unsigned int	 nfindings;
	unsigned int	 warnings;	/* findings above info */
};

void	 cert_grade_rate(const struct grade_facts *, struct grade_result *);
/* For --min-grade: F < E < D < C < B < A- < A < A+; T and M are -1. */
int	 cert_grade_rank(const char *);
/*
 * The HTTP response head's facts (HSTS, the headers, banners, cookies)
 * into f, from the bytes of "HTTP/1.1 ..." up to the blank line; pure,
 * for the tests and the fuzz target.
 */
void	 cert_grade_headers(const char *head, size_t len, int error_response,
	    struct grade_facts *f);

/* The grader's run on the loop (cert-grade.c). */
typedef void (*grade_done_cb)(const struct cert_endpoint *,
    const struct grade_facts *, const struct grade_result *, double secs,
    void *arg);
/*
 * Starts grading target (host:port, or with starttls_pg a PostgreSQL
 * host:port); http_port (0: none) is checked for the redirect. done is
 * called once, from the loop. 0, or -EINVAL with why in err.
 */
struct grade_run;
int	 cert_grade_start(struct opsd *, const char *target,
	    const char *servername, const char *ca_file, int starttls_pg,
	    int http_port, uint64_t timeout_ms, grade_done_cb, void *arg,
	    struct grade_run **, char *err, size_t errlen);
/* Stops a run; its done callback is not called. */
void	 cert_grade_cancel(struct grade_run *);
json_t	*cert_grade_json(const struct cert_endpoint *,
	    const struct grade_facts *, const struct grade_result *,
	    double secs);

/* --- config (cert-conf.c) ---------------------------------------------- */

struct cert_conf {
	char		*name;
	int		 line;
	char		*path;
	char		*key;
	char		*chain;
	char		*ca_file;
	uint64_t	 warn_days;
	uint64_t	 renew_days;	/* 0: a third of the lifetime */
	char		*renew;
	uint64_t	 renew_timeout;
	char		**on_renew;
	unsigned int	 non_renew;
	uint64_t	 on_renew_timeout;
	uint64_t	 confirm_timeout;	/* reloads are asynchronous */
	char		**served_at;
	unsigned int	 nserved_at;
	char		*servername;
	uint64_t	 timeout;	/* of a served check */
	char		*schedule;
	struct sched_spec spec;
	uint64_t	 random_delay;
	char		**alert;
	unsigned int	 nalert;
	int		 alert_line;
	/* derived by the check */
	struct cert_endpoint eps[CERT_ENDPOINTS_MAX];
	unsigned int	 neps;
};

extern const struct ini_section cert_section;
void	 cert_conf_free(void *);
struct cert_conf *cert_conf_copy(const struct cert_conf *);
void	 cert_conf_check_refs(struct opsd_config *, struct config_errors *);

/* --- served certificates (cert-served.c) -------------------------------- */

/*
 * Called once: error NULL and info filled with the served leaf, or an
 * error (info NULL). The served is freed after it returns.
 */
/*
 * ci: the leaf the endpoint served; else error says why, and answered says
 * whether the endpoint itself answered (PostgreSQL's 'N' to the SSLRequest,
 * a handshake without a certificate: it serves no certificate) or could not
 * be asked at all (DNS, connect, timeout, a handshake that failed: what it
 * serves is unknown).
 */
typedef void (*served_cb)(struct served *, const struct cert_info *,
    const char *error, int answered, void *arg);
struct served *cert_served_start(struct opsd *, const struct cert_endpoint *,
	    const char *servername, uint64_t timeout_ms, served_cb, void *arg);
void	 cert_served_cancel(struct served *);
/*
 * The generic form, for the grader: a handshake with ctx (borrowed; the
 * versions and ciphers it allows are the caller's). done gets the SSL
 * after the handshake, or NULL with why and OpenSSL's error code (0 for
 * a connection error). The served is freed after done returns, unless
 * done took its connection with cert_served_take() (then free it with
 * cert_served_cancel()).
 */
struct ssl_st;
struct ssl_ctx_st;
struct bufferevent;
typedef void (*served_tls_cb)(struct served *, struct ssl_st *,
    const char *error, unsigned long sslerr, void *arg);
struct served *cert_served_tls(struct opsd *, const struct cert_endpoint *,
	    const char *servername, uint64_t timeout_ms, struct ssl_ctx_st *,
	    served_tls_cb, void *arg);
struct bufferevent *cert_served_take(struct served *);

/* --- the running certificate (cert.c) ----------------------------------- */

/* cert_ep_state.matches: what the last check of the endpoint found */
#define CERT_SERVED_DIFFERS	0
#define CERT_SERVED_MATCHES	1
#define CERT_SERVED_UNKNOWN	(-1)	/* could not be asked: see error */

struct cert_ep_state {
	int		 checked;
	int		 matches;	/* CERT_SERVED_* */
	char		 sha256[65];
	char		 serial[132];
	char		 error[CERT_ERROR_MAX];
	int64_t		 at;
	struct served	*q;
};

/* state_dir/certs/NAME.json */
struct cert_meta {
	int64_t		 last_ok;	/* the last renewal that succeeded */
	char		 last_result[16];
	int64_t		 last_at;
	char		 last_error[CERT_ERROR_MAX];
	char		 last_op[64];
	uint64_t	 n_ok, n_failed, n_rolled_back;
};

int	 cert_meta_parse(const char *buf, size_t len, struct cert_meta *,
	    char *err, size_t errlen);

struct cert {
	struct opsd		*opsd;
	struct cert_conf	*conf;		/* owned copy */
	struct cert_meta	 meta;
	int			 have_info;
	struct cert_info	 info;		/* the file, last read */
	char			 file_error[CERT_ERROR_MAX];
	int64_t			 checked_at;
	struct cert_ep_state	 eps[CERT_ENDPOINTS_MAX];
	unsigned int		 pending;	/* served checks in flight */
	struct rpc_pending	**waiters;	/* cert.check callers */
	unsigned int		 nwaiters;
	struct rpc_pending	**queued;	/* came during a check */
	unsigned int		 nqueued;
	int			 after_renewal;	/* confirming a renewal */
	struct renewal		*ren;
	struct job		*job;
	int			 job_running;	/* c->job started the check */
	struct event		*first_ev;
	int			 expiring_firing;
	int			 unreadable_firing;
	int			 differs_firing;
	int			 unknown_logged;	/* cert.served_unchecked */
	int			 overdue_firing;
	int			 failed_firing;
	const char		*event_error;
};

struct cert_set {
	struct cert		**v;
	unsigned int		 n;
};

struct cert_set	*cert_set_get(struct opsd *);
void		 cert_apply_config(struct opsd *);
void		 cert_stop_all(struct opsd *);
unsigned int	 cert_busy(struct opsd *);
void		 cert_free_all(struct opsd *);
struct cert	*cert_find(struct opsd *, const char *name);
/* Reads the file again into c->info; 0 or -errno (c->file_error). */
int		 cert_load(struct cert *);
/* Starts a check; waiter (may be NULL) gets cert.show's view at its end. */
void		 cert_check(struct cert *, struct rpc_pending *waiter);
int64_t		 cert_next_renewal(const struct cert *);
int		 cert_overdue(const struct cert *, int64_t now);
const char	*cert_state_word(const struct cert *);
void		 cert_event(struct cert *, const struct evt_type *,
		    const char *alert_source, int firing, const char *op,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int		 cert_meta_save(struct cert *);
/*
 * Raises or resolves "served certificate differs from the file" by the
 * last check's endpoints; again: raise it even if it is firing (a
 * renewal's confirm step failed).
 */
void		 cert_served_alert(struct cert *, int again);
/* After a renewal ended: counters, alerts. */
void		 cert_renewal_ended(struct cert *, const char *result,
		    const char *op, const char *error);
json_t		*cert_json(struct cert *, int full);
/* state_dir/certs, created 0700; free() it */
char		*cert_state_dir(struct opsd *);

/* --- renewal (cert-renew.c) --------------------------------------------- */

extern const struct op_kind cert_renew_kind;

/*
 * Starts a renewal of c; follower (may be NULL) gets cert.progress and
 * cert.finished. 0 with the op id in *id; -EBUSY, -ESHUTDOWN, ... with
 * *err (free() both).
 */
int	 cert_renew(struct cert *, int manual, struct rpc_pending *follower,
	    char **id, char **err);
/* The served checks of a renewal's confirm step ended (cert.c). */
void	 cert_renew_confirmed(struct cert *);
void	 cert_renew_abandon(struct cert *);
json_t	*cert_renew_json(const struct cert *);

/* --- metrics (cert-subsys.c) -------------------------------------------- */

void	 cert_metrics(struct opsd *, struct evbuffer *);
enum health_status cert_health(struct opsd *, struct health *);

#endif
