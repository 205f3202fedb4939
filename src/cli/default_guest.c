/* `kvmini run` without --kernel: the project's own guest (default_guest.h). */
#include "cli/default_guest.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static char kernel_path[PATH_MAX];
static char initrd_path[PATH_MAX];

/* The directory of the running binary, or -errno. */
static int self_dir(char *out, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", out, size - 1);

	if (n < 0)
		return -errno;
	out[n] = '\0';
	char *slash = strrchr(out, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

int default_guest_find(const char **kernel, const char **initrd)
{
	char dir[PATH_MAX];
	const char *env = getenv("KVMINI_GUEST_DIR");

	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else {
		char self[PATH_MAX];
		if (self_dir(self, sizeof(self)) < 0 ||
		    (size_t)snprintf(dir, sizeof(dir), "%s/guest", self) >= sizeof(dir))
			snprintf(dir, sizeof(dir), "build/guest");
	}
	if ((size_t)snprintf(kernel_path, sizeof(kernel_path), "%s/vmlinux", dir) >= sizeof(kernel_path) ||
	    access(kernel_path, R_OK) < 0) {
		log_err("no --kernel given and no default guest kernel at %s/vmlinux: build the "
			"project's guest with scripts/build-guest.sh, or pass --kernel FILE", dir);
		return -ENOENT;
	}
	*kernel = kernel_path;
	*initrd = NULL;
	if ((size_t)snprintf(initrd_path, sizeof(initrd_path), "%s/initramfs.cpio", dir) < sizeof(initrd_path) &&
	    access(initrd_path, R_OK) == 0)
		*initrd = initrd_path;
	log_info("booting the default guest: %s%s%s", kernel_path, *initrd ? " with " : "",
		 *initrd ? initrd_path : "");
	return 0;
}
