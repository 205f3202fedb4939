/*
 * `kvmini vhost blk`: the virtio-blk device of `kvmini run --drive` on a raw
 * image, served to a vhost-user frontend (QEMU's vhost-user-blk-pci,
 * cloud-hypervisor, User-Mode Linux) on a socket, as qemu-storage-daemon's
 * vhost-user-blk export is.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "blk/blk_image.h"
#include "blk/virtio_blk.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/counters_dump.h"
#include "cli/signals.h"
#include "core/compiler.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "transport/vhost_user.h"

static const char blk_usage[] =
	"usage: kvmini vhost blk --socket PATH --image FILE [options]\n"
	"\n"
	"Serve a virtio-blk device on a raw image (a regular file or a block device)\n"
	"as a vhost-user backend on a unix socket (QEMU: -device vhost-user-blk-pci).\n"
	"\n"
	"  --socket PATH          unix socket to listen on (created; a stale one is replaced)\n"
	"  --image FILE           the raw image served; its size in whole 512-byte\n"
	"                         sectors is the capacity\n"
	"  --read-only            open FILE read-only and offer VIRTIO_BLK_F_RO: the\n"
	"                         guest's writes, discards and zeroings fail\n"
	"  --serial ID            what the guest reads with GET_ID, at most 20 bytes\n"
	"                         (default: none)\n"
	"  --queues N             request queues; 1 only (one worker thread)\n"
	"  --inband               also offer in-band notifications (kicks and interrupts as\n"
	"                         vhost-user messages; off by default, as for vhost fs)\n"
	"  --counters-file PATH   also write the counters to PATH on SIGUSR1 and at exit\n"
	CLI_SECCOMP_USAGE
	"  -v, --verbose          log each vhost-user message and more\n"
	"  -q, --quiet            log errors only\n"
	"  -h, --help             this text\n"
	"\n"
	"Counters are printed to stderr on SIGUSR1 and at exit (SIGINT, SIGTERM).\n";

struct blk_args {
	const char *socket_path;
	const char *image;
	const char *serial;
	const char *counters_file;
	bool read_only;
	bool inband;
};

/* The options with a value; 0, or -EINVAL (logged). */
static int take_value(struct blk_args *a, int c, const char *val)
{
	unsigned long n;

	switch (c) {
	case 's': a->socket_path = val; return 0;
	case 'i': a->image = val; return 0;
	case 'c': a->counters_file = val; return 0;
	case 'S':
		if (strlen(val) <= BLK_SERIAL_LEN) {
			a->serial = val;
			return 0;
		}
		log_err("--serial: \"%s\" is longer than %u bytes", val, BLK_SERIAL_LEN);
		return -EINVAL;
	case 'Q':
		/* The device has one request queue (and no VIRTIO_BLK_F_MQ). */
		if (cli_parse_uint(val, 1, 1, &n) == 0)
			return 0;
		log_err("--queues: \"%s\": the device has 1 request queue", val);
		return -EINVAL;
	}
	log_err("unknown option (see kvmini vhost blk --help)");
	return -EINVAL;
}

/* One option; 0, 1 after --help, or -EINVAL (logged). */
static int take_option(struct blk_args *a, int c, char **argv)
{
	switch (c) {
	case 'r': a->read_only = true; return 0;
	case 'I': a->inband = true; return 0;
	case CLI_OPT_SECCOMP: return cli_seccomp_option(optarg);
	case 'v': log_threshold = LOG_DEBUG; return 0;
	case 'q': log_threshold = LOG_ERROR; return 0;
	case 'h': fputs(blk_usage, stdout); return 1;
	case ':':
		log_err("option %s needs a value", argv[optind - 1]);
		return -EINVAL;
	case '?':
		log_err("unknown option \"%s\" (see kvmini vhost blk --help)", argv[optind - 1]);
		return -EINVAL;
	}
	return take_value(a, c, optarg);
}

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_blk_args(int argc, char **argv, struct blk_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "image", required_argument, NULL, 'i' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "serial", required_argument, NULL, 'S' },
		{ "queues", required_argument, NULL, 'Q' },
		{ "inband", no_argument, NULL, 'I' },
		{ "counters-file", required_argument, NULL, 'c' },
		{ "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*a = (struct blk_args){ 0 };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int r = take_option(a, c, argv);
		if (r)
			return r;
	}
	if (optind < argc) {
		log_err("unexpected argument \"%s\" (see kvmini vhost blk --help)", argv[optind]);
		return -EINVAL;
	}
	if (!a->socket_path || !a->image) {
		log_err("--socket and --image are required (see kvmini vhost blk --help)");
		return -EINVAL;
	}
	return 0;
}

