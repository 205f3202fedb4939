/*
 * The jail's cgroup v2: <mount>/<parent-cgroup>/<id>, the controllers its
 * files need enabled from the mount down to the parent, each --cgroup file
 * written, the jailer moved in (the VMM it starts inherits it). Undone in
 * reverse when the jail fails to start.
 */
#ifndef KVMINI_JAIL_JAIL_CGROUP_H
#define KVMINI_JAIL_JAIL_CGROUP_H

#include <limits.h>
#include <stdbool.h>

#include "core/errbuf.h"
#include "jail/jail_args.h"

#define JAIL_CGROUP_MAX_MADE 8

struct jail_cgroup {
	char mount[PATH_MAX];             /* the cgroup2 mount point */
	char dir[PATH_MAX];               /* the jail's cgroup */
	char origin[PATH_MAX];            /* the jailer's cgroup before, under mount */
	bool moved;
	unsigned nmade;
	char made[JAIL_CGROUP_MAX_MADE][PATH_MAX];
};

/* Make and join @a's cgroup (nothing when @a has no --cgroup). 0, or
 * -errno with @eb saying what failed (what was made is removed). */
int jail_cgroup_setup(struct jail_cgroup *cg, const struct jail_args *a, struct errbuf *eb);

/* The same on the cgroup v2 hierarchy mounted at @mount (found in
 * mountinfo by jail_cgroup_setup; the unit test's seam: a directory laid
 * out as one). */
int jail_cgroup_setup_at(struct jail_cgroup *cg, const struct jail_args *a, const char *mount,
			 struct errbuf *eb);

/* Move the jailer back and remove the directories made (when empty). */
void jail_cgroup_undo(struct jail_cgroup *cg);

#endif
