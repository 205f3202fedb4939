/*
 * Backend selection: the command-line spelling "KIND[:ARG]" picks a
 * constructor. Each constructor checks its own argument; this file only
 * splits the spelling and says which kinds exist.
 */
#include "net/backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/compiler.h"
#include "core/log.h"

typedef struct net_backend *(*backend_ctor)(struct event_loop *loop, const char *arg,
					    struct errbuf *eb);
typedef int (*backend_queues_ctor)(struct event_loop *const *loops, unsigned n, const char *arg,
				   struct net_backend **out, struct errbuf *eb);

enum arg_rule {
	ARG_REQUIRED,      /* KIND:ARG, ARG not empty */
	ARG_OPTIONAL,      /* KIND or KIND:ARG */
	ARG_NONE,          /* KIND alone */
};

struct backend_kind {
	const char *kind;
	enum arg_rule rule;
	const char *usage;
	/* Kinds with one queue have create; those that can serve several
	 * queue pairs have create_queues, which also makes the one pair. */
	backend_ctor create;
	backend_queues_ctor create_queues;
};

static const struct backend_kind kinds[] = {
	{ "tap", ARG_REQUIRED, "tap:NAME", NULL, net_tap_create_queues },
	{ "tap-fd", ARG_REQUIRED, "tap-fd:N", NULL, net_tap_fd_create_queues },
	{ "user", ARG_OPTIONAL, "user[:OPTIONS]", net_slirp_create, NULL },
	{ "stream", ARG_REQUIRED, "stream:PATH", net_stream_create, NULL },
	{ "loopback", ARG_NONE, "loopback", NULL, net_loopback_create_queues },
};

static const struct backend_kind *find_kind(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		if (strlen(kinds[i].kind) == len && !strncmp(kinds[i].kind, name, len))
			return &kinds[i];
	}
	return NULL;
}

/* check_arg - the argument's presence against the kind's rule: 0 or -EINVAL. */
static int check_arg(const struct backend_kind *k, const char *arg, struct errbuf *eb)
{
	if (k->rule == ARG_REQUIRED && (!arg || !*arg)) {
		errbuf_set(eb, "network backend %s needs an argument: %s", k->kind, k->usage);
		return -EINVAL;
	}
	if (k->rule == ARG_NONE && arg) {
		errbuf_set(eb, "network backend %s takes no argument: %s", k->kind, k->usage);
		return -EINVAL;
	}
	return 0;
}

/* parse_spec - "KIND[:ARG]" into its kind and argument (NULL when none):
 * 0 or -EINVAL. */
static int parse_spec(const char *spec, const struct backend_kind **kind, const char **arg,
		      struct errbuf *eb)
{
	if (!spec || !*spec) {
		errbuf_set(eb,
			   "no network backend given: expected tap:NAME, tap-fd:N, "
			   "user[:OPTIONS], stream:PATH or loopback");
		return -EINVAL;
	}
	const char *colon = strchr(spec, ':');
	size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
	const struct backend_kind *k = find_kind(spec, kind_len);
	if (!k) {
		errbuf_set(eb,
			   "unknown network backend \"%.*s\": expected tap:NAME, tap-fd:N, "
			   "user[:OPTIONS], stream:PATH or loopback", (int)MIN(kind_len, 64), spec);
		return -EINVAL;
	}
	*kind = k;
	*arg = colon ? colon + 1 : NULL;
	if (check_arg(k, *arg, eb))
		return -EINVAL;
	/* "user:" with nothing after it means the defaults. */
	if (*arg && !**arg)
		*arg = NULL;
	return 0;
}

/* check_queues - can kind @k serve @n queue pairs? 0 or -EINVAL. */
static int check_queues(const struct backend_kind *k, unsigned n, struct errbuf *eb)
{
	if (n == 0 || n > NET_BACKEND_MAX_QUEUES) {
		errbuf_set(eb, "network backend %s: %u queue pairs: between 1 and %u", k->kind, n,
			   NET_BACKEND_MAX_QUEUES);
		return -EINVAL;
	}
	if (n > 1 && !k->create_queues) {
		errbuf_set(eb,
			   "network backend %s has one queue: it cannot serve %u queue pairs "
			   "(use one queue pair, or tap, tap-fd or loopback)", k->kind, n);
		return -EINVAL;
	}
	return 0;
}

int net_backend_create_queues(const char *spec, struct event_loop *const *loops, unsigned n,
			      struct net_backend **out, struct errbuf *eb)
{
	const struct backend_kind *k = NULL;
	const char *arg = NULL;

	for (unsigned i = 0; i < MIN(n, NET_BACKEND_MAX_QUEUES); i++)
		out[i] = NULL;
	int r = parse_spec(spec, &k, &arg, eb);
	if (r || (r = check_queues(k, n, eb)))
		return r;
	if (k->create_queues)
		return k->create_queues(loops, n, arg, out, eb);
	/* One queue, and a constructor that says why only in words. */
	out[0] = k->create(loops[0], arg, eb);
	return out[0] ? 0 : -EINVAL;
}

struct net_backend *net_backend_create(const char *spec, struct event_loop *loop, struct errbuf *eb)
{
	struct net_backend *be = NULL;

	return net_backend_create_queues(spec, &loop, 1, &be, eb) ? NULL : be;
}

/* --- snapshots ------------------------------------------------------------------ */

#define NBCK_NAME_MAX 32u

/* The backend under any decorators: the one that talks to the host. */
static struct net_backend *base_of(struct net_backend *be)
{
	while (be->ops->wrapped)
		be = be->ops->wrapped(be);
	return be;
}

int net_backend_state_save(struct net_backend *be, struct state_writer *w, struct errbuf *eb)
{
	int r = 0;

	be = base_of(be);
	state_begin(w, "NBCK");
	state_put_str(w, be->ops->name);
	state_put_bool(w, be->ops->save_state != NULL);
	if (be->ops->save_state)
		r = be->ops->save_state(be, w, eb);
	state_end(w);
	return r;
}

bool net_backend_state_load(struct net_backend *be, struct state_reader *r)
{
	struct state_reader sec;
	char name[NBCK_NAME_MAX];

	be = base_of(be);
	if (!state_section(r, "NBCK", &sec))
		return false;
	state_get_str(&sec, name, sizeof(name));
	bool has_state = state_get_bool(&sec);
	if (!sec.failed && has_state && strcmp(name, be->ops->name)) {
		/* Another kind of backend now: its state means nothing here. */
		log_info("the snapshot's %s network state is not carried to this %s backend", name,
			 be->ops->name);
		sec.off = sec.len;
	} else if (!sec.failed && has_state && (!be->ops->load_state || !be->ops->load_state(be, &sec))) {
		state_fail(&sec, "the %s backend's state does not load", name);
	}
	return state_section_done(r, &sec);
}
