/*
 * Privileges for the jail (see jail_priv.h). Capabilities go through the
 * raw capset(2) and prctl(2) calls rather than libcap-ng: the jailer needs
 * five operations on one process right before exec, and these calls say
 * exactly which sets change, with no new build dependency.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/jail_priv.h"

int jail_set_rlimits(const struct jail_args *a, struct errbuf *eb)
{
	static const int resource[JAIL_RLIMIT_COUNT] = {
		[JAIL_RLIMIT_FSIZE] = RLIMIT_FSIZE, [JAIL_RLIMIT_NOFILE] = RLIMIT_NOFILE,
		[JAIL_RLIMIT_CORE] = RLIMIT_CORE,
	};

	for (unsigned r = 0; r < JAIL_RLIMIT_COUNT; r++) {
		struct rlimit rl = { a->rlimit[r], a->rlimit[r] };
		if (a->rlimit_set[r] && setrlimit(resource[r], &rl) < 0) {
			errbuf_set(eb, "--resource-limit: setrlimit(%d, %llu): %s", resource[r],
				   (unsigned long long)a->rlimit[r], strerror(errno));
			return -errno;
		}
	}
	return 0;
}

void jail_close_fds(void)
{
	/* close_range (Linux 5.9); a loop where it is missing. */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
	for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
		close((int)fd);
}

int jail_daemonize(struct errbuf *eb)
{
	int fd;

	if (setsid() < 0) {
		errbuf_set(eb, "--daemonize: setsid: %s", strerror(errno));
		return -errno;
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
		errbuf_set(eb, "--daemonize: stdio onto /dev/null: %s", strerror(errno));
		return -errno;
	}
	close(fd);
	return 0;
}

/* Every capability out of the bounding and ambient sets: what no exec
 * can give back. PR_CAPBSET_READ is EINVAL past the kernel's last one. */
static int drop_bounding(uint64_t keep)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (!(keep & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

/* Permitted, effective and inheritable become @keep; ambient too, so the
 * kept ones survive exec of a file with no capabilities of its own. */
static int set_caps(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	for (int i = 0; i < 2; i++) {
		uint32_t half = (uint32_t)(keep >> (32 * i));
		data[i] = (struct __user_cap_data_struct){ half, half, half };
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	for (int cap = 0; cap < 64; cap++)
		if ((keep & (1ull << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return -errno;
	return 0;
}

int jail_drop_privileges(const struct jail_args *a, struct errbuf *eb)
{
	const char *step = "dropping the bounding set";
	int r = drop_bounding(a->keep_caps);

	if (r < 0)
		goto fail;
	/* Without KEEPCAPS, setresuid away from 0 empties the permitted set. */
	step = "PR_SET_KEEPCAPS";
	if (a->keep_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		goto fail_errno;
	step = "setgroups";
	if (setgroups(0, NULL) < 0)
		goto fail_errno;
	step = "setresgid";
	if (setresgid(a->gid, a->gid, a->gid) < 0)
		goto fail_errno;
	step = "setresuid";
	if (setresuid(a->uid, a->uid, a->uid) < 0)
		goto fail_errno;
	step = "setting the capability sets";
	r = set_caps(a->keep_caps);
	if (r < 0)
		goto fail;
	step = "PR_SET_NO_NEW_PRIVS";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail_errno;
	return 0;
fail_errno:
	r = -errno;
fail:
	errbuf_set(eb, "dropping privileges: %s: %s", step, strerror(-r));
	return r;
}
