/*
 * Tap backend: an fd backend over a tun/tap device in tap mode (Ethernet
 * frames), in two spellings:
 *
 *   tap:NAME     kvmini opens /dev/net/tun and attaches to (or creates) the
 *                tap NAME, with IFF_VNET_HDR;
 *   tap-fd:N     a tap someone else opened (a jailer, an orchestrator,
 *                cloud-hypervisor's fd=) and left to kvmini as descriptor N.
 *                TUNGETIFF says what it is: a tap (IFF_TAP, IFF_NO_PI, an
 *                attached queue), with or without IFF_VNET_HDR; its name
 *                comes from there (tap_fd_iff: IFF_NO_PI's bit is also
 *                IFF_NOFILTER in that answer). kvmini
 *                sets O_NONBLOCK and FD_CLOEXEC on it and owns it from then
 *                on (a refused descriptor is left open). N,N,... names the
 *                queues of a multi-queue tap, one per queue pair.
 *
 * Multi-queue (net_backend_create_queues, n queue pairs): one tap backend
 * per queue, each on its queue pair's loop and with its own counters,
 * sharing nothing in kvmini. tap:NAME opens /dev/net/tun n times with
 * IFF_MULTI_QUEUE (the first open may create the tap; the others attach to
 * the name it got); tap-fd takes n descriptors, each a queue of the same
 * multi-queue tap. Every queue is set up alike (tap_setup) and reports the
 * first queue's offloads: what tun takes is the device's, not the queue's.
 * Likewise TUNSETOFFLOAD on any queue sets the whole tap's features, so
 * the device calling set_offloads on each queue asks the same thing again.
 * The host spreads its frames over the attached queues (tun's flow hash);
 * set_queue_enabled detaches a queue the driver does not use
 * (TUNSETQUEUE) so none land there. With one queue pair (n == 1: tap:NAME
 * opened without IFF_MULTI_QUEUE as before, or one tap-fd descriptor, even
 * a multi-queue tap's queue) set_queue_enabled is NULL rather than a no-op:
 * the device never detaches its only pair, there is no other queue to
 * steer to, and tun refuses TUNSETQUEUE on a single-queue tap.
 *
 * With IFF_VNET_HDR (always for tap:NAME) every frame crosses the tap with
 * the 12-byte virtio_net_hdr_v1 in front (TUNSETVNETHDRSZ 12, little-endian)
 * and the header is the device's, in-band (backend.h): send() writes the
 * iovecs as given, the checked header first, so the kernel completes the
 * checksums and segments the GSO frames the guest asked it to; recv() reads
 * header and frame into the guest's buffer as they come and returns both
 * lengths. be.offloads says what the tap takes: every host offload (TSO,
 * ECN and UFO since long; USO where the kernel takes GSO_UDP_L4, Linux 6.2
 * on) and the guest offloads TUNSETOFFLOAD accepts, probed at open. The tap
 * opens with TUNSETOFFLOAD 0, so the kernel hands over only complete,
 * checksummed frames until the device calls set_offloads with what the
 * guest acked. A tap-fd without IFF_VNET_HDR carries plain frames:
 * offloads 0, and the device finishes checksums and segments for it.
 *
 * Syscalls per frame: TX stays one writev per frame, from guest memory. A
 * tun fd takes exactly one frame per write (the write's length is the
 * frame's), and a character device has no sendmmsg nor writev of several
 * frames: there is nothing to batch into (backend.h's flush is for
 * sockets; tap has none). RX is one readv per frame for the same reason,
 * straight into the guest's buffer; the device's RX drain calls recv()
 * until it returns 0 (EAGAIN: the tap is empty), the guest runs out of
 * buffers, or the drain's budget (NET_BUDGET_FRAMES / _BYTES, then the
 * rest as deferred work) is spent, so a wake-up of the fd reads every
 * frame waiting rather than one. Fewer syscalls would need another
 * interface to the kernel (vhost-net, or an AF_PACKET socket's recvmmsg
 * at the price of a copy), not a change here.
 *
 * The tap is attached, never configured: bringing the link up and giving it
 * addresses and its MTU is the operator's job (ip link / ip addr); its MTU is
 * only read, as the bound of the device's (backend.h, host_mtu).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "net/backend.h"
#include "net/offload.h"

#define TAP_VNET_HDR_LEN ((int)sizeof(struct virtio_net_hdr_v1))
_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "virtio 1.x net header is 12 bytes");

/* UDP segmentation offload, Linux 6.2: newer than Debian 12's uapi headers.
 * tun takes the two only together. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

/* tap-fd: at most this many descriptors in one list (one per queue pair). */
#define TAP_FDS_MAX NET_BACKEND_MAX_QUEUES

