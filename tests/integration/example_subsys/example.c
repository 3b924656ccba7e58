/*
 * [example NAME] sections with a greeting: the smallest subsystem that
 * uses every part of the registry (core/subsys.h). It is what
 * tests/integration/test_registry.py drops into daemon/example/ of a
 * copy of the tree, to show that a subsystem is its folder plus one word
 * in daemon/meson.build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "evt.h"
#include "ini.h"
#include "metrics.h"
#include "opsd-proto.h"
#include "rpc.h"
#include "subsys.h"
#include "util.h"

static const struct evt_type EVT_EXAMPLE_APPLIED = {
	"example.applied", "a7a315a04a5d41188c4c4ccfdf8d09ae", LOG_INFO };

/* --- config ------------------------------------------------------------- */

struct example_conf {
	char		*name;		/* struct config_obj */
	int		 line;
	char		*greeting;
};

#define O(f)	offsetof(struct example_conf, f)
static const struct ini_key example_keys[] = {	/* sorted */
	{ .name = "greeting", .kind = INI_STRING, .off = O(greeting),
	  .dflt = "hello" },
};
#undef O

static const struct ini_section example_section;

static void *
example_conf_open(void *ctx, const char *name)
{
	struct opsd_config	*conf = ctx;
	struct example_conf	*ec;

	ec = xcalloc(1, sizeof *ec);
	ec->name = xstrdup(name);
	if (ini_defaults(&example_section, ec) != 0)
		fatalx("example: a built-in default does not parse");
	config_add(conf, &example_section, ec);
	return (ec);
}

static void
example_conf_check(void *ctx, void *obj, const char *file, int line,
    const int *keylines, struct config_errors *errs)
{
	struct example_conf	*ec = obj;

	(void)ctx;
	ec->line = line;
	if (ec->greeting[0] == '\0')
		ini_error(errs, file, ini_keyline(&example_section, keylines,
		    "greeting"), "greeting: must not be empty");
}

static void
example_conf_free(void *obj)
{
	struct example_conf	*ec = obj;

	ini_free(&example_section, ec);
	free(ec->name);
	free(ec);
}

static const struct ini_section example_section = {
	"example", 1, example_keys, nitems(example_keys), example_conf_open,
	example_conf_check, example_conf_free, "examples"
};

/* Across sections: no two of them greet alike. */
static void
example_check_refs(struct opsd_config *conf, struct config_errors *errs)
{
	struct example_conf	*a, *b;
	unsigned int		 i, j, n;

	n = config_count(conf, &example_section);
	for (i = 0; i < n; i++) {
		a = config_at(conf, &example_section, i);
		for (j = 0; j < i; j++) {
			b = config_at(conf, &example_section, j);
			if (strcmp(a->greeting, b->greeting) == 0)
				ini_error(errs, conf->path, a->line,
				    "[example %s]: same greeting as "
				    "[example %s]", a->name, b->name);
		}
	}
}

/* --- state -------------------------------------------------------------- */

struct example_state {
	char		**names;
	char		**greetings;
	unsigned int	  n;
	unsigned int	  applies;
};

#define EXAMPLES(o) \
	((struct example_state *)SUBSYS_STATE(o, SUBSYS_EXAMPLE))

static void
example_clear(struct example_state *s)
{
	unsigned int	i;

	for (i = 0; i < s->n; i++) {
		free(s->names[i]);
		free(s->greetings[i]);
	}
	free(s->names);
	free(s->greetings);
	s->names = s->greetings = NULL;
	s->n = 0;
}

static void
example_apply(struct opsd *o)
{
	struct example_state	*s = EXAMPLES(o);
	struct example_conf	*ec;
	struct evt		*ev;
	unsigned int		 i, n;

	if (s == NULL)
		s = o->sub[SUBSYS_EXAMPLE] = xcalloc(1, sizeof *s);
	example_clear(s);
	n = config_count(o->conf, &example_section);
	s->names = xcalloc(n + 1, sizeof *s->names);
	s->greetings = xcalloc(n + 1, sizeof *s->greetings);
	for (i = 0; i < n; i++) {
		ec = config_at(o->conf, &example_section, i);
		s->names[i] = xstrdup(ec->name);
		s->greetings[i] = xstrdup(ec->greeting);
	}
	s->n = n;
	s->applies++;

	ev = evt_new(&EVT_EXAMPLE_APPLIED);
	evt_add(ev, "objects", "%u", n);
	evt_emit(ev, "example: %u section(s) applied", n);
}

static void
example_free(struct opsd *o)
{
	struct example_state	*s = EXAMPLES(o);

	if (s == NULL)
		return;
	example_clear(s);
	free(s);
	o->sub[SUBSYS_EXAMPLE] = NULL;
}

static void
example_metrics(struct opsd *o, struct evbuffer *b)
{
	struct example_state	*s = EXAMPLES(o);

	metrics_head(b, "opsd_example_objects", "gauge",
	    "Configured [example] sections.");
	evbuffer_add_printf(b, "opsd_example_objects %u\n",
	    s != NULL ? s->n : 0);
}

/* --- methods ------------------------------------------------------------ */

struct example_hello_params {
	const char	*name;
};

static const struct rpc_param example_hello_params[] = {
	{ "name", RPC_P_STRING, offsetof(struct example_hello_params, name),
	    0, "an [example NAME] section (default: the first)" },
};

static int
example_hello_rpc(struct rpc_call *call, void *params, json_t **result)
{
	struct example_hello_params	*p = params;
	struct example_state		*s = EXAMPLES(call->opsd);
	unsigned int			 i = 0;

	if (s == NULL || s->n == 0)
		return (rpc_error(call, OPSD_ERR_NOT_FOUND,
		    "no [example] section"));
	if (p->name != NULL) {
		for (i = 0; i < s->n; i++)
			if (strcmp(s->names[i], p->name) == 0)
				break;
		if (i == s->n)
			return (rpc_error(call, OPSD_ERR_NOT_FOUND,
			    "no example named '%s'", p->name));
	}
	*result = json_pack("{s:s, s:s, s:I}", "name", s->names[i],
	    "greeting", s->greetings[i], "objects", (json_int_t)s->n);
	return (0);
}

static const struct rpc_method example_methods[] = {
	{ "example.hello", RPC_READ, "An [example] section's greeting",
	    RPC_PARAMS(example_hello_params),
	    sizeof (struct example_hello_params),
	    "{name, greeting, objects}", example_hello_rpc },
};
static const size_t example_nmethods = nitems(example_methods);

/* --- the registry entry ------------------------------------------------- */

static const struct ini_section *const example_sections[] = {
	&example_section, NULL
};

static const struct evt_type *const example_events[] = {
	&EVT_EXAMPLE_APPLIED, NULL
};

const struct subsys example_subsys = {
	.name = "example",
	.sections = example_sections,
	.check_refs = example_check_refs,
	.apply = example_apply,
	.free = example_free,
	.metrics = example_metrics,
	.methods = example_methods,
	.nmethods = &example_nmethods,
	.events = example_events,
};
