/* The operator controls of virtio-net interfaces (see net_controls.h). */
#include "cli/net_controls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/log.h"
#include "mmds/mmds.h"

void cli_net_controls_init(struct cli_net_controls *c, const char *cmd, const char *backend_opt,
			   unsigned n_ifaces)
{
	*c = (struct cli_net_controls){ .cmd = cmd, .backend_opt = backend_opt };
	cli_mmds_args_init(&c->mmds);
	c->n_ifaces = n_ifaces < CLI_NET_MAX_IFACES ? n_ifaces : CLI_NET_MAX_IFACES;
}

int cli_net_controls_add(struct cli_net_controls *c, const char *backend)
{
	if (c->n_ifaces >= CLI_NET_MAX_IFACES) {
		log_err("%s: at most %u network devices", c->backend_opt, CLI_NET_MAX_IFACES);
		return -EINVAL;
	}
	c->ifaces[c->n_ifaces++].backend = backend;
	return 0;
}

/* The interface a per-interface option applies to: the last one. */
static struct cli_net_iface *last_iface(struct cli_net_controls *c, const char *opt)
{
	if (c->n_ifaces)
		return &c->ifaces[c->n_ifaces - 1];
	log_err("%s applies to the %s before it; give %s first (see %s --help)", opt,
		c->backend_opt, c->backend_opt, c->cmd);
	return NULL;
}

static int take_limit(struct cli_net_controls *c, int opt, const char *text)
{
	const char *name = opt == CLI_OPT_TX_RATE_LIMIT ? "--tx-rate-limit" : "--rx-rate-limit";
	struct cli_net_iface *ifc = last_iface(c, name);
	char err[160];

	if (!ifc)
		return -EINVAL;
	unsigned q = opt == CLI_OPT_TX_RATE_LIMIT ? NET_TX_QUEUE : NET_RX_QUEUE;
	if (rate_limiter_parse(text, &ifc->limit[q], err, sizeof(err)) == 0)
		return 0;
	log_err("%s: %s", name, err);
	return -EINVAL;
}

static bool id_ok(const char *id)
{
	return *id && !strchr(id, '/') && strlen(id) <= CLI_IFACE_ID_MAX;
}

static int take_id(struct cli_net_controls *c, const char *opt, const char *id)
{
	if (!id_ok(id)) {
		log_err("%s: \"%s\" must be 1 to %u characters, no '/'", opt, id, CLI_IFACE_ID_MAX);
		return -EINVAL;
	}
	if (!strcmp(opt, "--mmds-iface")) {
		if (c->n_mmds_iface >= CLI_NET_MAX_IFACES) {
			log_err("--mmds-iface: at most %u interfaces", CLI_NET_MAX_IFACES);
			return -EINVAL;
		}
		c->mmds_iface[c->n_mmds_iface++] = id;
		return 0;
	}
	struct cli_net_iface *ifc = last_iface(c, opt);
	if (!ifc)
		return -EINVAL;
	snprintf(ifc->id, sizeof(ifc->id), "%s", id);
	ifc->id_given = true;
	return 0;
}

/* A second --mac or --mtu for one interface: refused, not silently replaced. */
static bool given_twice(const struct cli_net_controls *c, const struct cli_net_iface *ifc,
			const char *opt)
{
	if (ifc->backend)
		log_err("%s given twice for the %s %s", opt, c->backend_opt, ifc->backend);
	else
		log_err("%s given twice", opt);
	return true;
}

static int take_mac(struct cli_net_controls *c, const char *text)
{
	struct cli_net_iface *ifc = last_iface(c, "--mac");

	if (!ifc || (ifc->mac_given && given_twice(c, ifc, "--mac")))
		return -EINVAL;
	int r = net_parse_mac(text, ifc->mac);
	if (r == -EADDRNOTAVAIL) {
		log_err("--mac: \"%s\" is not a unicast MAC address: multicast (odd first "
			"byte) and all-zero addresses cannot be a NIC's own", text);
		return -EINVAL;
	}
	if (r < 0) {
		log_err("--mac: \"%s\" is not a unicast MAC address like 52:54:00:12:34:56", text);
		return -EINVAL;
	}
	ifc->mac_given = true;
	return 0;
}