#define TAP_COUNTERS(X) \
	X(tx_blocked,     "sends refused with -EAGAIN: the tap queue was full") \
	X(tx_errors,      "frames the tap refused to take") \
	X(rx_truncated,   "frames dropped: larger than the guest's RX chain") \
	X(rx_runts,       "reads shorter than the vnet header (dropped)") \
	X(rx_errors,      "failed reads") \
	X(rx_offload_errors, "TUNSETOFFLOAD calls the tap refused (the guest's offloads unchanged)")

struct tap_counters {
	TAP_COUNTERS(COUNTER_FIELD)
};

#define X(name, doc) COUNTER_DESC(struct tap_counters, name, doc)
const struct counter_set tap_counter_set = COUNTER_SET("tap", TAP_COUNTERS(X));
#undef X

struct tap {
	struct net_backend be;
	char ifname[IFNAMSIZ];
	int fd;
	/* A dup of fd, watched for EPOLLOUT only while a send is owed a
	 * tx_unblocked: the device watches fd itself for reading, and one
	 * epoll set cannot hold the same fd twice. */
	int tx_fd;
	struct event_source tx_event;
	bool tx_blocked;
	/* A queue of a multi-queue tap taken off the host's steering
	 * (set_queue_enabled false). */
	bool detached;
	struct tap_counters counters;
	/* The truncation probe's byte on RX. */
	uint8_t rx_extra;
	/* RX iovec scratch, IOV_MAX: the guest's buffers and the probe. */
	struct iovec *rx_iov;
};

static struct tap *to_tap(struct net_backend *be)
{
	return container_of(be, struct tap, be);
}

/* tap_tx_writable - the tap drained: release the device's waiting chain. */
static void tap_tx_writable(struct event_source *src, uint32_t events)
{
	struct tap *tap = container_of(src, struct tap, tx_event);

	event_loop_unwatch(tap->be.loop, &tap->tx_event);
	if (tap->tx_blocked) {
		tap->tx_blocked = false;
		net_backend_tx_unblocked(&tap->be);
	}
}

/* tap_block_tx - remember that the device waits, and wake it on EPOLLOUT. */
static int tap_block_tx(struct tap *tap)
{
	int r = event_loop_watch(tap->be.loop, &tap->tx_event, tap->tx_fd, EPOLLOUT,
				 tap_tx_writable, "tap tx");
	if (r) {
		/* Without the watch nobody would wake the device: lose the frame. */
		tap->counters.tx_errors++;
		return r;
	}
	tap->tx_blocked = true;
	tap->counters.tx_blocked++;
	return -EAGAIN;
}

/* tap_send - one writev of the iovecs as given: with a vnet header, its 12
 * bytes come first and the kernel acts on them (checksum, GSO). */
static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		    uint32_t token)
{
	struct tap *tap = to_tap(be);

	if (iovcnt > IOV_MAX) {
		tap->counters.tx_errors++;
		return -EINVAL;
	}
	ssize_t n = writev(tap->fd, iov, (int)iovcnt);
	if (n >= 0)
		return 0;    /* tun writes a frame whole or not at all */
	if (errno == EAGAIN)
		return tap_block_tx(tap);
	tap->counters.tx_errors++;
	return -errno;
}

/*
 * tap_recv - readv one frame straight into the guest's buffers, the vnet
 * header (when the tap has one) in their first 12 bytes; returns the length
 * of both. tun writes the 10 bytes of struct
 * virtio_net_hdr; the 2 of num_buffers after them are left as the buffer
 * held them by older kernels and zeroed by newer ones (6.18 here): either
 * way the device sets num_buffers itself.
 */
