/* One virtio-net interface: backend, MMDS interceptor, device (see net_iface.h). */
#include "machine/net_iface.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mmds/intercept.h"

/*
 * The device's MTU: the configured one, which must not exceed the host
 * interface's (a tap's: the kernel would drop the guest's larger frames, as
 * cloud-hypervisor refuses too); without one the host interface's own, so
 * the guest uses what the host carries, or 1500.
 */
static int device_mtu(const struct net_iface_config *cfg, const struct net_backend *be,
		      const char *mtu_what, uint16_t *mtu)
{
	if (!cfg->mtu) {
		bool usable = be->host_mtu >= NET_IFACE_MTU_MIN && be->host_mtu <= NET_IFACE_MTU_MAX;
		*mtu = usable ? (uint16_t)be->host_mtu : NET_IFACE_DEFAULT_MTU;
		return 0;
	}
	if (be->host_mtu && cfg->mtu > be->host_mtu) {
		const char *dev = net_iface_host_dev_name(cfg);
		log_err("%s %u: larger than the MTU of %s (%u), which would drop the guest's "
			"larger frames; raise it first (ip link set dev %s mtu %u) or give a "
			"smaller %s", mtu_what, cfg->mtu, cfg->backend, be->host_mtu,
			dev ? dev : "NAME", cfg->mtu, mtu_what);
		return -EINVAL;
	}
	*mtu = cfg->mtu;
	return 0;
}

_Static_assert(NET_MAX_QUEUE_PAIRS <= NET_BACKEND_MAX_QUEUES, "a backend per queue pair");

/* Each pair's event loop: its thread runs it (net_device.h, "Threads"). */
static int open_loops(struct net_iface *n)
{
	for (unsigned i = 0; i < n->npairs; i++) {
		n->loops[i] = calloc(1, sizeof(*n->loops[i]));
		int r = n->loops[i] ? event_loop_init(n->loops[i]) : -ENOMEM;
		if (r < 0) {
			free(n->loops[i]);
			n->loops[i] = NULL;
			return r;
		}
	}
	return 0;
}

/* The backends, one per pair, their MTU checked and the device's identity
 * filled in; the first behind the MMDS interceptor where it answers. */
static int open_backends(struct net_iface *n, const struct net_iface_config *cfg, struct mmds *m,
			 const struct net_iface_names *names, struct net_config_opts *opts)
{
	const uint8_t *mac = cfg->mac;
	struct errbuf eb = { 0 };

	if (m && cfg->mmds && n->npairs > 1) {
		log_err("%s: the metadata service answers on an interface of one queue pair; "
			"drop --queues %u or MMDS on it", cfg->id, n->npairs);
		return -EINVAL;
	}
	if (net_backend_create_queues(cfg->backend, n->loops, n->npairs, n->backends, &eb) < 0) {
		log_err("%s %s: %s", names->backend, cfg->backend, eb.msg);
		return -EINVAL;
	}
	memcpy(opts->mac, cfg->mac, sizeof(opts->mac));
	if (device_mtu(cfg, n->backends[0], names->mtu, &opts->mtu) < 0)
		return -EINVAL;
	log_info("%s: MAC %02x:%02x:%02x:%02x:%02x:%02x%s, MTU %u%s", cfg->id, mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5], cfg->mac_given ? "" : " (random)", opts->mtu,
		 n->npairs > 1 ? ", several queue pairs" : "");
	if (!m || !cfg->mmds)
		return 0;
	/* The interceptor owns the backend from here, also when it fails. */
	struct net_backend *wrapped = mmds_intercept_create(n->loops[0], n->backends[0], m, &eb);
	n->backends[0] = wrapped;
	if (wrapped)
		return 0;
	log_err("%s: %s", names->mmds, eb.msg);
	return -EINVAL;
}

int net_iface_open(struct net_iface *n, const struct net_iface_config *cfg,
		   struct event_loop *loop, struct mmds *m, const struct net_iface_names *names)
{
	struct net_config_opts opts = {
		.offloads_off = cfg->offloads_off,
		.pair_threads = true,
		.tx_coalesce_us = cfg->tx_coalesce_us,
		.poll_us = cfg->poll_given ? cfg->poll_us : NET_POLL_DEFAULT_US,
	};

	*n = (struct net_iface){ .npairs = cfg->queues ? cfg->queues : 1 };
	int r = open_loops(n);
	if (r == 0)
		r = open_backends(n, cfg, m, names, &opts);
	if (r == 0) {
		n->backend = n->backends[0];
		n->dev = calloc(1, sizeof(*n->dev));
		r = n->dev ? net_device_init_pairs(n->dev, &opts, n->backends, n->npairs, loop,
						   n->loops)
			   : -ENOMEM;
		if (r < 0) {
			log_err("%s %s: virtio-net device: %s", names->backend, cfg->backend,
				strerror(-r));
			free(n->dev);
			n->dev = NULL;
		}
	}
	if (r < 0) {
		net_iface_close(n);
		return r;
	}
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++)
		net_device_set_rate_limit(n->dev, q, &cfg->limit[q]);
	/* A restore: a MAC the configuration names (a clone's) beats the state's. */
	n->dev->keep_configured_mac = cfg->mac_given;
	return 0;
}

void net_iface_close(struct net_iface *n)
{
	if (n->dev) {
		net_device_destroy(n->dev);
		free(n->dev);
	}
	for (unsigned i = 0; i < n->npairs; i++) {
		if (n->backends[i])
			n->backends[i]->ops->destroy(n->backends[i]);
		if (n->loops[i]) {
			event_loop_destroy(n->loops[i]);
			free(n->loops[i]);
		}
	}
	*n = (struct net_iface){ 0 };
}

const char *net_iface_host_dev_name(const struct net_iface_config *cfg)
{
	return strncmp(cfg->backend, "tap:", 4) ? NULL : cfg->backend + 4;
}
