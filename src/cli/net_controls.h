/*
 * The operator controls of virtio-net interfaces, shared by `kvmini vhost
 * net` (one interface) and `kvmini run` (one interface per --net):
 *   --iface-id ID        the interface's id (default eth0, eth1, ... in order)
 *   --mac MAC, --mtu N   its identity (default: a random MAC of its own,
 *                        see net_random_mac; the tap's MTU, or 1500)
 *   --offloads on|off    checksum and GSO offloads offered (default on)
 *   --queues N           queue pairs (VIRTIO_NET_F_MQ), each on a thread of its own
 *   --tx-coalesce-us N   a kick's TX drain waits N µs for more frames (default 0)
 *   --tx-rate-limit SPEC / --rx-rate-limit SPEC   its rate limiters
 *   --mmds[=ADDR], --mmds-version, --mmds-data   the metadata service (mmds_args.h)
 *   --mmds-iface ID      an interface MMDS answers on (repeatable; default the first)
 *   --api-sock PATH      the control API on a unix socket
 * With several interfaces (kvmini run), --iface-id, --mac, --mtu, --offloads, --queues,
 * --tx-coalesce-us and the rate limits apply to the --net given last before them.
 */
#ifndef KVMINI_CLI_NET_CONTROLS_H
#define KVMINI_CLI_NET_CONTROLS_H

#include <getopt.h>
#include <stdbool.h>

#include "api/api.h"
#include "cli/mmds_args.h"
#include "net/net_device.h"
#include "machine/net_iface.h"
#include "core/rate_limiter.h"

#define CLI_NET_MAX_IFACES API_MAX_IFACES

/* getopt_long codes of the options (outside the letters' range). */
enum {
	CLI_OPT_IFACE_ID = 0x4e00, CLI_OPT_TX_RATE_LIMIT, CLI_OPT_RX_RATE_LIMIT,
	CLI_OPT_API_SOCK, CLI_OPT_MMDS_IFACE, CLI_OPT_MAC, CLI_OPT_MTU, CLI_OPT_OFFLOADS,
	CLI_OPT_QUEUES, CLI_OPT_TX_COALESCE, CLI_OPT_POLL,
};

#define CLI_NET_CONTROLS_LONG_OPTIONS \
	{ "iface-id", required_argument, NULL, CLI_OPT_IFACE_ID }, \
	{ "tx-rate-limit", required_argument, NULL, CLI_OPT_TX_RATE_LIMIT }, \
	{ "rx-rate-limit", required_argument, NULL, CLI_OPT_RX_RATE_LIMIT }, \
	{ "api-sock", required_argument, NULL, CLI_OPT_API_SOCK }, \
	{ "mmds-iface", required_argument, NULL, CLI_OPT_MMDS_IFACE }, \
	{ "mac", required_argument, NULL, CLI_OPT_MAC }, \
	{ "mtu", required_argument, NULL, CLI_OPT_MTU }, \
	{ "offloads", required_argument, NULL, CLI_OPT_OFFLOADS }, \
	{ "queues", required_argument, NULL, CLI_OPT_QUEUES }, \
	{ "tx-coalesce-us", required_argument, NULL, CLI_OPT_TX_COALESCE }, \
	{ "poll-us", required_argument, NULL, CLI_OPT_POLL }, \
	CLI_MMDS_LONG_OPTIONS

#define CLI_RATE_LIMIT_USAGE \
	"  --tx-rate-limit SPEC limit guest->host traffic; SPEC is comma-separated:\n" \
	"                         bw=SIZE/REFILL_MS   a byte bucket of SIZE bytes refilled\n" \
	"                                             every REFILL_MS ms (SIZE*1000/REFILL_MS B/s)\n" \
	"                         bw_burst=N          N extra bytes, spent first, once\n" \
	"                         ops=SIZE/REFILL_MS  a frame bucket, likewise\n" \
	"                         ops_burst=N         N extra frames, spent first, once\n" \
	"                       e.g. bw=1250000/100 is 100 Mbit/s (changeable through the API)\n" \
	"  --rx-rate-limit SPEC limit host->guest traffic, the same way\n"

#define CLI_API_USAGE \
	"  --api-sock PATH      serve the control API (Firecracker's paths: /mmds,\n" \
	"                       /mmds/config, /network-interfaces/ID, /metrics, /actions)\n" \
	"                       over HTTP on the unix socket PATH\n"

#define CLI_MMDS_IFACE_USAGE \
	"  --mmds-iface ID      answer MMDS on interface ID (repeatable; default: the\n" \
	"                       first interface)\n"

struct cli_net_controls {
	const char *cmd;             /* "kvmini run", for messages */
	const char *backend_opt;     /* "--net", for messages */
	struct net_iface_config ifaces[CLI_NET_MAX_IFACES];
	unsigned n_ifaces;
	const char *api_sock;
	struct cli_mmds_args mmds;
	const char *mmds_iface[CLI_NET_MAX_IFACES];
	unsigned n_mmds_iface;
};

/* Empty; @n_ifaces interfaces exist from the start (vhost net: 1). @cmd
 * and @backend_opt name the subcommand and its backend option in messages. */
void cli_net_controls_init(struct cli_net_controls *c, const char *cmd, const char *backend_opt,
			   unsigned n_ifaces);
/* One more interface on @backend (kvmini run's --net); 0 or -EINVAL (logged). */
int cli_net_controls_add(struct cli_net_controls *c, const char *backend);
/* Take one of the options above: 1 when @opt is not one of them, 0 when
 * taken, -EINVAL (logged) for a bad value or no interface to apply it to. */
int cli_net_controls_take(struct cli_net_controls *c, int opt, const char *optarg);
/* After parsing: default ids and MACs, unique ids, where MMDS answers.
 * 0 or -EINVAL (logged). */
int cli_net_controls_check(struct cli_net_controls *c);

/* The options that set an interface up (@c's backend option, --mtu,
 * --mmds), for the machine layer to name in its messages. */
struct net_iface_names cli_net_controls_names(const struct cli_net_controls *c);

/* The MMDS store when --mmds was given, else NULL; 0 or -errno (logged). */
int cli_net_controls_mmds(const struct cli_net_controls *c, struct mmds **out);
/* The API's view of @n interfaces: @cfgs[i] served by @nets[i], MMDS
 * intercepted on those whose configuration says so when @m is set. */
void cli_api_ifaces(const struct net_iface_config *cfgs, unsigned n,
		    struct net_device *const nets[], struct mmds *m, struct api_iface out[]);

/*
 * The control API on @loop when --api-sock was given (else *@out = NULL):
 * the @n interfaces @cfgs (@c's, or a snapshot's; none before a VM is
 * built), @nets[i] interface i's device. Every device must run on @loop's
 * thread, which is where the API touches them. @extra gives what the
 * caller adds (counter sources, the VM); the socket, interfaces and MMDS
 * come from here. 0 or -EINVAL (logged).
 */
int cli_net_controls_start_api(const struct cli_net_controls *c, struct event_loop *loop,
			       const struct net_iface_config *cfgs, unsigned n,
			       struct net_device *const nets[], struct mmds *m,
			       const struct api_opts *extra, struct api **out);

#endif
