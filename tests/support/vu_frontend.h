/*
 * A vhost-user front-end for tests: a server on a fresh socket path serving
 * a small fake net-like device (one queue pair, or N pairs and a control
 * queue with VIRTIO_NET_F_MQ), and the front-end side that drives it over
 * the real socket with SCM_RIGHTS fds (memfd guest memory laid out as UML
 * does, eventfd or socketpair notifications). Message helpers return what
 * the server answered; the sequence helpers (the handshakes of UML and
 * QEMU) return 0, or -1 after printing the step that went wrong, so a test
 * checks them with CHECK_EQ(..., 0).
 *
 * Calling context: one thread; vfe_pump runs the server's event loop.
 */
#ifndef KVMINI_TESTS_VU_FRONTEND_H
#define KVMINI_TESTS_VU_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_config.h>

#include "core/event_loop.h"
#include "transport/vhost_user.h"

/* ---- fake device ---------------------------------------------------- */

#define VFE_QUEUES 2          /* the default device: one queue pair */
#define VFE_MAX_PAIRS 2
#define VFE_MAX_QUEUES (2 * VFE_MAX_PAIRS + 1)
#define VFE_CONFIG_SIZE 16
#define VFE_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << 5))
/* What a multiqueue fake offers on top (virtio-net's bit numbers). */
#define VFE_F_CTRL_VQ 17
#define VFE_F_MQ 22
#define VFE_MQ_FEATURES (VFE_FEATURES | (1ull << VFE_F_CTRL_VQ) | (1ull << VFE_F_MQ))

struct vfe_dev {
	struct virtio_device vdev;
	/* The device's ops, copied so a test can change device_id (the
	 * server applies net conventions to VIRTIO_ID_NET, the default). */
	struct virtio_device_ops ops;
	struct virtqueue vqs[VFE_MAX_QUEUES];
	uint8_t config[VFE_CONFIG_SIZE];
	uint64_t acked;
	/* >1: queue pairs of a multiqueue device, whose queue count follows
	 * the features as virtio-net's (receiveq i = 2i, transmitq 2i+1,
	 * control queue 2N with MQ, 2 without). */
	unsigned pairs;
	unsigned activations, resets, notifies[VFE_MAX_QUEUES];
	unsigned chains[VFE_MAX_QUEUES];
	/* Answer what is available while resetting, as a device whose worker
	 * threads finish their requests before reset returns. */
	bool drain_on_reset;
	/* Queue 1 exists only with feature bit 5 (as virtio-fs's notification
	 * queue with VIRTIO_FS_F_NOTIFICATION): max_queues is set. */
	bool queue_per_feature;
	/* Non-NULL: the queues of pairs after the first take their kicks on
	 * this loop, as virtio-net's pair threads do (queue_loop). */
	struct event_loop *pair_loop;
};

/* Fresh device: VFE_QUEUES queues, config bytes 0xa0, 0xa1, ... */
void vfe_dev_init(struct vfe_dev *f);
/* The same with @pairs (2..VFE_MAX_PAIRS) queue pairs and a control queue:
 * max_queues = 2 * @pairs + 1. */
void vfe_dev_init_mq(struct vfe_dev *f, unsigned pairs);

/* ---- the front-end -------------------------------------------------- */

/* Guest memory as UML lays it out: one file, guest address == file offset
 * == front-end address, starting above zero. */
#define VFE_MEM_SIZE       (2u << 20)
#define VFE_MEM_START      0x1000u
#define VFE_RING_NUM       256u
#define VFE_RING_GPA(q)    (0x10000u + (q) * 0x10000u)
#define VFE_DESC_GPA(q)    VFE_RING_GPA(q)
#define VFE_AVAIL_GPA(q)   (VFE_RING_GPA(q) + 0x1000u)
#define VFE_USED_GPA(q)    (VFE_RING_GPA(q) + 0x2000u)
#define VFE_BUF_GPA        0x80000u

#define VFE_NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY)
#define VFE_NO_REPLY   VHOST_USER_VERSION
#define VFE_NOFD       VHOST_USER_VRING_NOFD_MASK
#define VFE_PF_UML     (VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ) | \
			VHOST_USER_PF(CONFIG) | VHOST_USER_PF(INBAND_NOTIFICATIONS))
#define VFE_MAX_FDS    16     /* most fds vfe_sendmsg_fds passes at once */

