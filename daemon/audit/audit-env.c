/*
 * The audit's pure parts, which read bytes from outside opsd: the env
 * file parser (docker compose's .env syntax and the environment lists of
 * compose files), the strength of a value, and which keys look like
 * credentials. No I/O and no daemon state, so the unit tests and
 * fuzz/fuzz-audit-env.c call them directly.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit-int.h"
#include "util.h"

static const char *const sev_names[AUDIT_NSEV] = {
	"info", "low", "medium", "high", "critical"
};

const char *
audit_sev_name(int s)
{
	return (s >= 0 && s < AUDIT_NSEV ? sev_names[s] : "?");
}

int
audit_sev_parse(const char *s)
{
	int	i;

	for (i = 0; i < AUDIT_NSEV; i++)
		if (strcmp(s, sev_names[i]) == 0)
			return (i);
	return (-1);
}

/* --- credential-looking keys --------------------------------------------- */

static int
has_word(const char *up, const char *w)
{
	return (strstr(up, w) != NULL);
}

int
audit_key_is_credential(const char *key)
{
	char	up[256];
	size_t	i, n = strlen(key);

	if (n == 0 || n >= sizeof up)
		return (0);
	for (i = 0; i < n; i++)
		up[i] = (char)toupper((unsigned char)key[i]);
	up[n] = '\0';
	/* KEY_FILE names a file, the form every key should take */
	if (n > 5 && strcmp(up + n - 5, "_FILE") == 0)
		return (0);
	if (n > 5 && strcmp(up + n - 5, "_PATH") == 0)
		return (0);
	if (has_word(up, "PASSWORD") || has_word(up, "PASSWD") ||
	    has_word(up, "SECRET") || has_word(up, "TOKEN") ||
	    has_word(up, "CREDENTIAL") || has_word(up, "PRIVATE_KEY"))
		return (1);
	/* *KEY* but not KEYBOARD, MONKEY, KEY_ID (an identifier) */
	if (has_word(up, "_KEY") || strncmp(up, "KEY", 3) == 0 ||
	    has_word(up, "APIKEY"))
		return (!has_word(up, "KEY_ID") && !has_word(up, "KEYBOARD"));
	return (0);
}

/* --- strength ------------------------------------------------------------ */

/*
 * Values shipped in samples and tutorials. Compared case-insensitively
 * with the whole value; "your-..." and "<...>" are prefixes and shapes.
 */
static const char *const placeholders[] = {
	"12345678", "123456", "admin", "changeit", "changeme", "change_me",
	"change-me", "default", "dummy", "example", "letmein", "pass",
	"passw0rd", "password", "password1", "postgres", "qwerty", "root",
	"secret", "secure_password", "securepassword", "supersecret", "test",
	"todo", "xxx", "xxxx", "xxxxxxxx", NULL
};

static int
is_placeholder(const char *v, size_t len)
{
	size_t	i;

	for (i = 0; placeholders[i] != NULL; i++)
		if (strlen(placeholders[i]) == len &&
		    strncasecmp(placeholders[i], v, len) == 0)
			return (1);
	if (len >= 5 && (strncasecmp(v, "your-", 5) == 0 ||
	    strncasecmp(v, "your_", 5) == 0))
		return (1);
	if (len >= 7 && strncasecmp(v, "change", 6) == 0 && (v[6] == '-' ||
	    v[6] == '_' || v[6] == ' '))
		return (1);
	if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
		return (1);
	if (len >= 9 && strncasecmp(v, "example", 7) == 0)
		return (1);
	for (i = 0; i < len && (v[i] == 'x' || v[i] == 'X' || v[i] == '*'); i++)
		;
	return (len >= 3 && i == len);
}

/* log2 of the alphabets four classes make (no libm in the daemon) */
static double
log2_alpha(int n)
{
	static const struct { int n; double l; } t[] = {
		{ 10, 3.3219 }, { 26, 4.7004 }, { 32, 5.0 }, { 36, 5.1699 },
		{ 42, 5.3923 }, { 52, 5.7004 }, { 58, 5.8580 }, { 62, 5.9542 },
		{ 68, 6.0875 }, { 84, 6.3923 }, { 94, 6.5546 },
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++)
		if (t[i].n == n)
			return (t[i].l);
	return (0);
}