static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct tap *tap = to_tap(be);
	/* A guest that splits its buffer into more pieces than readv takes
	 * gets fewer bytes of room, never an overflow. */
	unsigned n_iov = MIN(iovcnt, (unsigned)IOV_MAX - 1);
	size_t cap = iov_length(iov, n_iov);

	if (n_iov)
		memcpy(tap->rx_iov, iov, n_iov * sizeof(*iov));
	/* One byte past the guest's room: a frame that reaches it did not fit. */
	tap->rx_iov[n_iov] = (struct iovec){ &tap->rx_extra, 1 };
	ssize_t n = readv(tap->fd, tap->rx_iov, (int)n_iov + 1);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		tap->counters.rx_errors++;
		return -errno;
	}
	if (net_backend_has_vnet_hdr(be) && n < TAP_VNET_HDR_LEN) {
		tap->counters.rx_runts++;
		return -EIO;
	}
	if ((size_t)n > cap) {
		tap->counters.rx_truncated++;
		return -EMSGSIZE;
	}
	return n;
}

/* The TUN_F_ bits for the guest offloads @f, as tun's set_offload takes
 * them: nothing without the checksum; ECN only with TSO4 or TSO6; USO4
 * and USO6 only both (one of them alone stays with the kernel, which then
 * segments those frames itself). */
