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
static struct net_iface_config *last_iface(struct cli_net_controls *c, const char *opt)
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
	struct net_iface_config *ifc = last_iface(c, name);
	struct errbuf eb = { 0 };

	if (!ifc)
		return -EINVAL;
	unsigned q = opt == CLI_OPT_TX_RATE_LIMIT ? NET_TX_QUEUE : NET_RX_QUEUE;
	if (rate_limiter_parse(text, &ifc->limit[q], &eb) == 0)
		return 0;
	log_err("%s: %s", name, eb.msg);
	return -EINVAL;
}

static bool id_ok(const char *id)
{
	return *id && !strchr(id, '/') && strlen(id) <= NET_IFACE_ID_MAX;
}

static int take_id(struct cli_net_controls *c, const char *opt, const char *id)
{
	if (!id_ok(id)) {
		log_err("%s: \"%s\" must be 1 to %u characters, no '/'", opt, id, NET_IFACE_ID_MAX);
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
	struct net_iface_config *ifc = last_iface(c, opt);
	if (!ifc)
		return -EINVAL;
	snprintf(ifc->id, sizeof(ifc->id), "%s", id);
	ifc->id_given = true;
	return 0;
}

/* A second --mac or --mtu for one interface: refused, not silently replaced. */
static bool given_twice(const struct cli_net_controls *c, const struct net_iface_config *ifc,
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
	struct net_iface_config *ifc = last_iface(c, "--mac");

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
	struct net_iface_config *ifc = last_iface(c, "--mtu");
	unsigned long mtu;

	if (!ifc || (ifc->mtu && given_twice(c, ifc, "--mtu")))
		return -EINVAL;
	if (cli_parse_uint(text, NET_IFACE_MTU_MIN, NET_IFACE_MTU_MAX, &mtu)) {
		log_err("--mtu: \"%s\" is not a number from %u to %u", text, NET_IFACE_MTU_MIN,
			NET_IFACE_MTU_MAX);
		return -EINVAL;
	}
	ifc->mtu = (uint16_t)mtu;
	return 0;
}

/* --offloads on|off, for the --net before it. */
static int take_offloads(struct cli_net_controls *c, const char *text)
{
	struct net_iface_config *ifc = last_iface(c, "--offloads");

	if (!ifc)
		return -EINVAL;
	if (strcmp(text, "on") && strcmp(text, "off")) {
		log_err("--offloads: \"%s\" is neither on nor off", text);
		return -EINVAL;
	}
	ifc->offloads_off = !strcmp(text, "off");
	return 0;
}

/* @opt's @text: a number of @unit from @min to @max, into *@out. 0 or -EINVAL. */
static int parse_count(const char *opt, const char *text, const char *unit, unsigned min,
		       unsigned max, unsigned *out)
{
	unsigned long n;

	if (cli_parse_uint(text, min, max, &n)) {
		log_err("%s: \"%s\" is not a number of %s from %u to %u", opt, text, unit, min,
			max);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

/* --queues N, for the --net before it. */
static int take_queues(struct cli_net_controls *c, const char *text)
{
	struct net_iface_config *ifc = last_iface(c, "--queues");

	return ifc ? parse_count("--queues", text, "queue pairs", 1, NET_MAX_QUEUE_PAIRS,
				 &ifc->queues)
		   : -EINVAL;
}

/* --tx-coalesce-us N, for the --net before it. */
static int take_tx_coalesce(struct cli_net_controls *c, const char *text)
{
	struct net_iface_config *ifc = last_iface(c, "--tx-coalesce-us");

	return ifc ? parse_count("--tx-coalesce-us", text, "microseconds", 0,
				 NET_TX_COALESCE_MAX_US, &ifc->tx_coalesce_us)
		   : -EINVAL;
}

/* --poll-us N, for the --net before it. */
static int take_poll(struct cli_net_controls *c, const char *text)
{
	struct net_iface_config *ifc = last_iface(c, "--poll-us");

	if (ifc)
		ifc->poll_given = true;
	return ifc ? parse_count("--poll-us", text, "microseconds", 0, NET_POLL_MAX_US,
				 &ifc->poll_us)
		   : -EINVAL;
}

int cli_net_controls_take(struct cli_net_controls *c, int opt, const char *optarg)
{
	switch (opt) {
	case CLI_OPT_TX_COALESCE:
		return take_tx_coalesce(c, optarg);
	case CLI_OPT_POLL:
		return take_poll(c, optarg);
	case CLI_OPT_MAC:
		return take_mac(c, optarg);
	case CLI_OPT_MTU:
		return take_mtu(c, optarg);
	case CLI_OPT_OFFLOADS:
		return take_offloads(c, optarg);
	case CLI_OPT_QUEUES:
		return take_queues(c, optarg);
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

static struct net_iface_config *find(struct cli_net_controls *c, const char *id)
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
		struct net_iface_config *ifc = find(c, c->mmds_iface[i]);
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

struct net_iface_names cli_net_controls_names(const struct cli_net_controls *c)
{
	return (struct net_iface_names){ .backend = c->backend_opt, .mtu = "--mtu",
					 .mmds = "--mmds" };
}

int cli_net_controls_mmds(const struct cli_net_controls *c, struct mmds **out)
{
	return cli_mmds_new_store(&c->mmds, out);
}

void cli_api_ifaces(const struct net_iface_config *cfgs, unsigned n,
		    struct net_device *const nets[], struct mmds *m, struct api_iface out[])
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (struct api_iface){
			.net = nets[i], .iface_id = cfgs[i].id, .mmds = cfgs[i].mmds && m,
			.host_dev_name = net_iface_host_dev_name(&cfgs[i]),
		};
}

int cli_net_controls_start_api(const struct cli_net_controls *c, struct event_loop *loop,
			       const struct net_iface_config *cfgs, unsigned n,
			       struct net_device *const nets[], struct mmds *m,
			       const struct api_opts *extra, struct api **out)
{
	struct api_opts o = *extra;
	struct errbuf eb = { 0 };

	*out = NULL;
	if (!c->api_sock)
		return 0;
	o.socket_path = c->api_sock;
	o.n_ifaces = n;
	o.mmds = m;
	cli_api_ifaces(cfgs, n, nets, m, o.ifaces);
	*out = api_start(loop, &o, &eb);
	if (!*out) {
		log_err("--api-sock %s: %s", c->api_sock, eb.msg);
		return -EINVAL;     /* api_start says why in eb.msg, not in errno */
	}
	log_info("control API on %s (%u interface%s)", c->api_sock, n, n == 1 ? "" : "s");
	return 0;
}