void
audit_strength(const char *v, size_t len, struct audit_strength *s)
{
	int	lower = 0, upper = 0, digit = 0, other = 0;
	int	alpha;
	size_t	i;

	memset(s, 0, sizeof *s);
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r')) {
		s->trailing_newline = 1;
		len--;
	}
	s->length = len;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (islower(c))
			lower = 1;
		else if (isupper(c))
			upper = 1;
		else if (isdigit(c))
			digit = 1;
		else
			other = 1;
	}
	s->classes = (unsigned int)(lower + upper + digit + other);
	alpha = lower * 26 + upper * 26 + digit * 10 + other * 32;
	s->bits = (double)len * log2_alpha((int)alpha);
	s->placeholder = is_placeholder(v, len);
	s->reference = len >= 2 && v[0] == '$' && (v[1] == '{' ||
	    isalpha((unsigned char)v[1]) || v[1] == '_');
	if (s->reference)
		s->placeholder = 1;
}

/* --- env files ----------------------------------------------------------- */

static int
key_char(int c, int first)
{
	return (c == '_' || isalpha(c) || (!first && (isdigit(c) ||
	    c == '.' || c == '-')));
}

/*
 * One value after '=': "..." with \n \t \" \\ \$ escapes, '...' taken
 * as it is, or bare up to a " #" comment with blanks trimmed. out has
 * room for the value (it is never longer than the line).
 */
static const char *
env_value(const char *p, const char *end, char *out, size_t *olen)
{
	size_t	n = 0;
	char	q;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && (*p == '"' || *p == '\'')) {
		q = *p++;
		while (p < end && *p != q) {
			if (q == '"' && *p == '\\' && p + 1 < end) {
				p++;
				out[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' :
				    *p == 'r' ? '\r' : *p;
				p++;
				continue;
			}
			out[n++] = *p++;
		}
		if (p >= end)
			return ("a quoted value has no closing quote");
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != '#')
			return ("text after a quoted value");
		*olen = n;
		return (NULL);
	}
	while (p < end) {
		if (*p == '#' && n > 0 && (out[n - 1] == ' ' ||
		    out[n - 1] == '\t'))
			break;
		out[n++] = *p++;
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t' ||
	    out[n - 1] == '\r'))
		n--;
	*olen = n;
	return (NULL);
}

int
audit_env_parse(const char *buf, size_t len, int flags, audit_env_cb cb,
    void *arg)
{
	const char	*p = buf, *end = buf + len, *eol, *s, *e, *msg;
	char		 key[256], *val;
	size_t		 klen, vlen;
	int		 line = 0;

	val = xmalloc(len + 1);
	while (p < end) {
		line++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		s = p;
		e = eol;
		p = eol < end ? eol + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		if (e > s && e[-1] == '\r')
			e--;
		if (s == e || *s == '#')
			continue;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			cb(line, NULL, NULL, 0, "a NUL byte", arg);
			continue;
		}
		if (flags & AUDIT_ENV_YAML) {
			/* "- KEY=value" list items and "KEY: value" maps */
			if (*s == '-' && s + 1 < e && s[1] == ' ') {
				s += 2;
				while (s < e && *s == ' ')
					s++;
				if (s < e && (*s == '"' || *s == '\'') &&
				    e[-1] == *s && e - s >= 2) {
					s++;
					e--;
				}
			}
		} else if ((size_t)(e - s) > 7 && strncmp(s, "export", 6) == 0 &&
		    (s[6] == ' ' || s[6] == '\t')) {
			s += 7;
			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
		}
		klen = 0;
		if (s < e && key_char((unsigned char)*s, 1))
			while (s + klen < e && klen < sizeof key - 1 &&
			    key_char((unsigned char)s[klen], 0))
				klen++;
		if (klen == 0 || klen == sizeof key - 1) {
			if (!(flags & AUDIT_ENV_YAML))
				cb(line, NULL, NULL, 0, klen == 0 ? "not KEY="
				    "VALUE" : "a key longer than 254 bytes",
				    arg);
			continue;
		}
		memcpy(key, s, klen);
		key[klen] = '\0';
		s += klen;
		if ((flags & AUDIT_ENV_YAML) && s < e && *s == ':') {
			s++;
			if (s < e && *s != ' ' && *s != '\t')
				continue;	/* "image:tag", not a key */
		} else {
			while (!(flags & AUDIT_ENV_YAML) && s < e && (*s == ' ' ||
			    *s == '\t'))
				s++;
			if (s >= e || *s != '=') {
				if (!(flags & AUDIT_ENV_YAML))
					cb(line, NULL, NULL, 0, "not KEY=VALUE",
					    arg);
				continue;
			}
			s++;
		}
		if ((msg = env_value(s, e, val, &vlen)) != NULL) {
			cb(line, NULL, NULL, 0, msg, arg);
			continue;
		}
		/* a YAML map key with nothing after it opens a nested map */
		if ((flags & AUDIT_ENV_YAML) && vlen == 0 && s[-1] == ':')
			continue;
		val[vlen] = '\0';
		cb(line, key, val, vlen, NULL, arg);
	}
	explicit_bzero(val, len + 1);
	free(val);
	return (line);
}
