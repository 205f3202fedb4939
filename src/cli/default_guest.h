/* The guest images scripts/build-guest.sh makes: `kvmini run`'s default. */
#ifndef KVMINI_CLI_DEFAULT_GUEST_H
#define KVMINI_CLI_DEFAULT_GUEST_H

/* Find vmlinux and initramfs.cpio in $KVMINI_GUEST_DIR, or else in guest/
 * beside the kvmini binary (build/kvmini -> build/guest/). On success the
 * paths (static storage) are in *kernel and *initrd (NULL when there is
 * no initramfs) and 0 is returned; otherwise -ENOENT with the operator
 * told how to build them. */
int default_guest_find(const char **kernel, const char **initrd);

#endif
