/* The operator controls of virtio-net interfaces (see net_controls.h). */
#include "cli/net_controls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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

int cli_net_controls_take(struct cli_net_controls *c, int opt, const char *optarg)
{
	switch (opt) {
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
	for (unsigned i = 0; i < c->n_ifaces; i++)
		if (!c->ifaces[i].id_given)
			snprintf(c->ifaces[i].id, sizeof(c->ifaces[i].id), "eth%u", i);
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

struct net_backend *cli_net_controls_backend(const struct cli_net_controls *c, unsigned i,
					     struct event_loop *loop, struct mmds *m)
{
	const struct cli_net_iface *ifc = &c->ifaces[i];
	char err[256] = "";
	struct net_backend *be = net_backend_create(ifc->backend, loop, err, sizeof(err));

	if (!be) {
		log_err("%s %s: %s", c->backend_opt, ifc->backend, err);
		return NULL;
	}
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
