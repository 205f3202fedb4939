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
#include "cli/counters_dump.h"
#include "cli/net_controls.h"
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
	"                         tap-fd:N        a tap another process opened (IFF_TAP,\n"
	"                                         IFF_NO_PI), inherited as descriptor N;\n"
	"                                         vnet headers and offloads if it has\n"
	"                                         IFF_VNET_HDR, plain frames if not\n"
	"                         user[:OPTIONS]  user-mode NAT through libslirp; OPTIONS are\n"
	"                                         comma-separated: net=10.0.2.0/24, host=,\n"
	"                                         dhcpstart=, dns=, restrict=on|off,\n"
	"                                         hostfwd=tcp|udp:[HADDR]:HPORT-[GADDR]:GPORT\n"
	"                         stream:PATH     a unix stream socket with 4-byte big-endian\n"
	"                                         length framing (passt, qemu -netdev stream)\n"
	"                         loopback        every frame sent comes back to the guest\n"
	"  --mac MAC            the device's MAC, unicast (default: random, locally\n"
	"                       administered, new at every start and logged)\n"
	"  --mtu N              MTU offered to the guest, 68..65535 (default: a tap's own\n"
	"                       MTU, else 1500; a tap's MTU must be at least --mtu)\n"
	"  --offloads on|off    offer checksum and segmentation offloads (default on;\n"
	"                       off: plain frames only, mergeable RX buffers stay)\n"
	"  --queues N           queue pairs, 1..16 (default 1; VIRTIO_NET_F_MQ and\n"
	"                       vhost-user MQ): a thread and a backend queue each (a tap\n"
	"                       opened N times with multi_queue, N tap-fd descriptors, or\n"
	"                       N loopbacks); user and stream have one\n"
	"  --tx-coalesce-us N   a kick's TX drain waits N us (0..1000, default 0: at\n"
	"                       once) for the frames the guest queues after it: fewer\n"
	"                       kicks and interrupts (UML to the host: 1.0 to 1.5x at\n"
	"                       60), N us more latency\n"
	"  --poll-us N          after moving frames, a queue pair's thread keeps polling\n"
	"                       its kicks and backend for an adaptive window of at most\n"
	"                       N us (0..1000, default 200; 0: never) before sleeping:\n"
	"                       no wake-up on the next frame (UML's receive 2 to 3x),\n"
	"                       at the price of that CPU; a quiet queue never polls\n"
	"  --inband             also offer in-band notifications (kicks and interrupts as\n"
	"                       vhost-user messages); off by default: UML acks every\n"
	"                       in-band kick synchronously (0.63x its throughput to a tap)\n"
	"  --no-inband          kick and call fds only (the default; kept for scripts)\n"
	CLI_RATE_LIMIT_USAGE
	CLI_API_USAGE
	"  --iface-id ID        the interface's id in API paths and metrics (default eth0)\n"
	CLI_MMDS_USAGE
	"  --counters-file PATH also write the counters to PATH on SIGUSR1 and at exit\n"
	CLI_SECCOMP_USAGE
	"  -v, --verbose        log each vhost-user message and more\n"
	"  -q, --quiet          log errors only\n"
	"  -h, --help           this text\n"
	"\n"
	"Counters are printed to stderr on SIGUSR1 and at exit (SIGINT, SIGTERM).\n";

struct net_args {
	const char *socket_path;
	const char *backend;
	const char *counters_file;
	bool inband;
	struct cli_net_controls ctl;     /* one interface: ids, limits, MMDS, API */
};