static unsigned tap_tun_offloads(uint64_t f)
{
	unsigned t = TUN_F_CSUM;

	if (!(f & NET_F(VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	if (f & NET_F(VIRTIO_NET_F_GUEST_TSO4))
		t |= TUN_F_TSO4;
	if (f & NET_F(VIRTIO_NET_F_GUEST_TSO6))
		t |= TUN_F_TSO6;
	if ((f & NET_F(VIRTIO_NET_F_GUEST_ECN)) && (t & (TUN_F_TSO4 | TUN_F_TSO6)))
		t |= TUN_F_TSO_ECN;
	if (f & NET_F(VIRTIO_NET_F_GUEST_UFO))
		t |= TUN_F_UFO;
	if ((f & NET_F(VIRTIO_NET_F_GUEST_USO4)) && (f & NET_F(VIRTIO_NET_F_GUEST_USO6)))
		t |= TUN_F_USO4 | TUN_F_USO6;
	return t;
}

/* tap_set_offloads - what the kernel may hand over from now on: the
 * guest's acked offloads among the tap's, as TUNSETOFFLOAD. That sets the
 * tap's features, all its queues' at once: the same call on each queue is
 * the same request again. */
static int tap_set_offloads(struct net_backend *be, uint64_t features)
{
	struct tap *tap = to_tap(be);
	unsigned tun = tap_tun_offloads(features & be->offloads & NET_GUEST_OFFLOADS);

	if (ioctl(tap->fd, TUNSETOFFLOAD, (unsigned long)tun) < 0) {
		int e = errno;

		tap->counters.rx_offload_errors++;
		log_warn("tap %s: TUNSETOFFLOAD %#x: %s", tap->ifname, tun, strerror(e));
		return -e;
	}
	log_debug("tap %s: TUNSETOFFLOAD %#x", tap->ifname, tun);
	return 0;
}

/* tap_set_queue_enabled - attach this queue to the tap's steering, or
 * detach it (TUNSETQUEUE; tun drops what waited on it, and the fd stays
 * open, writable and quiet: no EPOLLERR). Multi-queue taps only; asking
 * for the state the queue is in is a no-op, since tun refuses to attach
 * an attached queue or detach a detached one. */
static int tap_set_queue_enabled(struct net_backend *be, bool enabled)
{
	struct tap *tap = to_tap(be);
	struct ifreq ifr = { .ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE };

	if (tap->detached == !enabled)
		return 0;
	if (ioctl(tap->fd, TUNSETQUEUE, &ifr) < 0) {
		int e = errno;

		log_warn("tap %s: TUNSETQUEUE %s: %s", tap->ifname,
			 enabled ? "attach" : "detach", strerror(e));
		return -e;
	}
	tap->detached = !enabled;
	return 0;
}

/* "tap <ifname> <name>": one host may have several taps. */
static void tap_visit_counters(struct net_backend *be, const struct counter_sink *sink)
{
	struct tap *tap = to_tap(be);
	char prefix[sizeof(tap->ifname) + 8];

	snprintf(prefix, sizeof(prefix), "tap %s ", tap->ifname);
	counters_visit(&tap_counter_set, &tap->counters, prefix, sink);
}

static void tap_destroy(struct net_backend *be)
{
	struct tap *tap = to_tap(be);

	event_loop_unwatch(be->loop, &tap->tx_event);
	if (tap->tx_fd >= 0)
		close(tap->tx_fd);
	if (tap->fd >= 0)
		close(tap->fd);
	free(tap->rx_iov);
	free(tap);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.send = tap_send,
	.recv = tap_recv,
	.destroy = tap_destroy,
	.visit_counters = tap_visit_counters,
	.set_offloads = tap_set_offloads,
};

/* A queue of a multi-queue tap: the same, and it can leave the steering. */
static const struct net_backend_ops tap_mq_ops = {
	.name = "tap",
	.send = tap_send,
	.recv = tap_recv,
	.destroy = tap_destroy,
	.visit_counters = tap_visit_counters,
	.set_offloads = tap_set_offloads,
	.set_queue_enabled = tap_set_queue_enabled,
};

/* tap_iff_error - say why TUNSETIFF refused @name (opened with
 * IFF_MULTI_QUEUE when @mq), in the operator's terms. */
static void tap_iff_error(int e, const char *name, bool mq, struct errbuf *eb)
{
	switch (e) {
	case EPERM:
	case EACCES:
		errbuf_set(eb,
			   "tap %s: permission denied: attaching a tap needs CAP_NET_ADMIN, "
			   "or create it for this user first (ip tuntap add %s mode tap user USER)",
			   name, name);
		break;
	case EBUSY:
		errbuf_set(eb, "tap %s is busy: another process has it open", name);
		break;
	case EINVAL:
		if (mq) {
			errbuf_set(eb,
				   "tap %s: not usable as a multi-queue tap: an interface of that "
				   "name exists and is not a multi-queue tap (ip tuntap add %s mode "
				   "tap multi_queue), or the name is invalid", name, name);
			break;
		}
		errbuf_set(eb,
			   "tap %s: not usable as a tap: an interface of that name exists and "
			   "is not a tap (or is a multi-queue tap, which takes more than one "
			   "queue pair), or the name is invalid", name);
		break;
	default:
		errbuf_set(eb, "tap %s: TUNSETIFF: %s", name, strerror(e));
	}
}

/* The interface's MTU (SIOCGIFMTU wants a socket, not the tun fd); 0 when
 * it cannot be read, which leaves the device's MTU unchecked. The name is
 * looked up in kvmini's network namespace: a tap-fd from another one has
 * no MTU read (or a namesake's here). */
static unsigned tap_mtu(const char *ifname)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unsigned mtu = 0;

	if (s < 0)
		return 0;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
		mtu = (unsigned)ifr.ifr_mtu;
	close(s);
	return mtu;
}

/*
 * tap_probe_offloads - the VIRTIO_NET_F_ offloads the tap on @fd takes.
 * Host (the guest's frames, written): every header tun has read since
 * long, and GSO_UDP_L4 (HOST_USO) since Linux 6.2, the release that brought
 * TUN_F_USO4/USO6: the probe for those stands for both. Guest (frames
 * read): what TUNSETOFFLOAD accepts. Not GUEST_UFO: tun takes TUN_F_UFO and
 * drops it (Linux removed UFO in 4.14; set_offload clears the bit), so a
 * tap never hands over a UFO frame and offering it would promise nothing.
 * Leaves the tap with TUNSETOFFLOAD 0.
 */
static uint64_t tap_probe_offloads(int fd)
{
	static const struct {
		unsigned tun;
		uint64_t guest;
	} probes[] = {
		{ TUN_F_CSUM, NET_F(VIRTIO_NET_F_GUEST_CSUM) },
		{ TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
		  NET_F(VIRTIO_NET_F_GUEST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO6) |
		  NET_F(VIRTIO_NET_F_GUEST_ECN) },
		{ TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6,
		  NET_F(VIRTIO_NET_F_GUEST_USO4) | NET_F(VIRTIO_NET_F_GUEST_USO6) },
	};
	uint64_t f = NET_HOST_OFFLOADS & ~NET_F(VIRTIO_NET_F_HOST_USO);

	for (size_t i = 0; i < ARRAY_SIZE(probes); i++)
		if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)probes[i].tun) == 0)
			f |= probes[i].guest;
	if (f & NET_F(VIRTIO_NET_F_GUEST_USO4))
		f |= NET_F(VIRTIO_NET_F_HOST_USO);
	return f;
}

