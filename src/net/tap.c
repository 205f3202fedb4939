/*
 * Tap backend, "tap:NAME": an fd backend over /dev/net/tun. Frames cross
 * the tap with a 12-byte virtio_net_hdr_v1 in front (IFF_VNET_HDR), so that
 * offloads can be switched on later without changing the data path; for now
 * no offload is set (TUNSETOFFLOAD 0) and the header is always zero on TX
 * and ignored on RX.
 *
 * The tap is attached, never configured: bringing the link up and giving it
 * addresses and its MTU is the operator's job (ip link / ip addr); its MTU is
 * only read, as the bound of the device's (backend.h, host_mtu).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#define TAP_VNET_HDR_LEN ((int)sizeof(struct virtio_net_hdr_v1))
_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "virtio 1.x net header is 12 bytes");

#define TAP_COUNTERS(X) \
	X(tx_blocked,     "sends refused with -EAGAIN: the tap queue was full") \
	X(tx_errors,      "frames the tap refused to take") \
	X(rx_truncated,   "frames dropped: larger than the guest's RX chain") \
	X(rx_runts,       "reads shorter than the vnet header (dropped)") \
	X(rx_errors,      "failed reads")

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
	struct tap_counters counters;
	/* Zeroed header sent with every frame: no checksum or GSO requests. */
	struct virtio_net_hdr_v1 tx_hdr;
	/* Scratch for the header and the truncation probe on RX. */
	struct virtio_net_hdr_v1 rx_hdr;
	uint8_t rx_extra;
	/* iovec scratch, IOV_MAX each, one per direction (they may run on
	 * different threads later, so they do not share). */
	struct iovec *tx_iov;
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

/* tap_send - one writev: the zero header, then the frame from guest memory. */
static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		    uint32_t token)
{
	struct tap *tap = to_tap(be);

	if (iovcnt >= IOV_MAX) {
		tap->counters.tx_errors++;
		return -EINVAL;
	}
	tap->tx_iov[0] = (struct iovec){ &tap->tx_hdr, TAP_VNET_HDR_LEN };
	if (iovcnt)
		memcpy(&tap->tx_iov[1], iov, iovcnt * sizeof(*iov));
	ssize_t n = writev(tap->fd, tap->tx_iov, (int)iovcnt + 1);
	if (n >= 0)
		return 0;    /* tun writes a frame whole or not at all */
	if (errno == EAGAIN)
		return tap_block_tx(tap);
	tap->counters.tx_errors++;
	return -errno;
}

/* tap_recv - readv one frame straight into the guest's buffers. */
static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct tap *tap = to_tap(be);
	/* A guest that splits its buffer into more pieces than readv takes
	 * gets fewer bytes of room, never an overflow. */
	unsigned n_iov = MIN(iovcnt, (unsigned)IOV_MAX - 2);
	size_t cap = iov_length(iov, n_iov);

	tap->rx_iov[0] = (struct iovec){ &tap->rx_hdr, TAP_VNET_HDR_LEN };
	if (n_iov)
		memcpy(&tap->rx_iov[1], iov, n_iov * sizeof(*iov));
	/* One byte past the guest's room: a frame that reaches it did not fit. */
	tap->rx_iov[n_iov + 1] = (struct iovec){ &tap->rx_extra, 1 };
	ssize_t n = readv(tap->fd, tap->rx_iov, (int)n_iov + 2);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		tap->counters.rx_errors++;
		return -errno;
	}
	if (n < TAP_VNET_HDR_LEN) {
		tap->counters.rx_runts++;
		return -EIO;
	}
	size_t len = (size_t)n - TAP_VNET_HDR_LEN;
	if (len > cap) {
		tap->counters.rx_truncated++;
		return -EMSGSIZE;
	}
	return (ssize_t)len;
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
	free(tap->tx_iov);
	free(tap->rx_iov);
	free(tap);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.send = tap_send,
	.recv = tap_recv,
	.destroy = tap_destroy,
	.visit_counters = tap_visit_counters,
};

/* tap_iff_error - say why TUNSETIFF refused @name, in the operator's terms. */
static void tap_iff_error(int e, const char *name, struct errbuf *eb)
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
		errbuf_set(eb,
			   "tap %s: not usable as a tap: an interface of that name exists and "
			   "is not a tap, or the name is invalid", name);
		break;
	default:
		errbuf_set(eb, "tap %s: TUNSETIFF: %s", name, strerror(e));
	}
}

/* The interface's MTU (SIOCGIFMTU wants a socket, not the tun fd); 0 when
 * it cannot be read, which leaves the device's MTU unchecked. */
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

/* tap_open - attach to (or create) the tap and set its vnet header. */
static int tap_open(struct tap *tap, const char *name, struct errbuf *eb)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr_len = TAP_VNET_HDR_LEN;

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

		tap_iff_error(e, name, eb);
		return -e;
	}
	memcpy(tap->ifname, ifr.ifr_name, IFNAMSIZ);
	tap->ifname[IFNAMSIZ - 1] = '\0';
	tap->be.host_mtu = tap_mtu(tap->ifname);
	/* No offloads until the device negotiates them: the kernel then
	 * hands over only complete, checksummed frames. */
	if (ioctl(tap->fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
	    ioctl(tap->fd, TUNSETOFFLOAD, 0) < 0) {
		int e = errno;

		errbuf_set(eb, "tap %s: setting the vnet header: %s", name, strerror(e));
		return -e;
	}
	tap->tx_fd = fcntl(tap->fd, F_DUPFD_CLOEXEC, 0);
	if (tap->tx_fd < 0) {
		int e = errno;

		errbuf_set(eb, "tap %s: dup: %s", name, strerror(e));
		return -e;
	}
	return 0;
}

struct net_backend *net_tap_create(struct event_loop *loop, const char *arg, struct errbuf *eb)
{
	if (!arg || !*arg) {
		errbuf_set(eb, "tap needs an interface name: tap:NAME");
		return NULL;
	}
	if (strlen(arg) >= IFNAMSIZ) {
		errbuf_set(eb, "tap name \"%s\" is too long (at most %d characters)",
			   arg, IFNAMSIZ - 1);
		return NULL;
	}
	struct tap *tap = calloc(1, sizeof(*tap));
	if (!tap) {
		errbuf_set(eb, "tap %s: out of memory", arg);
		return NULL;
	}
	tap->be.ops = &tap_ops;
	tap->be.loop = loop;
	tap->fd = tap->tx_fd = -1;
	tap->tx_iov = calloc(IOV_MAX, sizeof(struct iovec));
	tap->rx_iov = calloc(IOV_MAX, sizeof(struct iovec));
	if (!tap->tx_iov || !tap->rx_iov) {
		errbuf_set(eb, "tap %s: out of memory", arg);
		tap_destroy(&tap->be);
		return NULL;
	}
	if (tap_open(tap, arg, eb)) {
		tap_destroy(&tap->be);
		return NULL;
	}
	tap->be.rx_fd = tap->fd;
	log_info("tap %s attached", tap->ifname);
	return &tap->be;
}
