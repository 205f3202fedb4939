/*
 * `kvmini jail`, and kvmini under the name `jailer` (build/jailer):
 * Firecracker's jailer. The steps, in order, each in its src/jail module:
 * parse (nothing touched yet), close inherited descriptors, make the
 * chroot and its device nodes, make and join the cgroup, set the resource
 * limits, join the network namespace; then the VMM's process enters new
 * mount, IPC and UTS namespaces, pivots into the chroot, drops its
 * privileges and execs /<exec name>.
 *
 * With --new-pid-ns or --daemonize the jailer forks: the child becomes the
 * VMM (pid 1 of the new PID namespace with --new-pid-ns; a new session with
 * --daemonize) and the jailer, still on the host's root, learns through a
 * close-on-exec pipe whether the exec happened, writes the pid file with
 * the VMM's pid as the host sees it, then returns (--daemonize) or waits
 * for the VMM and exits with its status, passing SIGTERM, SIGINT and SIGHUP
 * on. Without either, the jailer itself becomes the VMM, as Firecracker's
 * does, and the pid file names it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "jail/jail_args.h"
#include "jail/jail_cgroup.h"
#include "jail/jail_fs.h"
#include "jail/jail_ns.h"
#include "jail/jail_priv.h"

extern char **environ;

struct jail {
	struct jail_args args;
	struct jail_fs fs;
	struct jail_cgroup cg;
	bool started;                     /* the VMM's exec happened */
	bool pivoted;                     /* this process's root is the chroot */
};

/* In the VMM's process: namespaces, root, session, privileges, exec. Only
 * returns on failure (@eb says why). */
static void confine_and_exec(struct jail *j, struct errbuf *eb)
{
	const struct jail_args *a = &j->args;
	char path[PATH_MAX];
	char **argv;

	if (jail_enter_root(j->fs.root, j->fs.dynamic, eb) < 0)
		return;
	j->pivoted = true;
	if (a->daemonize && jail_daemonize(eb) < 0)
		return;
	snprintf(path, sizeof(path), "/%s", a->exec_name);
	argv = calloc((size_t)a->vmm_argc + 4, sizeof(*argv));
	if (!argv) {
		errbuf_set(eb, "out of memory");
		return;
	}
	jail_vmm_argv(a, path, argv);
	if (jail_drop_privileges(a, eb) == 0) {
		execve(path, argv, environ);
		errbuf_set(eb, "exec %s in the jail: %s", path, strerror(errno));
	}
	free(argv);
}

static pid_t vmm_pid;

static void pass_signal(int sig)
{
	kill(vmm_pid, sig);
}

/* The jailer after the fork: the VMM's exec seen (or its error read), the
 * pid file written; then return at once or wait for the VMM. */
static int supervise(struct jail *j, pid_t pid, int ready)
{
	struct errbuf eb = { 0 };
	ssize_t n = read(ready, eb.msg, sizeof(eb.msg) - 1);
	int status, r;

	close(ready);
	if (n > 0) {
		log_err("jail: %s", eb.msg);
		waitpid(pid, NULL, 0);
		return EXIT_RUNTIME;
	}
	j->started = true;
	r = jail_fs_write_pid(j->fs.root, j->args.exec_name, pid);
	if (r < 0)
		log_err("jail: writing %s/%s.pid: %s", j->fs.root, j->args.exec_name, strerror(-r));
	if (j->args.daemonize)
		return 0;
	vmm_pid = pid;
	signal(SIGTERM, pass_signal);
	signal(SIGINT, pass_signal);
	signal(SIGHUP, pass_signal);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_RUNTIME;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int start_forked(struct jail *j)
{
	struct errbuf eb = { 0 };
	int pipefd[2];
	pid_t pid;

	if (j->args.new_pid_ns && unshare(CLONE_NEWPID) < 0) {
		log_err("jail: --new-pid-ns: unshare: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		log_err("jail: starting the VMM's process: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	if (pid == 0) {
		close(pipefd[0]);
		confine_and_exec(j, &eb);
		/* One write under PIPE_BUF, the NUL included so that even an empty
		 * message is more than EOF: the jailer reads it whole. */
		if (write(pipefd[1], eb.msg, strlen(eb.msg) + 1) < 0)
			_exit(EXIT_RUNTIME);
		_exit(EXIT_RUNTIME);
	}
	close(pipefd[1]);
	return supervise(j, pid, pipefd[0]);
}

/* No fork: the jailer becomes the VMM; its pid is the pid file's. */
static int start_in_place(struct jail *j)
{
	struct errbuf eb = { 0 };
	int r = jail_fs_write_pid(j->fs.root, j->args.exec_name, getpid());

	if (r < 0) {
		log_err("jail: writing %s/%s.pid: %s", j->fs.root, j->args.exec_name, strerror(-r));
		return EXIT_RUNTIME;
	}
	confine_and_exec(j, &eb);
	log_err("jail: %s", eb.msg);
	/* The pid file names no VMM: it goes (from where this process is). */
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s.pid", j->pivoted ? "" : j->fs.root,
		     j->args.exec_name) < (int)sizeof(path))
		unlink(path);
	return EXIT_RUNTIME;
}

static int prepare(struct jail *j)
{
	struct errbuf eb = { 0 };

	if (jail_fs_prepare(&j->fs, &j->args, &eb) < 0 ||
	    jail_cgroup_setup(&j->cg, &j->args, &eb) < 0 ||
	    jail_set_rlimits(&j->args, &eb) < 0 ||
	    (j->args.netns && jail_join_netns(j->args.netns, &eb) < 0)) {
		log_err("jail: %s", eb.msg);
		return -1;
	}
	return 0;
}

int cmd_jail(int argc, char **argv)
{
	struct errbuf eb = { 0 };
	struct jail *j = calloc(1, sizeof(*j));
	int r;

	if (!j) {
		log_err("jail: out of memory");
		return EXIT_RUNTIME;
	}
	r = jail_args_parse(&j->args, argc, argv, &eb);
	if (r != 0) {
		if (r > 0)
			fputs(jail_usage, stdout);
		else
			log_err("jail: %s (see --help)", eb.msg);
		free(j);
		return r > 0 ? 0 : EXIT_USAGE;
	}
	jail_close_fds();
	if (prepare(j) < 0) {
		jail_cgroup_undo(&j->cg);
		jail_fs_undo(&j->fs, NULL);
		free(j);
		return EXIT_RUNTIME;
	}
	if (j->args.new_pid_ns || j->args.daemonize)
		r = start_forked(j);
	else
		r = start_in_place(j);
	/* The VMM did not start: nothing of the jail stays (what is still in
	 * reach: a jailer that failed after its own pivot_root sees the chroot
	 * as "/" and the cgroup hierarchy no more). It ran and ended (the
	 * jailer waited): its cgroup goes, the chroot (logs) stays. */
	if (!j->started || !j->args.daemonize)
		jail_cgroup_undo(&j->cg);
	if (!j->started)
		jail_fs_undo(&j->fs, j->pivoted ? "/" : NULL);
	free(j);
	return r;
}
