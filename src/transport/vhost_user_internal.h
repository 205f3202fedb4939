/*
 * Internals of the vhost-user server shared by its three files:
 * vhost_user_validate.c (the request table and every check a message
 * passes before a handler sees it), vhost_user_conn.c (message framing,
 * fds, the back-end channel, the connection and listener) and
 * vhost_user.c (the session: rings, handlers, dispatch, the device
 * transport). Not for use outside src/transport/.
 */
#ifndef KVMINI_TRANSPORT_VHOST_USER_INTERNAL_H
#define KVMINI_TRANSPORT_VHOST_USER_INTERNAL_H

#include "transport/vhost_user.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "core/compiler.h"
#include "core/log.h"

/* Peer-error lines logged per connection; a hostile front-end asking for
 * acks could otherwise flood the operator's log. */
#define VU_WARN_BUDGET 32
/* Messages handled per wake-up before the loop serves other fds (fairness). */
#define VU_MSGS_PER_WAKEUP 64
#define VU_LISTEN_BACKLOG 4

/*
 * Ring lifecycle, after the spec's "Ring states": a ring is stopped until it
 * has a kick source (a kick fd, in-band VRING_KICK, or in-band kicks
 * negotiated) and GET_VRING_BASE stops it again; independently it is
 * enabled or disabled (SET_VRING_ENABLE; without protocol features every
 * ring is enabled by SET_FEATURES). kvmini adds RUNNING: the device runs on
 * the ring. The device runs on the rings below dev->num_queues that are
 * ready (configured, started, enabled) once its required rings are (see
 * vu_rings_required in vhost_user.c); the others stay stopped in the device
 * and inert. Only vu_ring_apply changes a ring's state.
 */
enum vu_ring_state {
	VU_RING_STOPPED,           /* no kick source, disabled: the initial state */
	VU_RING_STOPPED_ENABLED,   /* enabled before its kick source came */
	VU_RING_STARTED,           /* a kick source, disabled: nothing is processed */
	VU_RING_STARTED_ENABLED,   /* waits for its configuration or the required rings */
	VU_RING_RUNNING,           /* dev->vqs[index] started: its base is live */
	VU_RING_STATES
};

/* What moves rings between states (see vu_ring_apply). */
enum vu_ring_event {
	VU_RING_EV_KICK,           /* a kick source came: started */
	VU_RING_EV_STOP,           /* GET_VRING_BASE, RESET_OWNER: the kick source goes */
	VU_RING_EV_ENABLE,         /* SET_VRING_ENABLE 1, or no protocol features */
	VU_RING_EV_DISABLE,        /* SET_VRING_ENABLE 0 */
	/* The device as a whole: */
	VU_RING_EV_HOLD,           /* a change to the ring given (NULL: to what every
				    * ring uses) needs the device stopped */
	VU_RING_EV_HOLD_KICK,      /* the ring given gets a new kick source: as HOLD,
				    * and see vu_pause_for */
	VU_RING_EV_SETTLE,         /* the change is recorded: run on the ready rings */
	VU_RING_EV_RESET,          /* front-end gone: device reset, every ring cleared */
};

/* Ring configuration received (vhost_user_vring.have). */
#define VU_RING_HAVE_NUM   (1u << 0)
#define VU_RING_HAVE_ADDR  (1u << 1)
#define VU_RING_HAVE_BASE  (1u << 2)
#define VU_RING_HAVE_ALL   (VU_RING_HAVE_NUM | VU_RING_HAVE_ADDR | VU_RING_HAVE_BASE)

struct vhost_user_vring {
	struct vhost_user_server *server;
	unsigned index;
	enum vu_ring_state state;

	/* Configuration from the front-end; applied to dev->vqs[index] only
	 * when the device is started, since virtio_device_reset clears those. */
	unsigned have;               /* VU_RING_HAVE_*: what was set */
	uint16_t num;
	uint16_t base;               /* next avail index; updated when stopped */
	uint64_t desc_uva, avail_uva, used_uva;   /* front-end addresses */

	int kick_fd;                 /* -1: none, or in-band kicks */
	struct event_source kick_src;
	/* The loop kick_src is watched on: the one the device takes this
	 * queue's kicks on (virtio_device_queue_loop: a net queue pair's own
	 * thread), NULL while unwatched. */
	struct event_loop *kick_loop;
	int call_fd;
	bool call_is_socket;         /* UML passes a socketpair, QEMU an eventfd */
	int err_fd;                  /* kept only to be closed: never signalled */
	bool call_pending;           /* in-band call waiting for channel room */
};

/* The message being received: bytes and fds can arrive in pieces. */
struct vhost_user_rx {
	struct vhost_user_hdr hdr;
	union vhost_user_payload payload;
	size_t have;                 /* header + payload bytes received */
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
	bool fds_overflow;           /* more fds than any request carries */
};

/* One request on its way through validation and its handler. */
struct vu_req {
	const struct vhost_user_hdr *hdr;
	union vhost_user_payload *p;
	int *fds;                    /* a handler keeps fds[i] by setting it to -1 */
	unsigned nfds;
	union vhost_user_payload *reply;
	uint32_t reply_size;
	const char *why;             /* reason for a refusal, for the log */
};

typedef int (*vu_handler_fn)(struct vhost_user_server *s, struct vu_req *req);

/* Rings the server keeps and front-ends may name (s->nrings). */
static inline unsigned vu_ring_count(const struct vhost_user_server *s)
{
	return s->nrings;
}

/* vhost_user_validate.c */
uint64_t vu_offered_pf(const struct vhost_user_server *s);
bool vu_has_pf(const struct vhost_user_server *s, unsigned bit);
/* vhost_user_conn.c */
void vu_warn(struct vhost_user_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vu_close_fd(int *fd);
int vu_set_nonblock(int fd);
int vu_take_fd(int *fds, unsigned i);
int vu_sendmsg(int fd, uint32_t request, uint32_t flags, const void *payload,
	       uint32_t size);
int vu_reply(struct vhost_user_server *s, uint32_t request, const void *payload,
	     uint32_t size);
void vu_close_backend(struct vhost_user_server *s);
void vu_backend_event(struct event_source *src, uint32_t events);
void vu_disconnect(struct vhost_user_server *s, bool final);
int vu_connect(struct vhost_user_server *s, int fd);
int vu_listen(struct vhost_user_server *s, const char *path);
/* vhost_user.c */
int vu_ring_apply(struct vhost_user_server *s, struct vhost_user_vring *vr,
		  enum vu_ring_event ev);
void vu_backend_want_out(struct vhost_user_server *s, bool on);
bool vu_call_inband(struct vhost_user_server *s, struct vhost_user_vring *vr);
void vu_send_config_change(struct vhost_user_server *s);

#endif