/*
 * tap_setup - one queue's setup, the fd attached and tap->ifname set: the
 * vnet header's size and byte order and the offloads when @vnet_hdr (those
 * of @q0, the tap's first queue, when given: probed once per tap), no
 * offloads for the kernel yet (TUNSETOFFLOAD 0), the MTU, and the fd for
 * EPOLLOUT.
 */
static int tap_setup(struct tap *tap, bool vnet_hdr, const struct tap *q0, struct errbuf *eb)
{
	int hdr_len = TAP_VNET_HDR_LEN, le = 1;

	/* virtio 1.x headers are little-endian: say so, whatever a tap from
	 * elsewhere was set to (TUNSETVNETBE). */
	if (vnet_hdr && (ioctl(tap->fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
			 ioctl(tap->fd, TUNSETVNETLE, &le) < 0)) {
		int e = errno;

		errbuf_set(eb, "tap %s: setting the vnet header: %s", tap->ifname, strerror(e));
		return -e;
	}
	if (vnet_hdr)
		tap->be.offloads = q0 ? q0->be.offloads : tap_probe_offloads(tap->fd);
	/* No offloads until the device negotiates them: the kernel then
	 * hands over only complete, checksummed frames. */
	if (ioctl(tap->fd, TUNSETOFFLOAD, 0UL) < 0) {
		int e = errno;

		errbuf_set(eb, "tap %s: TUNSETOFFLOAD: %s", tap->ifname, strerror(e));
		return -e;
	}
	tap->be.host_mtu = tap_mtu(tap->ifname);
	tap->tx_fd = fcntl(tap->fd, F_DUPFD_CLOEXEC, 0);
	if (tap->tx_fd < 0) {
		int e = errno;

		errbuf_set(eb, "tap %s: dup: %s", tap->ifname, strerror(e));
		return -e;
	}
	tap->be.rx_fd = tap->fd;
	return 0;
}

/* tap_open - attach to (or create) the tap @name, with a vnet header: a
 * queue of a multi-queue tap when @mq (@q0 its first queue, or NULL). */
static int tap_open(struct tap *tap, const char *name, bool mq, const struct tap *q0,
		    struct errbuf *eb)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };

	if (mq)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;

	tap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap->fd < 0) {
		int e = errno;    /* formatting the message may change errno */

		if (e == EACCES || e == EPERM)
			errbuf_set(eb,
				   "tap %s: permission denied opening /dev/net/tun "
				   "(read-write access is needed)", name);
		else
			errbuf_set(eb, "tap %s: cannot open /dev/net/tun: %s%s", name,
				   strerror(e), e == ENOENT ? " (is the tun module loaded?)" : "");
		return -e;
	}
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(tap->fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		tap_iff_error(e, name, mq, eb);
		return -e;
	}
	memcpy(tap->ifname, ifr.ifr_name, IFNAMSIZ);
	tap->ifname[IFNAMSIZ - 1] = '\0';
	return tap_setup(tap, true, q0, eb);
}

/* A backend not yet attached to anything (fd -1), or NULL; a queue of a
 * multi-queue tap when @mq. */
static struct tap *tap_alloc(struct event_loop *loop, bool mq, const char *what,
			     struct errbuf *eb)
{
	struct tap *tap = calloc(1, sizeof(*tap));

	if (!tap) {
		errbuf_set(eb, "%s: out of memory", what);
		return NULL;
	}
	tap->be.ops = mq ? &tap_mq_ops : &tap_ops;
	tap->be.loop = loop;
	tap->be.rx_fd = tap->fd = tap->tx_fd = -1;
	tap->rx_iov = calloc(IOV_MAX, sizeof(struct iovec));
	if (!tap->rx_iov) {
		errbuf_set(eb, "%s: out of memory", what);
		tap_destroy(&tap->be);
		return NULL;
	}
	return tap;
}

/* Destroy the first @n backends of @be (a failed multi-queue open). */
static void tap_destroy_queues(struct net_backend **be, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		be[i]->ops->destroy(be[i]);
		be[i] = NULL;
	}
}

/* tap_name_check - a tap:NAME name: 0 or -EINVAL. */
static int tap_name_check(const char *arg, struct errbuf *eb)
{
	if (!arg || !*arg) {
		errbuf_set(eb, "tap needs an interface name: tap:NAME");
		return -EINVAL;
	}
	if (strlen(arg) >= IFNAMSIZ) {
		errbuf_set(eb, "tap name \"%s\" is too long (at most %d characters)",
			   arg, IFNAMSIZ - 1);
		return -EINVAL;
	}
	return 0;
}

