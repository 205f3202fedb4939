/*
 * `kvmini vhost net`: a virtio-net device with a host backend, served to a
 * vhost-user frontend (QEMU, cloud-hypervisor, User-Mode Linux) on a socket.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/mmds_args.h"
#include "cli/signals.h"
#include "core/compiler.h"
#include "api/api.h"
#include "core/log.h"
#include "net/net_device.h"
#include "transport/vhost_user.h"

static const char net_usage[] =
	"usage: kvmini vhost net --socket PATH --backend BACKEND [options]\n"
	"\n"
	"Serve a virtio-net device as a vhost-user backend on a unix socket.\n"
	"\n"
	"  --socket PATH        unix socket to listen on (created; a stale one is replaced)\n"
	"  --backend BACKEND    where the guest's frames go:\n"
	"                         tap:NAME        a tap device (opened with vnet headers)\n"
	"                         user[:OPTIONS]  user-mode NAT through libslirp; OPTIONS are\n"
	"                                         comma-separated: net=10.0.2.0/24, host=,\n"
	"                                         dhcpstart=, dns=, restrict=on|off,\n"
	"                                         hostfwd=tcp|udp:[HADDR]:HPORT-[GADDR]:GPORT\n"
	"                         stream:PATH     a unix stream socket with 4-byte big-endian\n"
	"                                         length framing (passt, qemu -netdev stream)\n"
	"                         loopback        every frame sent comes back to the guest\n"
	"  --mac MAC            the device's MAC address (default 52:54:00:12:34:56)\n"
	"  --mtu N              MTU advertised to the guest, 68..65535 (default 1500)\n"
	"  --no-inband          do not offer in-band notifications (kick/call fds only)\n"
	"  --tx-rate-limit SPEC limit guest->host traffic; SPEC is comma-separated:\n"
	"                         bw=SIZE/REFILL_MS   a byte bucket of SIZE bytes refilled\n"
	"                                             every REFILL_MS ms (SIZE*1000/REFILL_MS B/s)\n"
	"                         bw_burst=N          N extra bytes, spent first, once\n"
	"                         ops=SIZE/REFILL_MS  a frame bucket, likewise\n"
	"                         ops_burst=N         N extra frames, spent first, once\n"
	"                       e.g. bw=1250000/100 is 100 Mbit/s (changeable through the API)\n"
	"  --rx-rate-limit SPEC limit host->guest traffic, the same way\n"
	"  --api-sock PATH      serve the control API (Firecracker's paths: /mmds,\n"
	"                       /mmds/config, /network-interfaces/ID, /metrics, /actions)\n"
	"                       over HTTP on the unix socket PATH\n"
	"  --iface-id ID        the interface's id in API paths and metrics (default eth0)\n"
	CLI_MMDS_USAGE
	"  --counters-file PATH also write the counters to PATH on SIGUSR1 and at exit\n"
	"  -v, --verbose        log each vhost-user message and more\n"
	"  -q, --quiet          log errors only\n"
	"  -h, --help           this text\n"
	"\n"
	"Counters are printed to stderr on SIGUSR1 and at exit (SIGINT, SIGTERM).\n";

struct net_args {
	const char *socket_path;
	const char *backend;
	const char *counters_file;
	struct net_config_opts dev;
	bool no_inband;
	struct rate_limiter_config limit[NET_NUM_QUEUES];   /* by queue index */
	const char *api_sock;
	const char *iface_id;
	struct cli_mmds_args mmds;
};

static int parse_mtu(const char *text, uint16_t *mtu)
{
	unsigned long v;

	if (cli_parse_uint(text, 68, 65535, &v))
		return -EINVAL;
	*mtu = (uint16_t)v;
	return 0;
}

static int parse_limit(const char *opt, const char *text, struct rate_limiter_config *cfg)
{
	char err[160];

	if (rate_limiter_parse(text, cfg, err, sizeof(err)) == 0)
		return 0;
	log_err("%s: %s", opt, err);
	return -EINVAL;
}

