/*
 * /dev/fuse transport: mount, worker threads, shutdown.
 */
#include "fuse/fuse_dev.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fuse/fuse_compat.h"

/* How long shutdown keeps nudging workers out of read() before giving up
 * on joining them (the process exits anyway, which ends the session). */
#define STOP_WAIT_MS 3000
#define STOP_NUDGE_MS 20

struct fuse_worker {
	struct fuse_dev *dev;
	pthread_t thread;
	bool started;
	bool done;                   /* load/store_seq_cst: worker -> stopper */
	int fd;                      /* the session fd or a clone of it */
	uint8_t *in;                 /* request buffer */
	size_t in_size;
	uint8_t *out;                /* reply buffer */
	size_t out_size;
	/* Zero-copy READ replies: file data is spliced into data_pipe, the
	 * header written into msg_pipe, the data moved behind it (pipe to
	 * pipe, no copy), and the whole message spliced into the device.
	 * The sink also carries the passthrough hooks. */
	struct fuse_reply_sink sink;
	int data_pipe[2];
	int msg_pipe[2];
	size_t pipe_cap;
};

struct fuse_dev {
	struct fuse_server *server;
	char *mountpoint;
	int fd;                      /* session descriptor from open("/dev/fuse") */
	int ended_fd;                /* eventfd: a worker saw the session end */
	bool mounted;
	bool stopping;               /* load/store_seq_cst: read by the workers */
	bool ended;                  /* load/store_seq_cst: set by a worker */
	unsigned nworkers;
	struct fuse_worker workers[FUSE_DEV_MAX_THREADS];
	struct fuse_notify_transport notify;   /* the server's notifications go to fd */
};

static void wake_handler(int sig)
{
	(void)sig;
}

static void signal_ended(struct fuse_dev *d)
{
	uint64_t one = 1;

	store_seq_cst(&d->ended, true);
	if (write(d->ended_fd, &one, sizeof(one)) < 0)
		log_debug("fuse: eventfd write: %s", strerror(errno));
}

/* Write one reply. The kernel takes it whole or not at all; ENOENT means
 * the request was interrupted and is gone, which is no error. */
static int send_reply(struct fuse_worker *w, size_t len)
{
	struct iovec iov = { .iov_base = w->out, .iov_len = len };
	ssize_t n = writev(w->fd, &iov, 1);

	if (n >= 0 || errno == ENOENT)
		return 0;
	if (errno != ENODEV)
		log_warn("fuse: writing a reply of %zu bytes: %s", len, strerror(errno));
	return -errno;
}

/* Empty a pipe after a failed splice so the next reply starts clean. */
static void drain_pipe(struct fuse_worker *w, int rd)
{
	int avail = 0;

	while (ioctl(rd, FIONREAD, &avail) == 0 && avail > 0)
		if (read(rd, w->out, MIN((size_t)avail, w->out_size)) <= 0)
			break;
}

/* Splice exactly @len bytes from pipe @rd into pipe @wr (buffer moves). */
static int move_pipe(int rd, int wr, size_t len)
{
	while (len) {
		ssize_t n = splice(rd, NULL, wr, NULL, len, SPLICE_F_MOVE);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		len -= (size_t)n;
	}
	return 0;
}

/* Fill the data pipe with up to @len bytes of @fd from @off; short only at
 * end of file. Returns the bytes spliced or -errno. */