/* tap_queue_open - one queue of the tap @name on @loop into @out (see
 * tap_open). 0 or -errno. */
static int tap_queue_open(struct event_loop *loop, const char *name, bool mq,
			  const struct tap *q0, struct net_backend **out, struct errbuf *eb)
{
	char what[IFNAMSIZ + 8];

	snprintf(what, sizeof(what), "tap %s", name);
	struct tap *tap = tap_alloc(loop, mq, what, eb);
	if (!tap)
		return -ENOMEM;
	int r = tap_open(tap, name, mq, q0, eb);
	if (r) {
		tap_destroy(&tap->be);
		return r;
	}
	*out = &tap->be;
	return 0;
}

int net_tap_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			  struct net_backend **out, struct errbuf *eb)
{
	int r = tap_name_check(arg, eb);

	for (unsigned i = 0; !r && i < n; i++) {
		/* The first open may have made the tap from a pattern
		 * ("kvm%d"): the other queues join it by the name it got. */
		const struct tap *q0 = i ? to_tap(out[0]) : NULL;
		r = tap_queue_open(loops[i], q0 ? q0->ifname : arg, n > 1, q0, &out[i], eb);
		if (r)
			tap_destroy_queues(out, i);
	}
	if (r)
		return r;
	log_info("tap %s attached (%u queue%s, offloads %#llx)", to_tap(out[0])->ifname, n,
		 n == 1 ? "" : "s", (unsigned long long)out[0]->offloads);
	return 0;
}

struct net_backend *net_tap_create(struct event_loop *loop, const char *arg, struct errbuf *eb)
{
	struct net_backend *be = NULL;

	return net_tap_create_queues(&loop, 1, arg, &be, eb) ? NULL : be;
}

/* --- tap-fd:N[,N...] -------------------------------------------------------------- */

struct tap_fds {
	int fd[TAP_FDS_MAX];
	unsigned n;
};

/* tap_fd_number - one item of the list, @len bytes at @p: a descriptor
 * number, or -1 with why in @eb. */
static int tap_fd_number(const char *arg, const char *p, size_t len, struct errbuf *eb)
{
	long v = 0;

	if (len == 0) {
		errbuf_set(eb, "tap-fd:%s: an empty item in the list (expected tap-fd:N[,N...])",
			   arg);
		return -1;
	}
	if (p[0] == '-' && len > 1 && strspn(p + 1, "0123456789") >= len - 1) {
		errbuf_set(eb, "tap-fd:%s: descriptor numbers are not negative (%.*s)", arg,
			   (int)MIN(len, 32), p);
		return -1;
	}
	if (strspn(p, "0123456789") < len) {
		errbuf_set(eb, "tap-fd:%s: \"%.*s\" is not a descriptor number", arg,
			   (int)MIN(len, 32), p);
		return -1;
	}
	for (size_t i = 0; i < len && v <= INT_MAX; i++)
		v = v * 10 + (p[i] - '0');
	if (v > INT_MAX) {
		errbuf_set(eb, "tap-fd:%s: descriptor %.*s is out of range", arg,
			   (int)MIN(len, 32), p);
		return -1;
	}
	return (int)v;
}

