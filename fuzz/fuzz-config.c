/*
 * libFuzzer target for opsd.conf: config_parse() on arbitrary bytes, the
 * way --check-config and a reload read a file. Besides crashes it checks
 * that a file is either accepted with no error or rejected with at least
 * one, and that every error is "fuzz.conf:LINE: message" or
 * "fuzz.conf: message" with a line that exists in the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define NAME	"fuzz.conf"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_error(const char *e, size_t nlines)
{
	const char	*p;
	char		*end;
	unsigned long	 line;

	if (strncmp(e, NAME ":", strlen(NAME ":")) != 0)
		abort();
	p = e + strlen(NAME ":");
	if (*p == ' ')
		return;		/* no line: about the whole file */
	line = strtoul(p, &end, 10);
	if (end == p || strncmp(end, ": ", 2) != 0)
		abort();
	if (line == 0 || line > nlines)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors	 errs = { NULL, 0 };
	struct opsd_config	*conf;
	size_t			 nlines = 1, i;
	unsigned int		 j;

	for (i = 0; i < size; i++)
		if (data[i] == '\n')
			nlines++;
	conf = config_parse(NAME, (const char *)data, size, &errs);
	if ((conf == NULL) != (errs.n > 0))
		abort();
	for (j = 0; j < errs.n; j++)
		check_error(errs.v[j], nlines);
	config_free(conf);
	config_errors_clear(&errs);
	return (0);
}
