/*
 * libFuzzer target for the bytes the audit reads from env files it does
 * not own (audit_env_parse in both modes) and the values in them
 * (audit_strength, audit_key_is_credential). Besides crashes it checks
 * what the checks rely on: line numbers only grow and stay within the
 * input, a key is a non-empty identifier, and a value is never longer
 * than its input.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct ctx {
	size_t	size;
	int	last;
};

static void
cb(int line, const char *key, const char *value, size_t vlen,
    const char *msg, void *arg)
{
	struct ctx		*x = arg;
	struct audit_strength	 s;

	if (line < x->last || line <= 0 || (size_t)line > x->size + 1)
		abort();
	x->last = line;
	if (key == NULL) {
		if (msg == NULL || *msg == '\0')
			abort();
		return;
	}
	if (key[0] == '\0' || (!isalpha((unsigned char)key[0]) &&
	    key[0] != '_'))
		abort();
	if (vlen > x->size || value[vlen] != '\0')
		abort();
	(void)audit_key_is_credential(key);
	audit_strength(value, vlen, &s);
	if (s.length > vlen || s.classes > 4)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx	x;

	x.size = size;
	x.last = 0;
	audit_env_parse((const char *)data, size, 0, cb, &x);
	x.last = 0;
	audit_env_parse((const char *)data, size, AUDIT_ENV_YAML, cb, &x);
	return (0);
}
