/*
 * Value syntaxes. A duration is one or more <number><unit> groups
 * ("1h30m"); a bare number is seconds, as in systemd. Sizes use binary
 * multiples (1K = 1024), as in nginx and systemd.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "opsd-parse.h"

static int
parse_number(const char **sp, uint64_t *v)
{
	const char	*s = *sp;
	uint64_t	 n = 0;

	if (!isdigit((unsigned char)*s))
		return (-EINVAL);
	for (; isdigit((unsigned char)*s); s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			return (-ERANGE);
		n = n * 10 + d;
	}
	*sp = s;
	*v = n;
	return (0);
}

static int
mul_add(uint64_t *total, uint64_t n, uint64_t unit)
{
	if (unit != 0 && n > UINT64_MAX / unit)
		return (-ERANGE);
	if (*total > UINT64_MAX - n * unit)
		return (-ERANGE);
	*total += n * unit;
	return (0);
}

int
parse_duration(const char *s, uint64_t *msec)
{
	static const struct {
		const char	*name;
		uint64_t	 ms;
	} units[] = {	/* longest first so "ms" wins over "m" */
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 3600 * 1000 },
		{ "d", 86400 * 1000 },
		{ "w", 7 * 86400 * 1000ULL },
	};
	uint64_t	 total = 0, n;
	size_t		 i, len;
	int		 r, groups = 0;

	if (s == NULL || *s == '\0')
		return (-EINVAL);
	while (*s != '\0') {
		if ((r = parse_number(&s, &n)) != 0)
			return (r);
		if (*s == '\0') {
			if (groups > 0)		/* "1h30" is ambiguous */
				return (-EINVAL);
			if ((r = mul_add(&total, n, 1000)) != 0)
				return (r);
			*msec = total;
			return (0);
		}
		for (i = 0; i < sizeof units / sizeof units[0]; i++) {
			len = strlen(units[i].name);
			if (strncmp(s, units[i].name, len) == 0 &&
			    !isalpha((unsigned char)s[len]))
				break;
		}
		if (i == sizeof units / sizeof units[0])
			return (-EINVAL);
		if ((r = mul_add(&total, n, units[i].ms)) != 0)
			return (r);
		s += len;
		groups++;
	}
	*msec = total;
	return (0);
}

int
parse_size(const char *s, uint64_t *bytes)
{
	uint64_t	 n, unit = 1;
	int		 r;

	if (s == NULL)
		return (-EINVAL);
	if ((r = parse_number(&s, &n)) != 0)
		return (r);
	switch (toupper((unsigned char)*s)) {
	case '\0':
		break;
	case 'K':
		unit = 1ULL << 10;
		break;
	case 'M':
		unit = 1ULL << 20;
		break;
	case 'G':
		unit = 1ULL << 30;
		break;
	case 'T':
		unit = 1ULL << 40;
		break;
	default:
		return (-EINVAL);
	}
	if (*s != '\0') {
		s++;
		if (*s == 'B' || *s == 'b')	/* accept "512KB" too */
			s++;
		if (*s != '\0')
			return (-EINVAL);
	}
	if (n > UINT64_MAX / unit)
		return (-ERANGE);
	*bytes = n * unit;
	return (0);
}

int
parse_bool(const char *s, int *value)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	size_t	i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*value = 1;
			return (0);
		}
		if (strcasecmp(s, no[i]) == 0) {
			*value = 0;
			return (0);
		}
	}
	return (-EINVAL);
}

int
parse_mode(const char *s, mode_t *mode)
{
	unsigned long	 v;
	char		*end;

	if (*s < '0' || *s > '7')
		return (-EINVAL);
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || *end != '\0' || v > 07777)
		return (-EINVAL);
	*mode = (mode_t)v;
	return (0);
}

int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value)
{
	uint64_t	n;
	int		r;

	if ((r = parse_number(&s, &n)) != 0)
		return (r);
	if (*s != '\0')
		return (-EINVAL);
	if (n < min || n > max)
		return (-ERANGE);
	*value = n;
	return (0);
}

void
format_duration(uint64_t msec, char *buf, size_t len)
{
	static const struct {
		char		 unit;
		uint64_t	 ms;
	} units[] = {
		{ 'd', 86400 * 1000 }, { 'h', 3600 * 1000 }, { 'm', 60 * 1000 },
		{ 's', 1000 },
	};
	size_t	i;

	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (msec != 0 && msec % units[i].ms == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(msec / units[i].ms),
			    units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%llums", (unsigned long long)msec);
}