static int parse_net_args(int argc, char **argv, struct net_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "backend", required_argument, NULL, 'b' },
		{ "inband", no_argument, NULL, 'I' },
		{ "no-inband", no_argument, NULL, 'N' },
		{ "counters-file", required_argument, NULL, 'c' },
		{ "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_NET_CONTROLS_LONG_OPTIONS,
		{ 0 },
	};
	int c;

	*a = (struct net_args){ 0 };
	cli_net_controls_init(&a->ctl, "kvmini vhost net", "--backend", 1);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int m = cli_net_controls_take(&a->ctl, c, optarg);
		if (m < 0)
			return m;
		if (m == 0)
			continue;
		switch (c) {
		case 's': a->socket_path = optarg; break;
		case 'b': a->backend = optarg; break;
		case 'c': a->counters_file = optarg; break;
		case 'I': a->inband = true; break;
		case 'N': a->inband = false; break;
		case CLI_OPT_SECCOMP:
			if (cli_seccomp_option(optarg))
				return -EINVAL;
			break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'q': log_threshold = LOG_ERROR; break;
		case 'h': fputs(net_usage, stdout); return 1;
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
	if (!a->socket_path || !a->backend) {
		log_err("--socket and --backend are required (see kvmini vhost net --help)");
		return -EINVAL;
	}
	a->ctl.ifaces[0].backend = a->backend;
	return cli_net_controls_check(&a->ctl);
}

/* Signals arrive as events on the loop thread; the counters the queue
 * pairs' threads keep are read there with atomic loads. */
struct signal_watch {
	struct cli_signals sig;
	struct net_device *net;
	struct vhost_user_server *server;
	const char *counters_file;
	struct event_loop *loop;
};

static void visit_all(void *opaque, const struct counter_sink *sink)
{
	const struct signal_watch *w = opaque;

	net_device_visit_counters(w->net, sink);
	vhost_user_server_visit_counters(w->server, sink);
}

static void dump_counters(struct signal_watch *w)
{
	cli_counters_dump(visit_all, w, w->counters_file);
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

static void visit_vhost_user(void *opaque, const struct counter_sink *sink)
{
	vhost_user_server_visit_counters(opaque, sink);
}

static int serve_net(const struct net_args *a)
{
	struct event_loop loop;
	struct vhost_user_server server;
	struct signal_watch sig = { .counters_file = a->counters_file, .loop = &loop,
				    .server = &server };
	int status = EXIT_RUNTIME;

	if (cli_signals_block() < 0 || event_loop_init(&loop) < 0) {
		log_err("epoll: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	struct mmds *mmds = NULL;
	struct net_iface iface;
	const struct net_iface_names names = cli_net_controls_names(&a->ctl);
	if (cli_net_controls_mmds(&a->ctl, &mmds) < 0 ||
	    net_iface_open(&iface, &a->ctl.ifaces[0], &loop, mmds, &names) < 0) {
		mmds_free(mmds);
		event_loop_destroy(&loop);
		return EXIT_USAGE;
	}
	struct net_device *net = iface.dev;
	sig.net = net;
	struct vhost_user_opts vopts = VHOST_USER_OPTS_DEFAULT;
	vopts.queue_num = iface.npairs;   /* queue pairs, as net front-ends count */
	/* Kick and call fds unless asked: see --inband in the usage. */
	if (!a->inband)
		vopts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	int r = vhost_user_server_init(&server, &net->vdev, &loop, a->socket_path, &vopts);
	if (r < 0) {
		log_err("--socket %s: %s", a->socket_path, strerror(-r));
		goto out_iface;
	}
	struct api *api;
	const struct api_opts extra = {
		.sources = { { "vhost_user", visit_vhost_user, &server } }, .n_sources = 1,
	};
	if (cli_net_controls_start_api(&a->ctl, &loop, a->ctl.ifaces, a->ctl.n_ifaces, &net, mmds,
				       &extra, &api) < 0)
		goto out_server;
	r = cli_signals_watch(&sig.sig, &loop, on_signal);
	if (r < 0) {
		log_err("signalfd: %s", strerror(-r));
		api_stop(api);
		goto out_server;
	}
	log_info("virtio-net on %s, backend %s", a->socket_path, a->backend);
	status = cli_confine_main() < 0 || event_loop_run(&loop) < 0 ? EXIT_RUNTIME : 0;
	dump_counters(&sig);
	cli_signals_close(&sig.sig, &loop);
	api_stop(api);
out_server:
	vhost_user_server_destroy(&server);
out_iface:
	net_iface_close(&iface);
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
