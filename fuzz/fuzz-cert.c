/*
 * libFuzzer target for what the certificate room reads from outside: the
 * PEM a renew command wrote (cert_parse_pem, and cert_key_match with the
 * input split in two at its first byte's offset), a served_at endpoint
 * as the config gives it, the state file certs/NAME.json, and the HTTP
 * response head a graded server sends (cert_grade_headers). Besides
 * crashes it checks what the rest of the daemon relies on: a parsed
 * certificate's fingerprint is 64 hex digits and its names and subject
 * are printable and NUL-terminated within their buffers.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
printable(const char *s, size_t max)
{
	size_t	n = strnlen(s, max);

	if (n == max)
		abort();
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cert_info	 ci;
	struct cert_endpoint	 ep;
	struct cert_meta	 m;
	const char		*p = (const char *)data;
	char			 err[256], *s;
	size_t			 cut, i;

	if (cert_parse_pem(p, size, &ci, err, sizeof err) == 0) {
		if (strlen(ci.sha256) != 64 || strspn(ci.sha256,
		    "0123456789abcdef") != 64 || ci.nnames > CERT_NAMES_MAX)
			abort();
		printable(ci.subject, sizeof ci.subject);
		printable(ci.issuer, sizeof ci.issuer);
		for (i = 0; i < ci.nnames; i++)
			printable(ci.names[i], CERT_NAME_LEN);
	} else if (err[0] == '\0')
		abort();
	cut = size > 0 ? data[0] % (size + 1) : 0;
	(void)cert_key_match(p, cut, p + cut, size - cut, err, sizeof err);

	(void)cert_meta_parse(p, size, &m, err, sizeof err);

	{
		struct grade_facts	*f = calloc(1, sizeof *f);

		cert_grade_headers(p, size, size > 0 && data[0] & 1, f);
		printable(f->server_banner, sizeof f->server_banner);
		printable(f->referrer, sizeof f->referrer);
		if (f->hsts_max_age < 0 || f->insecure_cookies < 0)
			abort();
		free(f);
	}

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (cert_endpoint_parse(s, &ep, err, sizeof err) == 0) {
		if (ep.host[0] == '\0' || atoi(ep.port) < 1 ||
		    atoi(ep.port) > 65535)
			abort();
		for (i = 0; ep.host[i] != '\0'; i++)
			if (!isalnum((unsigned char)ep.host[i]) &&
			    strchr(".-_:", ep.host[i]) == NULL)
				abort();
	}
	free(s);
	return (0);
}
