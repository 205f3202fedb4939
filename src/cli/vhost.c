/* `kvmini vhost DEVICE`: pick the device served over vhost-user. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

static const char vhost_usage[] =
	"usage: kvmini vhost <device> [options]\n"
	"\n"
	"devices:\n"
	"  net   virtio-net (kvmini vhost net --help)\n"
	"  fs    virtio-fs (kvmini vhost fs --help)\n"
	"  blk   virtio-blk on a raw image (kvmini vhost blk --help)\n";

int cmd_vhost(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(vhost_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "net"))
		return cmd_vhost_net(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fs"))
		return cmd_vhost_fs(argc - 1, argv + 1);
	if (!strcmp(argv[1], "blk"))
		return cmd_vhost_blk(argc - 1, argv + 1);
	log_err("unknown vhost device \"%s\"", argv[1]);
	fputs(vhost_usage, stderr);
	return EXIT_USAGE;
}