/* tap_fds_parse - "N[,N...]": descriptor numbers, each once. 0 or -EINVAL. */
static int tap_fds_parse(const char *arg, struct tap_fds *fds, struct errbuf *eb)
{
	const char *p = arg;

	fds->n = 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		int fd = tap_fd_number(arg, p, len, eb);
		if (fd < 0)
			return -EINVAL;
		for (unsigned i = 0; i < fds->n; i++) {
			if (fds->fd[i] == fd) {
				errbuf_set(eb, "tap-fd:%s: descriptor %d is given twice", arg, fd);
				return -EINVAL;
			}
		}
		if (fds->n == TAP_FDS_MAX) {
			errbuf_set(eb, "tap-fd:%s: more than %u descriptors", arg, TAP_FDS_MAX);
			return -EINVAL;
		}
		fds->fd[fds->n++] = fd;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/*
 * tap_fd_iff - TUNGETIFF on @fd, with IFF_NO_PI told apart from
 * IFF_NOFILTER: the two share a bit (0x1000), which tun sets in its answer
 * whenever no socket filter is attached to the queue, IFF_NO_PI or not.
 * Then an accept-all filter is attached for a second answer and taken off
 * again. 0 or -errno.
 */
static int tap_fd_iff(int fd, struct ifreq *ifr)
{
	struct sock_filter all = BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
	struct sock_fprog prog = { .len = 1, .filter = &all };
	struct ifreq again = { 0 };

	if (ioctl(fd, TUNGETIFF, ifr) < 0)
		return -errno;
	ifr->ifr_name[IFNAMSIZ - 1] = '\0';
	if (!(ifr->ifr_flags & IFF_NOFILTER) || (ifr->ifr_flags & (IFF_TUN | IFF_TAP)) != IFF_TAP)
		return 0;
	/* A device without filters (not tun's tap) has no such bit to hide. */
	if (ioctl(fd, TUNATTACHFILTER, &prog) < 0)
		return 0;
	if (ioctl(fd, TUNGETIFF, &again) == 0)
		ifr->ifr_flags = again.ifr_flags;
	if (ioctl(fd, TUNDETACHFILTER, &prog) < 0)
		log_warn("tap %s: TUNDETACHFILTER: %s", ifr->ifr_name, strerror(errno));
	return 0;
}

/* tap_fd_check - is @fd an open tap in tap mode, an attached queue,
 * read-write, without packet information? Its TUNGETIFF answer in @ifr.
 * 0 or -errno. */
static int tap_fd_check(int fd, struct ifreq *ifr, struct errbuf *eb)
{
	int fl = fcntl(fd, F_GETFL), r;

	if (fl < 0) {
		errbuf_set(eb, "tap-fd:%d: descriptor %d is not open (it must be inherited "
			   "from the process that started kvmini)", fd, fd);
		return -EBADF;
	}
	r = tap_fd_iff(fd, ifr);
	if (r == -EBADFD)
		errbuf_set(eb, "tap-fd:%d: a /dev/net/tun descriptor attached to no "
			   "interface (no TUNSETIFF yet, or its interface was deleted)", fd);
	else if (r)
		errbuf_set(eb, "tap-fd:%d: not a tun/tap device (TUNGETIFF: %s)", fd,
			   strerror(-r));
	if (r)
		return r;
	if ((ifr->ifr_flags & (IFF_TUN | IFF_TAP)) != IFF_TAP) {
		errbuf_set(eb, "tap-fd:%d: %s is a tun (IFF_TUN: IP packets), not a tap "
			   "(IFF_TAP: Ethernet frames)", fd, ifr->ifr_name);
		return -EINVAL;
	}
	if (!(ifr->ifr_flags & IFF_NO_PI)) {
		errbuf_set(eb, "tap-fd:%d: tap %s puts packet information before each frame: "
			   "open it with IFF_NO_PI", fd, ifr->ifr_name);
		return -EINVAL;
	}
	if (ifr->ifr_flags & IFF_DETACH_QUEUE) {
		errbuf_set(eb, "tap-fd:%d: a queue of tap %s detached with TUNSETQUEUE: attach "
			   "it first (IFF_ATTACH_QUEUE)", fd, ifr->ifr_name);
		return -EINVAL;
	}
	if ((fl & O_ACCMODE) != O_RDWR) {
		errbuf_set(eb, "tap-fd:%d: tap %s is not open for reading and writing", fd,
			   ifr->ifr_name);
		return -EBADF;
	}
	return 0;
}

/* tap_fds_check - every descriptor a usable tap (tap_fd_check, answers in
 * @ifr) and, for more than one, each a queue of one multi-queue tap (told
 * by its name). 0 or -errno. */
static int tap_fds_check(const char *arg, const struct tap_fds *fds, struct ifreq *ifr,
			 struct errbuf *eb)
{
	for (unsigned i = 0; i < fds->n; i++) {
		int r = tap_fd_check(fds->fd[i], &ifr[i], eb);
		if (r)
			return r;
		if (fds->n == 1)
			break;
		if (!(ifr[i].ifr_flags & IFF_MULTI_QUEUE)) {
			errbuf_set(eb, "tap-fd:%d: tap %s has one queue (opened without "
				   "IFF_MULTI_QUEUE): %u queue pairs need %u queues of one "
				   "multi-queue tap", fds->fd[i], ifr[i].ifr_name, fds->n, fds->n);
			return -EINVAL;
		}
		if (strcmp(ifr[i].ifr_name, ifr[0].ifr_name)) {
			errbuf_set(eb, "tap-fd:%s: descriptors %d and %d are queues of different "
				   "taps (%s, %s): one interface's queue pairs need queues of one tap",
				   arg, fds->fd[0], fds->fd[i], ifr[0].ifr_name, ifr[i].ifr_name);
			return -EINVAL;
		}
	}
	return 0;
}

/* tap_adopt - take the checked tap on descriptor @fd (TUNGETIFF's answer
 * in @ifr; @q0 the tap's first queue, or NULL); left open on failure. */
static int tap_adopt(struct tap *tap, int fd, const struct ifreq *ifr, const struct tap *q0,
		     struct errbuf *eb)
{
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int e = errno;

		errbuf_set(eb, "tap-fd:%d: fcntl: %s", fd, strerror(e));
		return -e;
	}
	memcpy(tap->ifname, ifr->ifr_name, IFNAMSIZ);
	tap->fd = fd;
	int r = tap_setup(tap, ifr->ifr_flags & IFF_VNET_HDR, q0, eb);
	if (r)
		tap->fd = -1;    /* still the caller's */
	return r;
}

