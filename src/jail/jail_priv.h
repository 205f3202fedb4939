/*
 * The jail's privileges: resource limits, descriptors above 2 closed, the
 * daemon's session and stdio, and the last step before exec: supplementary
 * groups emptied, gid and uid dropped, every capability gone (bounding
 * set, ambient set) but those --keep-cap names, no_new_privs.
 */
#ifndef KVMINI_JAIL_JAIL_PRIV_H
#define KVMINI_JAIL_JAIL_PRIV_H

#include "core/errbuf.h"
#include "jail/jail_args.h"

/* The --resource-limit values (soft and hard). 0 or -errno (@eb). */
int jail_set_rlimits(const struct jail_args *a, struct errbuf *eb);

/* Close every descriptor above 2. */
void jail_close_fds(void);

/* setsid, and stdin/stdout/stderr on /dev/null. 0 or -errno (@eb). */
int jail_daemonize(struct errbuf *eb);

/* Drop to @a's uid and gid with @a's kept capabilities only, then
 * no_new_privs. 0 or -errno (@eb); on failure the caller must not exec. */
int jail_drop_privileges(const struct jail_args *a, struct errbuf *eb);

#endif
