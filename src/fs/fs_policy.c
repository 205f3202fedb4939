/*
 * The backends' shared policy: see fs_policy.h.
 */
#include "fs/fs_policy.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/compiler.h"

int fs_policy_access(const struct fs_ctx *ctx, const struct stat *st, uint32_t mask)
{
	mode_t mode = st->st_mode;

	mask &= R_OK | W_OK | X_OK;
	if (ctx->uid == 0) {
		/* As the VFS does: root needs one x bit somewhere to execute. */
		bool any_x = S_ISDIR(mode) || (mode & 0111);
		return (mask & X_OK) && !any_x ? -EACCES : 0;
	}
	unsigned bits = ctx->uid == st->st_uid ? mode >> 6 :
			ctx->gid == st->st_gid ? mode >> 3 : mode;
	return (mask & ~bits & 7) ? -EACCES : 0;
}

static const struct {
	const char *prefix;
	size_t len;
	unsigned ns;
} xattr_prefixes[] = {
	{ "user.", 5, FS_XATTR_USER },
	{ "trusted.", 8, FS_XATTR_TRUSTED },
	{ "security.", 9, FS_XATTR_SECURITY },
	{ "system.", 7, FS_XATTR_SYSTEM },
};

unsigned fs_xattr_ns(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(xattr_prefixes); i++) {
		if (!strncmp(name, xattr_prefixes[i].prefix, xattr_prefixes[i].len))
			return xattr_prefixes[i].ns;
	}
	return FS_XATTR_OTHER;
}

bool fs_xattr_allowed(const char *name, unsigned allowed)
{
	return (fs_xattr_ns(name) & allowed) != 0;
}

size_t fs_xattr_filter(char *list, size_t len, unsigned allowed)
{
	size_t out = 0;

	for (size_t i = 0; i < len;) {
		size_t nl = strnlen(list + i, len - i) + 1;
		/* A last name without its NUL (a short list) is dropped. */
		if (i + nl <= len && fs_xattr_allowed(list + i, allowed)) {
			memmove(list + out, list + i, nl);
			out += nl;
		}
		i += nl;
	}
	return out;
}
