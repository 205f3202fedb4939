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

/* The backend, its MTU checked and the device's identity filled in. */
static struct net_backend *open_backend(const struct net_iface_config *cfg,
					struct event_loop *loop, struct mmds *m,
					const struct net_iface_names *names,
					struct net_config_opts *opts)
{
	const uint8_t *mac = cfg->mac;
	struct errbuf eb = { 0 };
	struct net_backend *be = net_backend_create(cfg->backend, loop, &eb);

	if (!be) {
		log_err("%s %s: %s", names->backend, cfg->backend, eb.msg);
		return NULL;
	}
	memcpy(opts->mac, cfg->mac, sizeof(opts->mac));
	if (device_mtu(cfg, be, names->mtu, &opts->mtu) < 0) {
		be->ops->destroy(be);
		return NULL;
	}
	log_info("%s: MAC %02x:%02x:%02x:%02x:%02x:%02x%s, MTU %u", cfg->id, mac[0], mac[1], mac[2],
		 mac[3], mac[4], mac[5], cfg->mac_given ? "" : " (random)", opts->mtu);
	if (!m || !cfg->mmds)
		return be;
	/* The interceptor owns @be from here, also when it fails. */
	struct net_backend *wrapped = mmds_intercept_create(loop, be, m, &eb);
	if (!wrapped)
		log_err("%s: %s", names->mmds, eb.msg);
	return wrapped;
}

int net_iface_open(struct net_iface *n, const struct net_iface_config *cfg,
		   struct event_loop *loop, struct mmds *m, const struct net_iface_names *names)
{
	struct net_config_opts opts = { 0 };

	*n = (struct net_iface){ 0 };
	n->backend = open_backend(cfg, loop, m, names, &opts);
	if (!n->backend)
		return -EINVAL;
	opts.offloads_off = cfg->offloads_off;
	n->dev = calloc(1, sizeof(*n->dev));
	int r = n->dev ? net_device_init(n->dev, &opts, n->backend, loop) : -ENOMEM;
	if (r < 0) {
		log_err("%s %s: virtio-net device: %s", names->backend, cfg->backend, strerror(-r));
		free(n->dev);
		n->backend->ops->destroy(n->backend);
		*n = (struct net_iface){ 0 };
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
	if (n->backend)
		n->backend->ops->destroy(n->backend);
	*n = (struct net_iface){ 0 };
}

const char *net_iface_host_dev_name(const struct net_iface_config *cfg)
{
	return strncmp(cfg->backend, "tap:", 4) ? NULL : cfg->backend + 4;
}