/* tap_fd_queue - a backend on @loop for the checked descriptor @fd into
 * @out (see tap_adopt). 0 or -errno. */
static int tap_fd_queue(struct event_loop *loop, int fd, const struct ifreq *ifr, bool mq,
			const struct tap *q0, struct net_backend **out, struct errbuf *eb)
{
	char what[32];

	snprintf(what, sizeof(what), "tap-fd:%d", fd);
	struct tap *tap = tap_alloc(loop, mq, what, eb);
	if (!tap)
		return -ENOMEM;
	int r = tap_adopt(tap, fd, ifr, q0, eb);
	if (r) {
		tap_destroy(&tap->be);
		return r;
	}
	*out = &tap->be;
	return 0;
}

/* Destroy the first @n tap-fd backends of @be and leave their descriptors
 * open: a refused list stays the caller's, all of it. */
static void tap_fd_give_back(struct net_backend **be, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct tap *tap = to_tap(be[i]);

		tap->fd = tap->be.rx_fd = -1;
		tap_destroy(&tap->be);
		be[i] = NULL;
	}
}

/* tap_fd_parse - the list, one descriptor per queue pair: 0 or -EINVAL. */
static int tap_fd_parse(const char *arg, unsigned n, struct tap_fds *fds, struct errbuf *eb)
{
	if (!arg || !*arg) {
		errbuf_set(eb, "tap-fd needs a descriptor number: tap-fd:N");
		return -EINVAL;
	}
	if (tap_fds_parse(arg, fds, eb))
		return -EINVAL;
	if (fds->n != n) {
		errbuf_set(eb, "tap-fd:%s: %u descriptor%s given for %u queue pair%s: one "
			   "descriptor per queue pair", arg, fds->n, fds->n == 1 ? "" : "s", n,
			   n == 1 ? "" : "s");
		return -EINVAL;
	}
	return 0;
}

int net_tap_fd_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			     struct net_backend **out, struct errbuf *eb)
{
	struct ifreq ifr[TAP_FDS_MAX];
	struct tap_fds fds;
	int r = tap_fd_parse(arg, n, &fds, eb);

	if (r || (r = tap_fds_check(arg, &fds, ifr, eb)))
		return r;
	for (unsigned i = 0; i < n; i++) {
		const struct tap *q0 = i ? to_tap(out[0]) : NULL;
		r = tap_fd_queue(loops[i], fds.fd[i], &ifr[i], n > 1, q0, &out[i], eb);
		if (r) {
			tap_fd_give_back(out, i);
			return r;
		}
	}
	log_info("tap %s attached from descriptor%s %s (%s, offloads %#llx)",
		 to_tap(out[0])->ifname, n == 1 ? "" : "s", arg,
		 net_backend_has_vnet_hdr(out[0]) ? "vnet header" : "plain frames",
		 (unsigned long long)out[0]->offloads);
	return 0;
}

struct net_backend *net_tap_fd_create(struct event_loop *loop, const char *arg,
				      struct errbuf *eb)
{
	struct net_backend *be = NULL;

	return net_tap_fd_create_queues(&loop, 1, arg, &be, eb) ? NULL : be;
}