static int take_mtu(struct cli_net_controls *c, const char *text)
{
	struct cli_net_iface *ifc = last_iface(c, "--mtu");
	unsigned long mtu;

	if (!ifc || (ifc->mtu && given_twice(c, ifc, "--mtu")))
		return -EINVAL;
	if (cli_parse_uint(text, CLI_NET_MTU_MIN, CLI_NET_MTU_MAX, &mtu)) {
		log_err("--mtu: \"%s\" is not a number from %u to %u", text, CLI_NET_MTU_MIN,
			CLI_NET_MTU_MAX);
		return -EINVAL;
	}
	ifc->mtu = (uint16_t)mtu;
	return 0;
}

int cli_net_controls_take(struct cli_net_controls *c, int opt, const char *optarg)
{
	switch (opt) {
	case CLI_OPT_MAC:
		return take_mac(c, optarg);
	case CLI_OPT_MTU:
		return take_mtu(c, optarg);
	case CLI_OPT_IFACE_ID:
		return take_id(c, "--iface-id", optarg);
	case CLI_OPT_MMDS_IFACE:
		return take_id(c, "--mmds-iface", optarg);
	case CLI_OPT_TX_RATE_LIMIT:
	case CLI_OPT_RX_RATE_LIMIT:
		return take_limit(c, opt, optarg);
	case CLI_OPT_API_SOCK:
		c->api_sock = optarg;
		return 0;
	default:
		return cli_mmds_take(&c->mmds, opt, optarg);
	}
}

static struct cli_net_iface *find(struct cli_net_controls *c, const char *id)
{
	for (unsigned i = 0; i < c->n_ifaces; i++)
		if (!strcmp(c->ifaces[i].id, id))
			return &c->ifaces[i];
	return NULL;
}

/* --mmds-iface names (or the first interface) get the interceptor. */
static int place_mmds(struct cli_net_controls *c)
{
	if (!c->mmds.enabled) {
		if (c->n_mmds_iface) {
			log_err("--mmds-iface needs --mmds");
			return -EINVAL;
		}
		return 0;
	}
	if (!c->n_ifaces) {
		log_err("--mmds needs a network device (%s)", c->backend_opt);
		return -EINVAL;
	}
	if (!c->n_mmds_iface)
		c->ifaces[0].mmds = true;
	for (unsigned i = 0; i < c->n_mmds_iface; i++) {
		struct cli_net_iface *ifc = find(c, c->mmds_iface[i]);
		if (!ifc) {
			log_err("--mmds-iface %s: no interface has that id", c->mmds_iface[i]);
			return -EINVAL;
		}
		ifc->mmds = true;
	}
	return 0;
}

int cli_net_controls_check(struct cli_net_controls *c)
{
	for (unsigned i = 0; i < c->n_ifaces; i++) {
		if (!c->ifaces[i].id_given)
			snprintf(c->ifaces[i].id, sizeof(c->ifaces[i].id), "eth%u", i);
		if (!c->ifaces[i].mac_given)
			net_random_mac(c->ifaces[i].mac);
	}
	for (unsigned i = 0; i < c->n_ifaces; i++)
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(c->ifaces[i].id, c->ifaces[j].id)) {
				log_err("--iface-id: two interfaces are called \"%s\"", c->ifaces[i].id);
				return -EINVAL;
			}
	if (cli_mmds_check(&c->mmds) < 0)
		return -EINVAL;
	return place_mmds(c);
}

int cli_net_controls_mmds(const struct cli_net_controls *c, struct mmds **out)
{
	return cli_mmds_new_store(&c->mmds, out);
}

