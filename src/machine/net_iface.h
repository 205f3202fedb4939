/*
 * One virtio-net interface, as every front door builds it: the backend
 * (tap, libslirp, stream, loopback) made from its spec, wrapped by the
 * metadata service's interceptor where MMDS answers on it, and the
 * virtio-net device on it with its MAC, MTU and rate limits. `kvmini run
 * --net` and `kvmini vhost net` open their interfaces here; each puts its
 * own transport in front (virtio-mmio or vhost-user).
 *
 * Each queue pair gets a backend of its own (a tap queue, a loopback) on
 * an event loop of its own, which the device's pair thread runs
 * (net_device.h, "Threads"); the interface owns those loops.
 */
#ifndef KVMINI_MACHINE_NET_IFACE_H
#define KVMINI_MACHINE_NET_IFACE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event_loop.h"
#include "mmds/mmds.h"
#include "net/backend.h"
#include "net/net_device.h"
#include "core/rate_limiter.h"

#define NET_IFACE_ID_MAX 64u
/* The MTU a device may advertise: at least 68 (virtio 1.2, 5.1.4.1: the
 * IPv4 minimum), at most what the 16-bit config field holds. */
#define NET_IFACE_MTU_MIN 68u
#define NET_IFACE_MTU_MAX 65535u
#define NET_IFACE_DEFAULT_MTU 1500u

struct net_iface_config {
	const char *backend;         /* the backend spec: tap:NAME, user, ... */
	char id[NET_IFACE_ID_MAX + 1];  /* the control API's iface_id */
	bool id_given;
	uint8_t mac[6];
	bool mac_given;              /* else random (logged as such) */
	uint16_t mtu;                /* 0: the host interface's, or 1500 */
	bool offloads_off;           /* --offloads off: no checksum or GSO offload offered */
	unsigned queues;             /* queue pairs (--queues); 0 means 1 */
	unsigned tx_coalesce_us;     /* --tx-coalesce-us; 0: none */
	unsigned poll_us;            /* --poll-us, when poll_given; 0: none */
	bool poll_given;             /* else NET_POLL_DEFAULT_US */
	struct rate_limiter_config limit[NET_NUM_QUEUES];   /* by queue index */
	bool mmds;                   /* MMDS answers on it (needs a store at open) */
};

struct net_iface {
	struct net_backend *backend;     /* the first pair's (backends[0]) */
	struct net_device *dev;
	unsigned npairs;
	struct net_backend *backends[NET_MAX_QUEUE_PAIRS];
	struct event_loop *loops[NET_MAX_QUEUE_PAIRS];   /* each pair's, owned */
};

/* How messages name an interface's settings, in the words of the front
 * door that took them (kvmini run: "--net", "--mtu", "--mmds"; a config
 * file: its keys): this layer serves them all, so it names none itself. */
struct net_iface_names {
	const char *backend;         /* before the backend's spec: "--net tap:tap0: ..." */
	const char *mtu;
	const char *mmds;
};

/*
 * Make the backends (behind the interceptor of @m where cfg->mmds says so;
 * one pair only) and the device on @loop, with its limits and a thread
 * per queue pair. The MTU must not exceed a tap's own. @names name the
 * settings in messages. 0 or -errno, logged; on failure nothing is left
 * open.
 */
int net_iface_open(struct net_iface *n, const struct net_iface_config *cfg,
		   struct event_loop *loop, struct mmds *m, const struct net_iface_names *names);
/* The transport must have reset the device first. */
void net_iface_close(struct net_iface *n);

/* The tap's name when the backend is a tap, else NULL (the API shows it). */
const char *net_iface_host_dev_name(const struct net_iface_config *cfg);

#endif