static int parse_net_args(int argc, char **argv, struct net_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "backend", required_argument, NULL, 'b' },
		{ "mac", required_argument, NULL, 'm' },
		{ "mtu", required_argument, NULL, 'M' },
		{ "no-inband", no_argument, NULL, 'I' },
		{ "counters-file", required_argument, NULL, 'c' },
		{ "tx-rate-limit", required_argument, NULL, 'T' },
		{ "rx-rate-limit", required_argument, NULL, 'R' },
		{ "api-sock", required_argument, NULL, 'A' },
		{ "iface-id", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_MMDS_LONG_OPTIONS,
		{ 0 },
	};
	int c;

	*a = (struct net_args){ .dev = { .mac = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, .mtu = 1500 },
				.iface_id = "eth0" };
	cli_mmds_args_init(&a->mmds);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int m = cli_mmds_take(&a->mmds, c, optarg);
		if (m < 0)
			return m;
		if (m == 0)
			continue;
		switch (c) {
		case 's': a->socket_path = optarg; break;
		case 'b': a->backend = optarg; break;
		case 'c': a->counters_file = optarg; break;
		case 'I': a->no_inband = true; break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'q': log_threshold = LOG_ERROR; break;
		case 'h': fputs(net_usage, stdout); return 1;
		case 'm':
			if (net_parse_mac(optarg, a->dev.mac) < 0) {
				log_err("--mac: \"%s\" is not a unicast MAC address like 52:54:00:12:34:56", optarg);
				return -EINVAL;
			}
			break;
		case 'M':
			if (parse_mtu(optarg, &a->dev.mtu) < 0) {
				log_err("--mtu: \"%s\" is not a number from 68 to 65535", optarg);
				return -EINVAL;
			}
			break;
		case 'A': a->api_sock = optarg; break;
		case 'i':
			if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64) {
				log_err("--iface-id: \"%s\" must be 1 to 64 characters, no '/'", optarg);
				return -EINVAL;
			}
			a->iface_id = optarg;
			break;
		case 'T':
		case 'R':
			if (parse_limit(c == 'T' ? "--tx-rate-limit" : "--rx-rate-limit", optarg,
					&a->limit[c == 'T' ? NET_TX_QUEUE : NET_RX_QUEUE]) < 0)
				return -EINVAL;
			break;
		case ':':
			log_err("option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			log_err("unknown option \"%s\" (see kvmini vhost net --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument \"%s\" (see kvmini vhost net --help)", argv[optind]);
		return -EINVAL;
	}
	if (cli_mmds_check(&a->mmds) < 0)
		return -EINVAL;
	if (!a->socket_path || !a->backend) {
		log_err("--socket and --backend are required (see kvmini vhost net --help)");
		return -EINVAL;
	}
	return 0;
}

/* Signals arrive as events on the loop, so counters are read on the thread
 * that writes them. */
struct signal_watch {
	struct cli_signals sig;
	struct net_device *net;
	struct vhost_user_server *server;
	const char *counters_file;
	struct event_loop *loop;
};

static void dump_counters(struct signal_watch *w)
{
	fputs("kvmini: counters\n", stderr);
	net_device_dump_counters(w->net, stderr);
	vhost_user_server_dump_counters(w->server, stderr);
	if (!w->counters_file)
		return;
	FILE *f = fopen(w->counters_file, "w");
	if (!f) {
		log_warn("--counters-file %s: %s", w->counters_file, strerror(errno));
		return;
	}
	net_device_dump_counters(w->net, f);
	vhost_user_server_dump_counters(w->server, f);
	fclose(f);
}

static void on_signal(struct cli_signals *cs, int signo)
{
	struct signal_watch *w = container_of(cs, struct signal_watch, sig);

	if (signo == SIGUSR1) {
		dump_counters(w);
	} else {
		log_info("signal %d: shutting down", signo);
		event_loop_quit(w->loop);
	}
}

