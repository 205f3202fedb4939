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

enum arg_rule {
	ARG_REQUIRED,      /* KIND:ARG, ARG not empty */
	ARG_OPTIONAL,      /* KIND or KIND:ARG */
	ARG_NONE,          /* KIND alone */
};

struct backend_kind {
	const char *kind;
	enum arg_rule rule;
	const char *usage;
	backend_ctor create;
};

static const struct backend_kind kinds[] = {
	{ "tap", ARG_REQUIRED, "tap:NAME", net_tap_create },
	{ "tap-fd", ARG_REQUIRED, "tap-fd:N", net_tap_fd_create },
	{ "user", ARG_OPTIONAL, "user[:OPTIONS]", net_slirp_create },
	{ "stream", ARG_REQUIRED, "stream:PATH", net_stream_create },
	{ "loopback", ARG_NONE, "loopback", net_loopback_create },
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

struct net_backend *net_backend_create(const char *spec, struct event_loop *loop, struct errbuf *eb)
{
	if (!spec || !*spec) {
		errbuf_set(eb,
			   "no network backend given: expected tap:NAME, tap-fd:N, "
			   "user[:OPTIONS], stream:PATH or loopback");
		return NULL;
	}
	const char *colon = strchr(spec, ':');
	size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
	const struct backend_kind *k = find_kind(spec, kind_len);
	if (!k) {
		errbuf_set(eb,
			   "unknown network backend \"%.*s\": expected tap:NAME, tap-fd:N, "
			   "user[:OPTIONS], stream:PATH or loopback", (int)MIN(kind_len, 64), spec);
		return NULL;
	}
	const char *arg = colon ? colon + 1 : NULL;
	if (check_arg(k, arg, eb))
		return NULL;
	/* "user:" with nothing after it means the defaults. */
	if (arg && !*arg)
		arg = NULL;
	return k->create(loop, arg, eb);
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
