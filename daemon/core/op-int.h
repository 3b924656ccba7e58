/*
 * What op.c (the journal in memory) and op-file.c (its files: parsers,
 * JSON, writes) share; nothing outside daemon/core/op*.c includes this.
 */
#ifndef OPSD_OP_INT_H
#define OPSD_OP_INT_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "op.h"

#define OP_FORMAT		1
#define OP_ID_LEN		25	/* 20261201T123456Z-3f2a9c1b */
#define OP_TIME_LEN		20	/* 2026-12-01T12:34:56Z */
#define OP_NSTEPS_MAX		64	/* steps kept per op: the last ones */
#define OP_ERROR_MAX		1024
#define OP_FILE_MAX		(64 * 1024)
#define OP_HISTORY_FILE_MAX	(8 * 1024 * 1024)
#define OP_HISTORY_FILE		"ops-history.json"

struct op_stepat {
	char	*name;
	time_t	 at;
};

struct op_datum {
	char	*key;
	char	*value;
};

struct op {
	struct op_journal	*j;		/* NULL: from a parser */
	const struct op_kind	*kind;		/* NULL: none registered */
	char			 id[OP_ID_LEN + 1];
	char			*kind_name;
	char			*object;
	unsigned int		 step;		/* into kind->steps */
	char			*step_name;	/* "" before the first */
	time_t			 started;
	time_t			 finished;
	enum op_outcome		 state;
	char			*error;
	int			 recovered;	/* left by a previous opsd */
	int			 dispatched;	/* handed to its kind */
	int			 persisted;	/* op-<id>.json written */
	uint64_t		 seq;		/* for a stable order */
	struct op_stepat	*steps;
	unsigned int		 nsteps;
	struct op_datum		 data[OP_NDATA_MAX];
	unsigned int		 ndata;
	op_listener		 listener;
	void			*listener_arg;
	TAILQ_ENTRY(op)		 entry;
};
TAILQ_HEAD(op_list, op);

struct op_journal {
	struct opsd		 *opsd;
	char			 *dir;
	const struct op_kind	**kinds;
	unsigned int		  nkinds;
	struct op_list		  running;
	struct op		**hist;		/* oldest first */
	size_t			  nhist;
	uint64_t		  seq;
};

#define OP_NOUTCOMES	(OP_ABANDONED + 1)
extern const char *const op_outcome_names[OP_NOUTCOMES];

/* Names, values and text (op-file.c). */
int	 op_kind_name_ok(const char *);
int	 op_object_ok(const char *);
int	 op_key_ok(const char *);
int	 op_value_ok(const char *);
char	*op_clean_text(const char *, size_t max);

/* Ops in memory. */
struct op *op_new(void);
void	 op_add_step(struct op *, const char *name, time_t at);
int	 op_set_datum(struct op *, const char *key, const char *value);

/* What op.list and op.show answer, and a history entry. */
json_t	*op_json(const struct op *, int with_steps);

/* The files in the state directory. */
char	*op_file_name(const struct op *);	/* "op-<id>.json" */
int	 op_write(struct op *);
void	 op_history_write(struct op_journal *);
int	 op_read_small(int dfd, const char *name, size_t max, char **buf,
	    size_t *len);

#endif /* OPSD_OP_INT_H */
