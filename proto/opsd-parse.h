/*
 * Parsers for the value syntaxes shared by opsd.conf, the RPC params and
 * opsd-cli's options: durations (30s 5m 2h 7d, 250ms), sizes (512K 1G),
 * booleans and octal modes. Each returns 0 or -EINVAL/-ERANGE.
 */
#ifndef OPSD_PARSE_H
#define OPSD_PARSE_H

#include <stdint.h>
#include <sys/types.h>

int	parse_duration(const char *s, uint64_t *msec);
int	parse_size(const char *s, uint64_t *bytes);
int	parse_bool(const char *s, int *value);
int	parse_mode(const char *s, mode_t *mode);
int	parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value);
/* Formats a duration in the largest units that keep it exact: "90s", "2h". */
void	format_duration(uint64_t msec, char *buf, size_t len);

#endif