static ssize_t splice_file(struct fuse_worker *w, int fd, uint64_t off, size_t len)
{
	loff_t pos = (loff_t)off;
	size_t done = 0;

	if (off > INT64_MAX)
		return -EINVAL;
	while (done < len) {
		ssize_t n = splice(fd, &pos, w->data_pipe[1], NULL, len - done, SPLICE_F_MOVE);
		if (n < 0)
			return done ? (ssize_t)done : -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/*
 * worker_reply_fd() - the reply sink: header then file data, spliced.
 * Nothing reaches the device unless the whole message is in the pipe.
 */
static ssize_t worker_reply_fd(struct fuse_reply_sink *sink, uint64_t unique, int fd,
			       uint64_t off, size_t len)
{
	struct fuse_worker *w = container_of(sink, struct fuse_worker, sink);
	struct fuse_out_header oh = { .unique = unique };

	if (len > w->pipe_cap)
		return -E2BIG;
	ssize_t n = splice_file(w, fd, off, len);
	if (n < 0) {
		drain_pipe(w, w->data_pipe[0]);
		return n;
	}
	oh.len = (uint32_t)(sizeof(oh) + (size_t)n);
	if (write(w->msg_pipe[1], &oh, sizeof(oh)) != sizeof(oh) ||
	    move_pipe(w->data_pipe[0], w->msg_pipe[1], (size_t)n)) {
		drain_pipe(w, w->data_pipe[0]);
		drain_pipe(w, w->msg_pipe[0]);
		return -EIO;
	}
	ssize_t sent = splice(w->msg_pipe[0], NULL, w->fd, NULL, oh.len, SPLICE_F_MOVE);
	if (sent != (ssize_t)oh.len) {
		int err = sent < 0 ? errno : EIO;
		drain_pipe(w, w->msg_pipe[0]);
		/* ENOENT: the request is gone (interrupted); it needs no reply. */
		if (err != ENOENT)
			log_debug("fuse: splicing a reply of %u bytes: %s", oh.len, strerror(err));
		if (err == ENODEV)
			signal_ended(w->dev);
	}
	return n;
}

/* Pipe capacity for @want bytes, or as close as the limits allow
 * (fs.pipe-max-size, 1 MiB by default, binds without CAP_SYS_RESOURCE). */
static int size_pipe(int fd, size_t want)
{
	int got = fcntl(fd, F_SETPIPE_SZ, (int)want);

	if (got < 0)
		got = fcntl(fd, F_SETPIPE_SZ, 1 << 20);
	return got < 0 ? fcntl(fd, F_GETPIPE_SZ) : got;
}

/* FUSE passthrough: register @fd with the kernel as a backing file. */
static int worker_backing_open(struct fuse_reply_sink *sink, int fd, int32_t *id)
{
	struct fuse_worker *w = container_of(sink, struct fuse_worker, sink);
	struct fuse_backing_map map = { .fd = fd };
	int rc = ioctl(w->fd, FUSE_DEV_IOC_BACKING_OPEN, &map);

	if (rc < 0)
		return -errno;
	*id = rc;
	return 0;
}

static void worker_backing_close(struct fuse_reply_sink *sink, int32_t id)
{
	struct fuse_worker *w = container_of(sink, struct fuse_worker, sink);
	uint32_t u = (uint32_t)id;

	if (ioctl(w->fd, FUSE_DEV_IOC_BACKING_CLOSE, &u) < 0)
		log_debug("fuse: closing backing id %d: %s", id, strerror(errno));
}

/* Passthrough hooks always; pipes for the READ replies that fit them
 * (larger ones, and all of them when the pipes cannot be made, go through
 * the reply buffer). The header takes a page slot of its own, hence the
 * page kept free. */
static void worker_init_sink(struct fuse_worker *w)
{
	w->sink = (struct fuse_reply_sink){ .backing_open = worker_backing_open,
					    .backing_close = worker_backing_close };
	if (pipe2(w->data_pipe, O_CLOEXEC) < 0 || pipe2(w->msg_pipe, O_CLOEXEC) < 0)
		return;
	int a = size_pipe(w->data_pipe[1], w->out_size + 4096);
	int b = size_pipe(w->msg_pipe[1], w->out_size + 4096);
	if (a < 65536 || b < 65536)
		return;
	w->pipe_cap = (size_t)MIN(a, b) - 4096;
	w->sink.reply_fd = worker_reply_fd;
	w->sink.min_len = 32768;
}

static void worker_close_sink(struct fuse_worker *w)
{
	for (unsigned i = 0; i < 2; i++) {
		if (w->data_pipe[i] >= 0)
			close(w->data_pipe[i]);
		if (w->msg_pipe[i] >= 0)
			close(w->msg_pipe[i]);
	}
}

/*
 * worker_main() - read requests, answer them, until the session ends.
 * ENODEV from read means the filesystem was unmounted (or aborted).
 */
static void *worker_main(void *arg)
{
	struct fuse_worker *w = arg;
	struct fuse_dev *d = w->dev;
	sigset_t wake;

	seccomp_filter_enter(SECCOMP_FS_WORKER);
	sigemptyset(&wake);
	sigaddset(&wake, SIGRTMIN);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	while (!load_seq_cst(&d->stopping)) {
		ssize_t n = read(w->fd, w->in, w->in_size);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)
				log_err("fuse: reading /dev/fuse: %s", strerror(errno));
			signal_ended(d);
			break;
		}
		struct iovec in = { .iov_base = w->in, .iov_len = (size_t)n };
		struct iovec out = { .iov_base = w->out, .iov_len = w->out_size };
		size_t len = fuse_server_handle_sink(d->server, &in, 1, &out, 1, &w->sink);
		if (len && send_reply(w, len) == -ENODEV) {
			signal_ended(d);
			break;
		}
	}
	store_seq_cst(&w->done, true);
	return NULL;
}