/*
 * The device's MTU: --mtu, which must not exceed the host interface's MTU
 * (a tap's: the kernel would drop the guest's larger frames, as
 * cloud-hypervisor refuses too); without --mtu the host interface's own,
 * so the guest uses what the host carries, or 1500.
 */
static int device_mtu(const struct cli_net_iface *ifc, const struct net_backend *be,
		      uint16_t *mtu)
{
	if (!ifc->mtu) {
		bool usable = be->host_mtu >= CLI_NET_MTU_MIN && be->host_mtu <= CLI_NET_MTU_MAX;
		*mtu = usable ? (uint16_t)be->host_mtu : CLI_NET_DEFAULT_MTU;
		return 0;
	}
	if (be->host_mtu && ifc->mtu > be->host_mtu) {
		const char *dev = strncmp(ifc->backend, "tap:", 4) ? "NAME" : ifc->backend + 4;
		log_err("--mtu %u: larger than the MTU of %s (%u), which would drop the guest's "
			"larger frames; raise it first (ip link set dev %s mtu %u) or give a "
			"smaller --mtu", ifc->mtu, ifc->backend, be->host_mtu, dev, ifc->mtu);
		return -EINVAL;
	}
	*mtu = ifc->mtu;
	return 0;
}

struct net_backend *cli_net_controls_backend(const struct cli_net_controls *c, unsigned i,
					     struct event_loop *loop, struct mmds *m,
					     struct net_config_opts *config)
{
	const struct cli_net_iface *ifc = &c->ifaces[i];
	char err[256] = "";
	struct net_backend *be = net_backend_create(ifc->backend, loop, err, sizeof(err));

	if (!be) {
		log_err("%s %s: %s", c->backend_opt, ifc->backend, err);
		return NULL;
	}
	memcpy(config->mac, ifc->mac, sizeof(config->mac));
	if (device_mtu(ifc, be, &config->mtu) < 0) {
		be->ops->destroy(be);
		return NULL;
	}
	log_info("%s: MAC %02x:%02x:%02x:%02x:%02x:%02x%s, MTU %u", ifc->id, ifc->mac[0], ifc->mac[1],
		 ifc->mac[2], ifc->mac[3], ifc->mac[4], ifc->mac[5], ifc->mac_given ? "" : " (random)",
		 config->mtu);
	if (m && ifc->mmds && cli_mmds_intercept(loop, m, &be) < 0)
		return NULL;
	return be;
}

void cli_net_controls_apply_limits(const struct cli_net_controls *c, unsigned i,
				   struct net_device *net)
{
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++)
		net_device_set_rate_limit(net, q, &c->ifaces[i].limit[q]);
}

int cli_net_controls_start_api(const struct cli_net_controls *c, struct event_loop *loop,
			       struct net_device *const nets[], struct mmds *m,
			       const struct api_counter_source *sources, unsigned n_sources,
			       struct api **out)
{
	struct api_opts o = { .socket_path = c->api_sock, .n_ifaces = c->n_ifaces, .mmds = m };
	char err[256] = "";

	*out = NULL;
	if (!c->api_sock)
		return 0;
	for (unsigned i = 0; i < c->n_ifaces; i++) {
		const struct cli_net_iface *ifc = &c->ifaces[i];
		o.ifaces[i] = (struct api_iface){
			.net = nets[i], .iface_id = ifc->id, .mmds = ifc->mmds && m,
			.host_dev_name = !strncmp(ifc->backend, "tap:", 4) ? ifc->backend + 4 : NULL,
		};
	}
	for (unsigned i = 0; i < n_sources && i < API_MAX_SOURCES; i++)
		o.sources[o.n_sources++] = sources[i];
	*out = api_start(loop, &o, err, sizeof(err));
	if (!*out) {
		log_err("--api-sock %s: %s", c->api_sock, err);
		return -1;
	}
	log_info("control API on %s (%u interface%s)", c->api_sock, c->n_ifaces,
		 c->n_ifaces == 1 ? "" : "s");
	return 0;
}