/* --- serving ----------------------------------------------------------------- */

struct blk_service {
	const struct blk_args *args;
	struct event_loop loop;
	struct vhost_user_server server;
	bool server_up;
	struct blk_image img;
	struct virtio_blk dev;
	bool dev_up;
	struct cli_signals sig;
};

static void visit_all(void *opaque, const struct counter_sink *sink)
{
	struct blk_service *svc = opaque;

	svc->dev.vdev.ops->visit_counters(&svc->dev.vdev, sink);
	vhost_user_server_visit_counters(&svc->server, sink);
}

static void on_signal(struct cli_signals *cs, int signo)
{
	struct blk_service *svc = container_of(cs, struct blk_service, sig);

	if (signo == SIGUSR1) {
		cli_counters_dump(visit_all, svc, svc->args->counters_file);
	} else {
		log_info("signal %d: shutting down", signo);
		event_loop_quit(&svc->loop);
	}
}

/* Device, transport and signals; undone by teardown(). EXIT_* on error. */
static int setup(struct blk_service *svc)
{
	const struct blk_args *a = svc->args;
	/* Before the device starts its worker: it inherits the mask. */
	int r = cli_signals_block();

	if (r == 0)
		r = virtio_blk_init(&svc->dev, &svc->img, &svc->loop);
	if (r < 0) {
		log_err("virtio-blk device: %s", strerror(-r));
		return EXIT_RUNTIME;
	}
	svc->dev_up = true;
	struct vhost_user_opts vopts = VHOST_USER_OPTS_DEFAULT;
	/* Kick and call fds unless asked: see --inband in the usage. */
	if (!a->inband)
		vopts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	r = vhost_user_server_init(&svc->server, &svc->dev.vdev, &svc->loop, a->socket_path, &vopts);
	if (r < 0) {
		log_err("--socket %s: %s", a->socket_path, strerror(-r));
		return EXIT_RUNTIME;
	}
	svc->server_up = true;
	r = cli_signals_watch(&svc->sig, &svc->loop, on_signal);
	if (r < 0) {
		log_err("signalfd: %s", strerror(-r));
		return EXIT_RUNTIME;
	}
	return 0;
}

/* The server goes first: its disconnect resets the device, which waits for
 * the request in flight, before the worker is joined. */
static void teardown(struct blk_service *svc)
{
	cli_signals_close(&svc->sig, &svc->loop);
	if (svc->server_up)
		vhost_user_server_destroy(&svc->server);
	if (svc->dev_up)
		virtio_blk_destroy(&svc->dev);
	blk_image_close(&svc->img);
}

static int serve_blk(const struct blk_args *a)
{
	struct blk_service svc = { .args = a };
	struct errbuf eb = { 0 };
	int status;

	/* A missing or unusable image is the operator's input: a usage error. */
	if (blk_image_open(&svc.img, a->image, a->read_only, a->serial, &eb) < 0) {
		log_err("--image %s", eb.msg);
		return EXIT_USAGE;
	}
	if (event_loop_init(&svc.loop) < 0) {
		log_err("epoll: %s", strerror(errno));
		blk_image_close(&svc.img);
		return EXIT_RUNTIME;
	}
	status = setup(&svc);
	if (status == 0) {
		log_info("virtio-blk on %s: %s, %llu sectors%s", a->socket_path, a->image,
			 (unsigned long long)svc.img.sectors, a->read_only ? ", read-only" : "");
		status = cli_confine_main() < 0 || event_loop_run(&svc.loop) < 0 ? EXIT_RUNTIME : 0;
		cli_counters_dump(visit_all, &svc, a->counters_file);
	}
	teardown(&svc);
	event_loop_destroy(&svc.loop);
	return status;
}

int cmd_vhost_blk(int argc, char **argv)
{
	struct blk_args args;
	int r = parse_blk_args(argc, argv, &args);

	if (r > 0)
		return 0;     /* --help */
	if (r < 0)
		return EXIT_USAGE;
	return serve_blk(&args);
}