struct vfe {
	struct event_loop loop;
	struct vhost_user_server srv;
	struct vfe_dev dev;
	char dir[64];
	char path[128];
	int sock;              /* the front-end's end of the connection */
	int backend;           /* the front-end's end of the back-end channel */
	int memfd;
	uint8_t *mem;          /* the whole file, mapped */
	int kick[VFE_MAX_QUEUES];  /* front-end copies of eventfd kicks */
	int call[VFE_MAX_QUEUES];  /* front-end ends of call fds */
};

struct vfe_reply {
	struct vhost_user_hdr hdr;
	union vhost_user_payload p;
};

struct vfe_mem_msg {
	uint32_t nregions, padding;
	struct vhost_user_mem_region regions[8];
};

/* Open fds of this process (for leak checks: compare two counts). */
int vfe_count_fds(void);
/* Run the server's loop until it has nothing left to do. */
void vfe_pump(struct vfe *f);
/* One sendmsg of @len bytes with up to VFE_MAX_FDS fds; 0 or -1. */
int vfe_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);
int vfe_send(struct vfe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	     const int *fds, unsigned nfds);
/* 1: a message was read, 0: none waiting, -1: the peer closed. */
int vfe_recv(int sock, struct vfe_reply *r);
/* Send, pump, read the reply if any (vfe_recv's result). */
int vfe_call(struct vfe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	     const int *fds, unsigned nfds, struct vfe_reply *r);
/* Send with NEED_REPLY; the ack status, or -1 without a proper ack. */
long long vfe_ack(struct vfe *f, uint32_t req, const void *payload, uint32_t size,
		  const int *fds, unsigned nfds);
/* Send without NEED_REPLY; 0 when no reply came and the connection lives. */
int vfe_quiet(struct vfe *f, uint32_t req, const void *payload, uint32_t size,
	      const int *fds, unsigned nfds);
/* A u64 reply to a GET_* request; UINT64_MAX on any flaw. */
uint64_t vfe_get_u64(struct vfe *f, uint32_t req);
/* Pumps, then true when the server closed the connection. */
bool vfe_closed(struct vfe *f);
/* Connect to the listening server; 0 once it took the connection. */
int vfe_connect(struct vfe *f);
/* Close the front-end's ends: connection, back-end channel, kicks, calls. */
void vfe_close_peer_fds(struct vfe *f);
/* Server listening in a fresh directory, front-end connected, guest memory
 * ready (not yet sent). @opts may be NULL. 0 or -1. */
int vfe_setup(struct vfe *f, const struct vhost_user_opts *opts);
/* The same serving vfe_dev_init_mq's device with @pairs queue pairs. */
int vfe_setup_mq(struct vfe *f, const struct vhost_user_opts *opts, unsigned pairs);
/* vfe_setup in two steps, to serve a real device made on f->loop: the
 * directory, loop and guest memory (0 or -1), then the server on @dev and
 * the front-end connected (0 or -1). vfe_teardown undoes both; the caller
 * destroys @dev after it. */
int vfe_init(struct vfe *f);
int vfe_serve(struct vfe *f, struct virtio_device *dev, const struct vhost_user_opts *opts);
void vfe_teardown(struct vfe *f);

/* Acked requests (vfe_ack's result). */
long long vfe_set_mem_uml(struct vfe *f);
long long vfe_state(struct vfe *f, uint32_t req, uint32_t index, uint32_t num);
long long vfe_addr(struct vfe *f, unsigned q, uint64_t desc, uint64_t avail, uint64_t used);
long long vfe_u64_fd(struct vfe *f, uint32_t req, uint64_t value, int fd);   /* fd -1: none */
long long vfe_u64(struct vfe *f, uint32_t req, uint64_t value);

/* Sequences: 0, or -1 after printing the failed step. */
int vfe_uml_negotiate(struct vfe *f);        /* UML up to SET_FEATURES, back-end channel */
int vfe_ring_setup(struct vfe *f, unsigned q);   /* NUM, BASE 0, ADDR */
int vfe_uml_start_inband(struct vfe *f);     /* UML's probe, in-band notifications */
/* QEMU's order without protocol bit 30 (rings enabled from the start),
 * eventfd kicks, eventfd or (@socket_calls) socketpair calls. */
int vfe_start_with_fds(struct vfe *f, bool socket_calls);
int vfe_kick(struct vfe *f, unsigned q);     /* write the kick eventfd, pump */

/* Driver side: one chain of one 64-byte buffer on ring @q; the used index. */
void vfe_guest_offer(struct vfe *f, unsigned q);
uint16_t vfe_used_idx(struct vfe *f, unsigned q);

#endif
