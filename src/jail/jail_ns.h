/*
 * The jail's namespaces and root: the network namespace joined, new mount,
 * IPC and UTS namespaces, every mount made private (nothing propagates
 * back to the host), the chroot bind-mounted onto itself and made the root
 * with pivot_root, the old root detached. A dynamically linked exec file
 * gets the host's library directories bound in read-only (see jail_ns.c).
 */
#ifndef KVMINI_JAIL_JAIL_NS_H
#define KVMINI_JAIL_JAIL_NS_H

#include <stdbool.h>

#include "core/errbuf.h"

/* Join the network namespace at @path (a file such as /var/run/netns/NAME). */
int jail_join_netns(const char *path, struct errbuf *eb);

/* Unshare mount, IPC and UTS (a new PID namespace is the caller's, for
 * the child it forks next: see cli/jail.c),
 * then pivot into @root; the working directory is the new "/". @libs:
 * bind the host's library directories in first. 0 or -errno (@eb). */
int jail_enter_root(const char *root, bool libs, struct errbuf *eb);

#endif