static void dump_vhost_user(void *opaque, FILE *out)
{
	vhost_user_server_dump_counters(opaque, out);
}

/* The control API when --api-sock is given; 0 or -1 (logged). @mmds may
 * be NULL (the /mmds routes then say MMDS is off). */
static int start_api(const struct net_args *a, struct event_loop *loop, struct net_device *net,
		     struct vhost_user_server *server, struct mmds *mmds, struct api **out)
{
	char err[256] = "";
	const char *tap = !strncmp(a->backend, "tap:", 4) ? a->backend + 4 : NULL;
	struct api_opts o = {
		.socket_path = a->api_sock, .net = net, .iface_id = a->iface_id,
		.host_dev_name = tap, .mmds = mmds,
		.sources = { { "vhost_user", dump_vhost_user, server } }, .n_sources = 1,
	};

	*out = NULL;
	if (!a->api_sock)
		return 0;
	*out = api_start(loop, &o, err, sizeof(err));
	if (!*out) {
		log_err("--api-sock %s: %s", a->api_sock, err);
		return -1;
	}
	log_info("control API on %s (interface %s)", a->api_sock, a->iface_id);
	return 0;
}

static int serve_net(const struct net_args *a)
{
	struct event_loop loop;
	struct vhost_user_server server;
	struct signal_watch sig = { .counters_file = a->counters_file, .loop = &loop,
				    .server = &server };
	char err[256] = "";
	int status = EXIT_RUNTIME;

	if (cli_signals_block() < 0 || event_loop_init(&loop) < 0) {
		log_err("epoll: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	struct net_backend *be = net_backend_create(a->backend, &loop, err, sizeof(err));
	if (!be) {
		log_err("--backend %s: %s", a->backend, err);
		event_loop_destroy(&loop);
		return EXIT_USAGE;
	}
	struct mmds *mmds = NULL;
	if (cli_mmds_start(&a->mmds, &loop, &be, &mmds) < 0) {
		event_loop_destroy(&loop);
		return EXIT_USAGE;
	}
	struct net_device *net = calloc(1, sizeof(*net));
	int r = net ? net_device_init(net, &a->dev, be, &loop) : -ENOMEM;
	if (r < 0) {
		log_err("virtio-net device: %s", strerror(-r));
		goto out_backend;
	}
	sig.net = net;
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++)
		net_device_set_rate_limit(net, q, &a->limit[q]);
	struct vhost_user_opts vopts = VHOST_USER_OPTS_DEFAULT;
	vopts.queue_num = NET_NUM_QUEUES / 2;   /* queue pairs, as net frontends count */
	if (a->no_inband)
		vopts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	r = vhost_user_server_init(&server, &net->vdev, &loop, a->socket_path, &vopts);
	if (r < 0) {
		log_err("--socket %s: %s", a->socket_path, strerror(-r));
		goto out_net;
	}
	struct api *api;
	if (start_api(a, &loop, net, &server, mmds, &api) < 0)
		goto out_server;
	r = cli_signals_watch(&sig.sig, &loop, on_signal);
	if (r < 0) {
		log_err("signalfd: %s", strerror(-r));
		api_stop(api);
		goto out_server;
	}
	log_info("virtio-net on %s, backend %s", a->socket_path, a->backend);
	status = event_loop_run(&loop) < 0 ? EXIT_RUNTIME : 0;
	dump_counters(&sig);
	cli_signals_close(&sig.sig, &loop);
	api_stop(api);
out_server:
	vhost_user_server_destroy(&server);
out_net:
	net_device_destroy(net);
	free(net);
out_backend:
	be->ops->destroy(be);
	mmds_free(mmds);
	event_loop_destroy(&loop);
	return status;
}

int cmd_vhost_net(int argc, char **argv)
{
	struct net_args args;
	int r = parse_net_args(argc, argv, &args);

	if (r > 0)
		return 0;     /* --help */
	if (r < 0)
		return EXIT_USAGE;
	return serve_net(&args);
}
