/* Small language helpers shared by every layer. */
#ifndef KVMINI_CORE_COMPILER_H
#define KVMINI_CORE_COMPILER_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* For a rare path kept out of a hot function: the hot one then needs no
 * stack frame and ends in a tail call. */
#define cold_path __attribute__((noinline, cold))

/* For a function on a per-frame path called from few places, where the
 * call (saving registers, a frame) costs as much as its body. */
#define force_inline inline __attribute__((always_inline))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* kvmini runs on little-endian hosts only: virtio 1.x rings are little-endian
 * and are read in place. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");

#endif
