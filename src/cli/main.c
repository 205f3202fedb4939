/* kvmini: entry point and subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"


static void usage(FILE *out)
{
	fputs("usage: kvmini <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  run         boot a guest on KVM with kvmini's devices in-process\n"
	      "  vhost net   serve a virtio-net device as a vhost-user backend\n"
	      "  vhost fs    serve a virtio-fs device as a vhost-user backend\n"
	      "  vhost blk   serve a virtio-blk device on a raw image as a vhost-user backend\n"
	      "  fuse-mount  share a host directory through kvmini's FUSE server on /dev/fuse\n"
	      "  jail        start a VMM confined as Firecracker's jailer does (also: `jailer`)\n"
	      "\n"
	      "  kvmini <command> --help   options of a command\n"
	      "  kvmini --version          print the version\n", out);
}

int main(int argc, char **argv)
{
	/* Under Firecracker's names (build/firecracker, build/jailer): their
	 * command lines. */
	const char *slash = argv[0] ? strrchr(argv[0], '/') : NULL;
	const char *name = argv[0] ? (slash ? slash + 1 : argv[0]) : "";
	if (!strcmp(name, "firecracker"))
		return cmd_firecracker(argc, argv);
	if (!strcmp(name, "jailer"))
		return cmd_jail(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("kvmini %s\n", KVMINI_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "vhost"))
		return cmd_vhost(argc - 1, argv + 1);
	if (!strcmp(argv[1], "jail"))
		return cmd_jail(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fuse-mount"))
		return cmd_fuse_mount(argc - 1, argv + 1);
	fprintf(stderr, "kvmini: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