/* The largest READ whose reply the workers' pipes carry (a page for the
 * header, the rest for data), so reads are always spliced; 0 when pipes
 * are no limit. Writes keep the full max_write. */
static size_t splice_max_read(const struct fuse_dev *d)
{
	size_t want = fuse_server_max_reply(d->server) + 4096;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return 0;
	int got = size_pipe(p[1], want);
	close(p[0]);
	close(p[1]);
	if (got < 65536 || (size_t)got >= want)
		return 0;
	return (size_t)got - 4096;
}

static int mount_fuse(struct fuse_dev *d, const char *source)
{
	char opts[256];
	struct stat st;
	size_t max_read = splice_max_read(d);

	if (stat(d->mountpoint, &st) < 0) {
		log_err("mount point %s: %s", d->mountpoint, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("mount point %s is not a directory", d->mountpoint);
		return -ENOTDIR;
	}
	int n = snprintf(opts, sizeof(opts),
			 "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
			 d->fd, (unsigned)geteuid(), (unsigned)getegid());
	if (max_read)
		snprintf(opts + n, sizeof(opts) - (size_t)n, ",max_read=%zu", max_read);
	if (mount(source, d->mountpoint, "fuse.kvmini", MS_NOSUID | MS_NODEV, opts) < 0) {
		int err = errno;
		log_err("mounting %s: %s%s", d->mountpoint, strerror(err),
			err == EPERM ? " (mounting needs root or CAP_SYS_ADMIN)" : "");
		return -err;
	}
	d->mounted = true;
	return 0;
}

int fuse_dev_mount(struct fuse_dev **out, struct fuse_server *s, const char *mountpoint,
		   const struct fuse_dev_opts *o)
{
	struct fuse_dev *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->server = s;
	d->nworkers = o && o->threads ? MIN(o->threads, FUSE_DEV_MAX_THREADS) : FUSE_DEV_DEFAULT_THREADS;
	d->mountpoint = strdup(mountpoint);
	d->ended_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (d->fd < 0) {
		int err = errno;
		log_err("cannot open /dev/fuse: %s%s", strerror(err),
			err == ENOENT ? " (is the fuse module loaded?)" :
			err == EACCES || err == EPERM ? " (are you root?)" : "");
		fuse_dev_destroy(d);
		return -err;
	}
	int rc = !d->mountpoint || d->ended_fd < 0 ? -ENOMEM :
		 mount_fuse(d, o && o->source ? o->source : "kvmini");
	if (rc) {
		fuse_dev_destroy(d);
		return rc;
	}
	*out = d;
	return 0;
}

/* The session fd for worker 0, a clone for the others: each clone has its
 * own queue of requests being processed, so replies go back on the fd that
 * read the request. */
static int worker_fd(struct fuse_dev *d, unsigned i)
{
	if (i == 0)
		return d->fd;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint32_t master = (uint32_t)d->fd;
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static int worker_init(struct fuse_dev *d, struct fuse_worker *w, unsigned i)
{
	w->dev = d;
	w->fd = -1;
	w->data_pipe[0] = w->data_pipe[1] = w->msg_pipe[0] = w->msg_pipe[1] = -1;
	/* The kernel refuses reads into buffers smaller than a full WRITE. */
	w->out_size = fuse_server_max_reply(d->server);
	w->in_size = MAX(w->out_size + 4096, (size_t)FUSE_MIN_READ_BUFFER);
	if (posix_memalign((void **)&w->in, 4096, w->in_size) ||
	    posix_memalign((void **)&w->out, 4096, w->out_size))
		return -ENOMEM;
	worker_init_sink(w);
	w->fd = worker_fd(d, i);
	return w->fd < 0 ? w->fd : 0;
}

/* A notification is written whole on the session descriptor, from the
 * notifying thread (never a worker). ENOENT: the kernel has no such inode
 * or entry cached, which is normal. */
static int notify_send(struct fuse_notify_transport *t, const void *msg, size_t len)
{
	struct fuse_dev *d = container_of(t, struct fuse_dev, notify);
	ssize_t n = write(d->fd, msg, len);

	if (n == (ssize_t)len)
		return 0;
	int err = n < 0 ? errno : EIO;
	if (err != ENOENT && err != ENODEV)
		log_debug("fuse: writing a notification of %zu bytes: %s", len, strerror(err));
	return -err;
}

int fuse_dev_start(struct fuse_dev *d)
{
	struct sigaction sa = { .sa_handler = wake_handler };

	/* No SA_RESTART: the signal must cut a worker's read() short. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN, &sa, NULL) < 0)
		return -errno;
	d->notify.send = notify_send;
	fuse_server_set_notify(d->server, &d->notify);
	for (unsigned i = 0; i < d->nworkers; i++) {
		struct fuse_worker *w = &d->workers[i];
		int rc = worker_init(d, w, i);
		if (!rc)
			rc = -pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			log_err("fuse: starting worker %u: %s", i, strerror(-rc));
			return rc;
		}
		w->started = true;
	}
	return 0;
}

int fuse_dev_wait(struct fuse_dev *d, const sigset_t *sigs)
{
	int sfd = signalfd(-1, sigs, SFD_CLOEXEC);

	if (sfd < 0)
		return -errno;
	struct pollfd pfd[2] = { { .fd = d->ended_fd, .events = POLLIN },
				 { .fd = sfd, .events = POLLIN } };
	int ret = 0;
	while (!load_seq_cst(&d->ended)) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				ret = (int)si.ssi_signo;
				break;
			}
		}
	}
	close(sfd);
	return ret;
}

static void msleep(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Nudge workers out of read() until they all finish or time runs out.
 * Returns true when every started worker is done. */
static bool stop_workers(struct fuse_dev *d)
{
	store_seq_cst(&d->stopping, true);
	for (long waited = 0; waited <= STOP_WAIT_MS; waited += STOP_NUDGE_MS) {
		bool all_done = true;
		for (unsigned i = 0; i < d->nworkers; i++) {
			struct fuse_worker *w = &d->workers[i];
			if (w->started && !load_seq_cst(&w->done)) {
				all_done = false;
				pthread_kill(w->thread, SIGRTMIN);
			}
		}
		if (all_done)
			return true;
		msleep(STOP_NUDGE_MS);
	}
	return false;
}

int fuse_dev_destroy(struct fuse_dev *d)
{
	if (!d)
		return 0;
	fuse_server_set_notify(d->server, NULL);
	/* Detach first: new accesses fail at once, and the session ends when
	 * the last user lets go. */
	if (d->mounted && !load_seq_cst(&d->ended) && umount2(d->mountpoint, MNT_DETACH) < 0 &&
	    errno != EINVAL)
		log_warn("unmounting %s: %s", d->mountpoint, strerror(errno));
	bool joined = stop_workers(d);
	for (unsigned i = 0; i < d->nworkers; i++) {
		struct fuse_worker *w = &d->workers[i];
		if (!w->dev)
			continue;      /* never set up */
		if (w->started && joined)
			pthread_join(w->thread, NULL);
		else if (w->started)
			continue;      /* still inside a request: leave it its buffers */
		if (w->fd >= 0 && w->fd != d->fd)
			close(w->fd);
		worker_close_sink(w);
		free(w->in);
		free(w->out);
	}
	if (!joined) {
		log_warn("fuse: workers did not stop in %d ms", STOP_WAIT_MS);
		return -EBUSY;      /* the process is ending; its exit closes the session */
	}
	if (d->fd >= 0)
		close(d->fd);
	if (d->ended_fd >= 0)
		close(d->ended_fd);
	free(d->mountpoint);
	free(d);
	return 0;
}
