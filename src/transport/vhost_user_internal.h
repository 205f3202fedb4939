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

struct vhost_user_vring {
	struct vhost_user_server *server;
	unsigned index;

	/* Configuration from the front-end; applied to dev->vqs[index] only
	 * when the device is started, since virtio_device_reset clears those. */
	uint16_t num;                /* 0: not set yet */
	uint16_t base;               /* next avail index; updated when stopped */
	bool has_base;
	bool has_addr;
	bool running;                /* dev->vqs[index] started: its base is live */
	uint64_t desc_uva, avail_uva, used_uva;   /* front-end addresses */

	bool enabled;                /* SET_VRING_ENABLE, or no protocol features */
	bool kick_ready;             /* a kick source exists; GET_VRING_BASE clears */
	int kick_fd;
	struct event_source kick_src;
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
void vu_vring_clear(struct vhost_user_server *s, unsigned q);
void vu_backend_want_out(struct vhost_user_server *s, bool on);
bool vu_call_inband(struct vhost_user_server *s, struct vhost_user_vring *vr);
void vu_send_config_change(struct vhost_user_server *s);

#endif
