/*
 * vhost-user backend server (see vhost_user.h).
 *
 * This file is the session: ring lifecycle, request handlers, dispatch,
 * transport callbacks (device -> front-end), public API. The request table
 * and validation are in vhost_user_validate.c, framing and the connection
 * in vhost_user_conn.c (their shared internals: vhost_user_internal.h).
 *
 * Calling context: everything runs on s->loop's thread but
 * vu_signal_used_direct (device threads, under call_lock). Peer input is never
 * trusted: every message is checked against its table row before a handler
 * sees it, no peer value reaches an assert, and a message the server cannot
 * honour is answered with a failure (REPLY_ACK) or ends the connection.
 */
#include "transport/vhost_user_internal.h"

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
#include <linux/virtio_ids.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"

/* ---- ring lifecycle ------------------------------------------------ */

static bool vu_inband(const struct vhost_user_server *s)
{
	return vu_has_pf(s, VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS);
}

/* Configured, started and enabled: the device may run on it (or does). */
static bool vu_ring_ready(const struct vhost_user_vring *vr)
{
	return (vr->state == VU_RING_STARTED_ENABLED || vr->state == VU_RING_RUNNING) &&
	       vr->have == VU_RING_HAVE_ALL;
}

/* vhost-user's net conventions (QEMU net/vhost-user.c, DPDK lib/vhost)
 * apply to a virtio-net device. */
static bool vu_is_net(const struct vhost_user_server *s)
{
	return s->dev->ops->device_id == VIRTIO_ID_NET;
}

/*
 * The rings 0 .. n-1 that must be ready before the device runs; the rings
 * above join as they become ready. A net device runs on its first queue
 * pair: QEMU with mq=on starts every pair's rings but enables only the
 * pairs the driver uses (spec "Multiple queue support": "vhost-user-net has
 * historically automatically enabled the first queue pair"). Other devices
 * need every ring, as before multiqueue.
 */
static unsigned vu_rings_required(const struct vhost_user_server *s)
{
	unsigned n = s->dev->num_queues;

	return vu_is_net(s) && n > 2 ? 2 : n;
}

/*
 * Stop the device but keep the session (features, ring configuration):
 * virtio_device_reset would also forget the negotiated features. The avail
 * index each running ring reached is kept as its base for GET_VRING_BASE
 * and the restart. Only vu_ring_apply calls this.
 */
static void vu_pause(struct vhost_user_server *s)
{
	struct virtio_device *dev = s->dev;

	if (!dev->active)
		return;
	/* Quiesce first: a device with worker threads may still pop and answer
	 * chains until its reset returns; the base must include them, or a
	 * restart would answer those requests a second time. vq_stop keeps
	 * last_avail_idx. */
	virtio_device_deactivate(dev);
	for (unsigned q = 0; q < dev->num_queues; q++) {
		struct vhost_user_vring *vr = &s->vrings[q];

		if (vr->state != VU_RING_RUNNING)
			continue;
		vr->base = vq_base(&dev->vqs[q]);
		vr->state = VU_RING_STARTED_ENABLED;
	}
}

/* Ring addresses are front-end virtual addresses; the device wants guest
 * addresses. Each ring part must lie inside one region and be aligned as
 * virtio 2.7 requires (vq_start checks again against the guest view). */
static int vu_ring_gpa(const struct guest_mem *mem, uint64_t uva, uint64_t len, uint64_t align,
		       uint64_t *gpa)
{
	int r = guest_mem_uva_to_gpa(mem, uva, len, gpa);

	if (r < 0)
		return r;
	return *gpa % align ? -EINVAL : 0;
}

static int vu_translate_vring(const struct guest_mem *mem, uint64_t num, uint64_t desc_uva,
			      uint64_t avail_uva, uint64_t used_uva, struct vq_config *cfg)
{
	int r;

	r = vu_ring_gpa(mem, desc_uva, 16 * num, 16, &cfg->desc_gpa);
	if (r == 0)
		r = vu_ring_gpa(mem, avail_uva, 4 + 2 * num, 2, &cfg->avail_gpa);
	if (r == 0)
		r = vu_ring_gpa(mem, used_uva, 4 + 8 * num, 4, &cfg->used_gpa);
	return r;
}

/* Hand the ring configuration to the device's queue. */
static int vu_load_vq(struct vhost_user_server *s, unsigned q)
{
	struct vhost_user_vring *vr = &s->vrings[q];
	struct vq_config cfg = { .size = (uint16_t)vr->num, .base = vr->base };
	int r;

	r = vu_translate_vring(&s->mem, vr->num, vr->desc_uva, vr->avail_uva, vr->used_uva,
			       &cfg);
	if (r < 0) {
		vu_warn(s, "ring %u: addresses no longer inside guest memory", q);
		return r;
	}
	return vq_configure(&s->dev->vqs[q], &cfg);
}

/*
 * Activate the stopped device on its ready rings, which are then RUNNING;
 * the device's other queues stay stopped (inert). Kicks that came before
 * (or buffers queued without one) are served by notifying each started
 * queue once. Only vu_settle calls this.
 * Returns 0 (also when a required ring is not ready) or -errno.
 */
static int vu_start(struct vhost_user_server *s)
{
	struct virtio_device *dev = s->dev;
	bool start[VHOST_USER_MAX_QUEUES] = { false };
	unsigned started = 0;
	int r;

	for (unsigned q = 0; q < dev->num_queues; q++) {
		start[q] = vu_ring_ready(&s->vrings[q]);
		if (!start[q] && q < vu_rings_required(s))
			return 0;
		r = start[q] ? vu_load_vq(s, q) : 0;
		if (r < 0)
			goto fail;
		started += start[q];
	}
	dev->mem = &s->mem;
	r = virtio_device_activate_queues(dev, start);
	if (r < 0)
		goto fail;
	for (unsigned q = 0; q < dev->num_queues; q++) {
		if (start[q])
			s->vrings[q].state = VU_RING_RUNNING;
	}
	s->counters.device_activations++;
	log_debug("vhost-user: %s activated on %u of %u rings", dev->ops->name, started,
		  dev->num_queues);
	for (unsigned q = 0; q < dev->num_queues && dev->active; q++) {
		if (start[q])
			dev->ops->queue_notify(dev, q);
	}
	return 0;
fail:
	s->counters.device_activate_failed++;
	vu_warn(s, "%s: activation failed: %s", dev->ops->name, strerror(-r));
	return r;
}

/* A ready ring the running device does not use yet. */
static bool vu_ring_waits(const struct vhost_user_server *s)
{
	for (unsigned q = 0; q < s->dev->num_queues; q++) {
		const struct vhost_user_vring *vr = &s->vrings[q];
		if (vr->state != VU_RING_RUNNING && vu_ring_ready(vr))
			return true;
	}
	return false;
}

/*
 * Run the device on the rings ready now. A running device whose set of
 * rings changes is stopped (vu_pause keeps the bases) and started again on
 * the new set: no queue starts or stops under a running device thread.
 * Only vu_ring_apply calls this. Returns vu_start's result.
 */
static int vu_settle(struct vhost_user_server *s)
{
	if (s->dev->active && !vu_ring_waits(s))
		return 0;
	vu_pause(s);
	return vu_start(s);
}

static void vu_kick(struct vhost_user_server *s, unsigned q)
{
	struct virtqueue *vq = virtio_device_vq(s->dev, q);

	/* Atomic: a device thread that takes this queue's kicks comes here. */
	fetch_add_relaxed(&s->counters.rx_kicks, 1);
	if (s->dev->active && vq && vq->started)
		s->dev->ops->queue_notify(s->dev, q);
	/* else: vu_start notifies each queue it starts */
}

/* Kick fd readable: drain the eventfd (or the 8 bytes of a socket). */
static void vu_kick_event(struct event_source *src, uint32_t events)
{
	struct vhost_user_vring *vr = container_of(src, struct vhost_user_vring, kick_src);
	struct vhost_user_server *s = vr->server;
	uint64_t value;
	ssize_t n;

	do {
		n = read(vr->kick_fd, &value, sizeof(value));
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;   /* a stale event for a replaced fd */
	if (n <= 0) {
		/* A kick source that ended (socket EOF) would stay readable.
		 * (log_warn, not vu_warn: this may be a device's thread.) */
		log_warn("vhost-user: ring %u: kick fd failed; no longer watched", vr->index);
		event_loop_unwatch(vr->kick_loop, &vr->kick_src);
		return;
	}
	vu_kick(s, vr->index);
}

static void vu_set_kick_fd(struct vhost_user_server *s, struct vhost_user_vring *vr, int fd)
{
	/* Unwatch before close: the front-end still holds the file, so epoll
	 * would keep reporting it after our fd is gone. */
	if (vr->kick_loop)
		event_loop_unwatch(vr->kick_loop, &vr->kick_src);
	vr->kick_loop = NULL;
	vu_close_fd(&vr->kick_fd);
	vr->kick_fd = fd;
}

static void vu_vring_init(struct vhost_user_server *s, unsigned q)
{
	struct vhost_user_vring *vr = &s->vrings[q];

	memset(vr, 0, sizeof(*vr));
	vr->server = s;
	vr->index = q;
	vr->state = VU_RING_STOPPED;
	vr->kick_fd = -1;
	vr->call_fd = -1;
	vr->err_fd = -1;
}

/* Forget a ring's session state and close its fds. */
static void vu_vring_clear(struct vhost_user_server *s, unsigned q)
{
	struct vhost_user_vring *vr = &s->vrings[q];

	vu_set_kick_fd(s, vr, -1);
	vu_close_fd(&vr->err_fd);
	pthread_mutex_lock(&s->call_lock);
	vu_close_fd(&vr->call_fd);
	vu_vring_init(s, q);
	pthread_mutex_unlock(&s->call_lock);
}

/*
 * The state a ring event leads to, after the spec's "Ring states". STOP and
 * DISABLE find no RUNNING ring: the device is stopped before they apply to
 * a ring it runs on.
 */
static const enum vu_ring_state vu_ring_next[VU_RING_EV_DISABLE + 1][VU_RING_STATES] = {
	[VU_RING_EV_KICK] = {
		[VU_RING_STOPPED] = VU_RING_STARTED,
		[VU_RING_STOPPED_ENABLED] = VU_RING_STARTED_ENABLED,
		[VU_RING_STARTED] = VU_RING_STARTED,
		[VU_RING_STARTED_ENABLED] = VU_RING_STARTED_ENABLED,
		[VU_RING_RUNNING] = VU_RING_RUNNING,
	},
	[VU_RING_EV_STOP] = {
		[VU_RING_STOPPED] = VU_RING_STOPPED,
		[VU_RING_STOPPED_ENABLED] = VU_RING_STOPPED_ENABLED,
		[VU_RING_STARTED] = VU_RING_STOPPED,
		[VU_RING_STARTED_ENABLED] = VU_RING_STOPPED_ENABLED,
		[VU_RING_RUNNING] = VU_RING_STOPPED_ENABLED,
	},
	[VU_RING_EV_ENABLE] = {
		[VU_RING_STOPPED] = VU_RING_STOPPED_ENABLED,
		[VU_RING_STOPPED_ENABLED] = VU_RING_STOPPED_ENABLED,
		[VU_RING_STARTED] = VU_RING_STARTED_ENABLED,
		[VU_RING_STARTED_ENABLED] = VU_RING_STARTED_ENABLED,
		[VU_RING_RUNNING] = VU_RING_RUNNING,
	},
	[VU_RING_EV_DISABLE] = {
		[VU_RING_STOPPED] = VU_RING_STOPPED,
		[VU_RING_STOPPED_ENABLED] = VU_RING_STOPPED,
		[VU_RING_STARTED] = VU_RING_STARTED,
		[VU_RING_STARTED_ENABLED] = VU_RING_STARTED,
		[VU_RING_RUNNING] = VU_RING_STARTED,
	},
};

static const char *const vu_ring_state_names[VU_RING_STATES] = {
	[VU_RING_STOPPED] = "stopped",
	[VU_RING_STOPPED_ENABLED] = "stopped, enabled",
	[VU_RING_STARTED] = "started, disabled",
	[VU_RING_STARTED_ENABLED] = "started, enabled",
	[VU_RING_RUNNING] = "running",
};

static void vu_ring_step(struct vhost_user_server *s, struct vhost_user_vring *vr,
			 enum vu_ring_event ev)
{
	enum vu_ring_state next = vu_ring_next[ev][vr->state];

	/* A stopped ring has no kick source; the next one starts it again. */
	if (ev == VU_RING_EV_STOP)
		vu_set_kick_fd(s, vr, -1);
	if (next != vr->state)
		log_debug("vhost-user: ring %u: %s -> %s", vr->index,
			  vu_ring_state_names[vr->state], vu_ring_state_names[next]);
	vr->state = next;
}

/* The front-end is gone: the device forgets the negotiation too. */
static void vu_rings_reset(struct vhost_user_server *s)
{
	virtio_device_reset(s->dev);
	for (unsigned q = 0; q < vu_ring_count(s); q++)
		vu_vring_clear(s, q);
}

/*
 * Stop the device if it runs on @vr (NULL: if it runs at all). When @vr's
 * kick fd is about to be closed (@kick_goes), also if a device thread
 * watches that fd: the thread may be dispatching the fd's last event, for
 * a ring the device does not run on, while this thread closes it.
 */
static void vu_pause_for(struct vhost_user_server *s, const struct vhost_user_vring *vr,
			 bool kick_goes)
{
	if (!vr || vr->state == VU_RING_RUNNING ||
	    (kick_goes && vr->kick_loop && vr->kick_loop != s->loop))
		vu_pause(s);
}

/*
 * vu_ring_apply() - apply @ev: the one place where rings change state and
 * the device starts or stops.
 * @vr: the ring the event is about; NULL for every ring. SETTLE and RESET
 *      ignore it; HOLD with a ring stops the device only if it runs on
 *      that ring (HOLD_KICK and STOP: or takes its kicks on a thread).
 *
 * The device runs on the ready rings once the required ones are ready
 * (vu_rings_required). STOP and DISABLE of a ring it runs on, and HOLD,
 * stop it first (running rings keep the base reached); every event but
 * HOLD and RESET then settles: the device runs again on the rings ready
 * now, a changed set of rings through a stop and a start. A handler
 * changing what the running device uses (a ring's configuration, memory,
 * features) brackets the change with HOLD and SETTLE.
 *
 * Returns 0, or -errno when a start was refused (device or queue checks).
 */
int vu_ring_apply(struct vhost_user_server *s, struct vhost_user_vring *vr,
		  enum vu_ring_event ev)
{
	switch (ev) {
	case VU_RING_EV_HOLD:
	case VU_RING_EV_HOLD_KICK:
		vu_pause_for(s, vr, ev == VU_RING_EV_HOLD_KICK);
		return 0;
	case VU_RING_EV_SETTLE:
		return vu_settle(s);
	case VU_RING_EV_RESET:
		vu_rings_reset(s);
		return 0;
	case VU_RING_EV_STOP:
	case VU_RING_EV_DISABLE:
		vu_pause_for(s, vr, ev == VU_RING_EV_STOP);
		break;
	case VU_RING_EV_KICK:
	case VU_RING_EV_ENABLE:
		break;
	}
	for (unsigned q = 0; q < vu_ring_count(s); q++) {
		if (!vr || vr == &s->vrings[q])
			vu_ring_step(s, &s->vrings[q], ev);
	}
	return vu_settle(s);
}

/* ---- request handlers ---------------------------------------------- */

static struct vhost_user_vring *vu_req_vring(struct vhost_user_server *s, const struct vu_req *req)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(req->hdr->request);
	uint64_t idx = rule->queue == VU_Q_U64 ? (req->p->u64 & VHOST_USER_VRING_IDX_MASK)
					       : req->p->state.index;
	/* Checked by vhost_user_validate before any handler runs. */
	return &s->vrings[idx];
}

static int vu_reply_u64(struct vu_req *req, uint64_t value)
{
	req->reply->u64 = value;
	req->reply_size = sizeof(uint64_t);
	return 0;
}

static int vu_get_features(struct vhost_user_server *s, struct vu_req *req)
{
	return vu_reply_u64(req, s->dev->ops->features(s->dev) |
				 (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
}

static int vu_set_features(struct vhost_user_server *s, struct vu_req *req)
{
	uint64_t bit = 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
	bool pf = req->p->u64 & bit;
	int r;

	vu_ring_apply(s, NULL, VU_RING_EV_HOLD);
	r = virtio_device_set_features(s->dev, req->p->u64 & ~bit);
	if (r < 0) {
		req->why = "features refused by the device";
		vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
		return r;
	}
	s->protocol_features_acked = pf;
	/* Spec "Ring states": without protocol features rings start enabled. */
	if (!pf)
		return vu_ring_apply(s, NULL, VU_RING_EV_ENABLE);
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

static int vu_set_owner(struct vhost_user_server *s, struct vu_req *req)
{
	s->owner = true;
	return 0;
}

/* Deprecated; the spec recommends ignoring it or disabling all rings. All
 * rings stop, as after GET_VRING_BASE, and restart on their next kick fd. */
static int vu_reset_owner(struct vhost_user_server *s, struct vu_req *req)
{
	return vu_ring_apply(s, NULL, VU_RING_EV_STOP);
}

/* Map one region. Mapping past the end of the file would turn a later
 * access into SIGBUS, so the region must fit the file as it is now. */
static int vu_map_region(struct guest_mem *mem, const struct vhost_user_mem_region *reg, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
	    reg->mmap_offset > (uint64_t)st.st_size ||
	    reg->size > (uint64_t)st.st_size - reg->mmap_offset)
		return -EINVAL;
	return guest_mem_add_fd(mem, reg->gpa, reg->size, reg->uva, fd, reg->mmap_offset);
}

/* The new table is built beside the old one; the device stops only for the
 * swap, so a refused table leaves the running one untouched. */
static int vu_set_mem_table(struct vhost_user_server *s, struct vu_req *req)
{
	const struct vhost_user_memory *m = &req->p->memory;
	struct guest_mem next;
	int r = 0;

	guest_mem_init(&next);
	for (unsigned i = 0; i < m->nregions && r == 0; i++) {
		r = vu_map_region(&next, &m->regions[i], req->fds[i]);
		if (r < 0)
			req->why = "memory region not mappable (outside its file, "
				   "overlapping, or not a file)";
	}
	/* The mappings hold the files; the fds are no longer needed. */
	for (unsigned i = 0; i < req->nfds; i++) {
		int fd = vu_take_fd(req->fds, i);
		vu_close_fd(&fd);
	}
	if (r < 0) {
		guest_mem_clear(&next);
		return r;
	}
	vu_ring_apply(s, NULL, VU_RING_EV_HOLD);
	guest_mem_clear(&s->mem);
	s->mem = next;
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

static int vu_set_vring_num(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	vu_ring_apply(s, vr, VU_RING_EV_HOLD);
	vr->num = (uint16_t)req->p->state.num;
	vr->have |= VU_RING_HAVE_NUM;
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

static int vu_set_vring_addr(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);
	const struct vhost_vring_addr *a = &req->p->addr;
	/* The size may come later; then the start checks the full extent. */
	uint64_t num = vr->have & VU_RING_HAVE_NUM ? vr->num : 1;
	struct vq_config check;
	int r;

	/* The log address and VHOST_VRING_F_LOG are ignored: no migration log. */
	r = vu_translate_vring(&s->mem, num, a->desc_user_addr, a->avail_user_addr,
			       a->used_user_addr, &check);
	if (r < 0) {
		req->why = "ring address outside guest memory or misaligned";
		return r;
	}
	vu_ring_apply(s, vr, VU_RING_EV_HOLD);
	vr->desc_uva = a->desc_user_addr;
	vr->avail_uva = a->avail_user_addr;
	vr->used_uva = a->used_user_addr;
	vr->have |= VU_RING_HAVE_ADDR;
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

static int vu_set_vring_base(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	/* Held first: stopping the device writes the base reached. */
	vu_ring_apply(s, vr, VU_RING_EV_HOLD);
	vr->base = (uint16_t)req->p->state.num;
	vr->have |= VU_RING_HAVE_BASE;
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

/* Spec "Ring states": GET_VRING_BASE stops the ring; the next kick fd (or
 * in-band kick) starts it again. */
static int vu_get_vring_base(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	vu_ring_apply(s, vr, VU_RING_EV_STOP);
	req->reply->state.index = vr->index;
	req->reply->state.num = vr->base;
	req->reply_size = sizeof(req->reply->state);
	return 0;
}

/* Where ring @q's kick source is watched: the loop the device names for
 * the queue, else the server's own. */
static struct event_loop *vu_kick_loop(struct vhost_user_server *s, unsigned q)
{
	struct virtio_device *dev = s->dev;
	struct event_loop *l = dev->ops->queue_loop ? dev->ops->queue_loop(dev, q) : NULL;

	return l ? l : s->loop;
}

static int vu_set_vring_kick(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);
	int fd = req->nfds ? vu_take_fd(req->fds, 0) : -1;
	int r;

	if (fd < 0) {
		if (!vu_inband(s)) {
			req->why = "no kick fd and no in-band kicks (polling is not served)";
			return -EOPNOTSUPP;
		}
		/* As below: no device thread may be reading the fd closed here. */
		vu_ring_apply(s, vr, VU_RING_EV_HOLD_KICK);
		vu_set_kick_fd(s, vr, -1);
		return vu_ring_apply(s, vr, VU_RING_EV_KICK);
	}
	/* Never block the loop on a kick source, whatever the front-end does.
	 * The flag is shared with the front-end's copy, which only writes. */
	if (vu_set_nonblock(fd) < 0) {
		close(fd);
		req->why = "kick fd unusable";
		return -EINVAL;
	}
	/* The kick source is watched where the device takes the queue's
	 * kicks, maybe a thread of its own: the device stops first if it
	 * runs on this ring or a thread of its own watches the old fd, so no
	 * thread reads that fd while it closes. */
	vu_ring_apply(s, vr, VU_RING_EV_HOLD_KICK);
	vu_set_kick_fd(s, vr, fd);
	vr->kick_loop = vu_kick_loop(s, vr->index);
	r = event_loop_watch(vr->kick_loop, &vr->kick_src, fd, EPOLLIN, vu_kick_event,
			     "vhost-user kick");
	if (r < 0) {
		vr->kick_loop = NULL;
		vu_set_kick_fd(s, vr, -1);
		req->why = "kick fd cannot be watched";
		vu_ring_apply(s, vr, VU_RING_EV_SETTLE);
		return r;
	}
	return vu_ring_apply(s, vr, VU_RING_EV_KICK);
}

static int vu_set_vring_call(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);
	int fd = req->nfds ? vu_take_fd(req->fds, 0) : -1;
	struct stat st;

	pthread_mutex_lock(&s->call_lock);
	vu_close_fd(&vr->call_fd);
	pthread_mutex_unlock(&s->call_lock);
	vr->call_pending = false;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0) {
		close(fd);
		req->why = "call fd unusable";
		return -EINVAL;
	}
	bool is_socket = S_ISSOCK(st.st_mode);
	/* Each interrupt writes 8 bytes: only an eventfd (an anonymous inode,
	 * no file type) or a socket takes them as a notification. A pipe whose
	 * reader is gone would raise SIGPIPE and kill the server; a regular
	 * file would grow forever. Linux front-ends use eventfds (QEMU, DPDK)
	 * or sockets (UML). */
	if (!is_socket && (st.st_mode & S_IFMT) != 0) {
		close(fd);
		req->why = "call fd is neither an eventfd nor a socket";
		return -EINVAL;
	}
	/* Sockets are written with MSG_DONTWAIT; an eventfd the front-end
	 * filled to the brim must not block the loop either. */
	if (!is_socket && vu_set_nonblock(fd) < 0) {
		close(fd);
		req->why = "call fd unusable";
		return -EINVAL;
	}
	pthread_mutex_lock(&s->call_lock);
	vr->call_is_socket = is_socket;
	vr->call_fd = fd;
	pthread_mutex_unlock(&s->call_lock);
	return 0;
}

static int vu_set_vring_err(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	vu_close_fd(&vr->err_fd);
	if (req->nfds)
		vr->err_fd = vu_take_fd(req->fds, 0);
	return 0;
}

static int vu_get_protocol_features(struct vhost_user_server *s, struct vu_req *req)
{
	return vu_reply_u64(req, vu_offered_pf(s));
}

static int vu_set_protocol_features(struct vhost_user_server *s, struct vu_req *req)
{
	uint64_t f = req->p->u64;
	uint64_t needed = VHOST_USER_PF(BACKEND_REQ) | VHOST_USER_PF(REPLY_ACK);

	/* Spec "In-band notifications": the back-end should close the
	 * connection, it has no other way to report this. */
	if ((f & VHOST_USER_PF(INBAND_NOTIFICATIONS)) && (f & needed) != needed) {
		req->why = "INBAND_NOTIFICATIONS without BACKEND_REQ and REPLY_ACK";
		return -EPROTO;
	}
	vu_ring_apply(s, NULL, VU_RING_EV_HOLD);
	s->protocol_features = f;
	/* With in-band kicks every ring has a kick source from the start;
	 * without, only the rings holding a kick fd have one. */
	if (vu_inband(s))
		return vu_ring_apply(s, NULL, VU_RING_EV_KICK);
	for (unsigned q = 0; q < vu_ring_count(s); q++) {
		if (s->vrings[q].kick_fd < 0)
			vu_ring_apply(s, &s->vrings[q], VU_RING_EV_STOP);
	}
	return vu_ring_apply(s, NULL, VU_RING_EV_SETTLE);
}

/*
 * The spec leaves the unit to the device type. QEMU's net/vhost-user.c
 * refuses a netdev whose queues= (queue pairs) exceeds the answer, and
 * DPDK's lib/vhost answers its max_queue_pairs: a net device answers its
 * pairs (max_queues 2N+1, the control queue included, gives N). Other
 * devices (vhost-user-blk, -fs) count queues.
 */
static int vu_get_queue_num(struct vhost_user_server *s, struct vu_req *req)
{
	uint64_t n = vu_ring_count(s);

	if (s->opts.queue_num)
		n = s->opts.queue_num;
	else if (vu_is_net(s))
		n /= 2;
	return vu_reply_u64(req, n);
}

static int vu_set_vring_enable(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	return vu_ring_apply(s, vr, req->p->state.num ? VU_RING_EV_ENABLE : VU_RING_EV_DISABLE);
}


static int vu_set_backend_req_fd(struct vhost_user_server *s, struct vu_req *req)
{
	int fd = vu_take_fd(req->fds, 0);
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		close(fd);
		req->why = "back-end request channel is not a socket";
		return -EINVAL;
	}
	vu_close_backend(s);
	s->backend_fd = fd;
	r = event_loop_watch(s->loop, &s->backend_src, fd, EPOLLIN, vu_backend_event,
			     "vhost-user back-end channel");
	if (r < 0) {
		vu_close_backend(s);
		req->why = "back-end request channel cannot be watched";
	}
	return r;
}

/* Spec: the reply repeats the request's offset, size and flags; UML checks
 * that the size matches what it asked for. */
static int vu_get_config(struct vhost_user_server *s, struct vu_req *req)
{
	const struct vhost_user_config *c = &req->p->config;
	struct vhost_user_config *out = &req->reply->config;
	int r;

	out->offset = c->offset;
	out->size = c->size;
	out->flags = c->flags;
	r = virtio_device_config_read(s->dev, c->offset, out->data, c->size);
	if (r < 0) {
		req->why = "config read outside the config space";
		return r;
	}
	req->reply_size = VHOST_USER_CONFIG_HDR_SIZE + c->size;
	return 0;
}

/* Which fields are writable (flags 0) is the device's call. */
static int vu_set_config(struct vhost_user_server *s, struct vu_req *req)
{
	const struct vhost_user_config *c = &req->p->config;
	int r = virtio_device_config_write(s->dev, c->offset, c->data, c->size);

	if (r < 0)
		req->why = "config write outside the config space";
	return r;
}

/* In-band kick; state.num is reserved. Spec "Ring states": a kick also
 * starts a ring stopped by GET_VRING_BASE. */
static int vu_vring_kick(struct vhost_user_server *s, struct vu_req *req)
{
	struct vhost_user_vring *vr = vu_req_vring(s, req);

	vu_kick(s, vr->index);
	return vu_ring_apply(s, vr, VU_RING_EV_KICK);
}

static const vu_handler_fn vu_handlers[VHOST_USER_REQUEST_LIMIT] = {
	[VHOST_USER_GET_FEATURES] = vu_get_features,
	[VHOST_USER_SET_FEATURES] = vu_set_features,
	[VHOST_USER_SET_OWNER] = vu_set_owner,
	[VHOST_USER_RESET_OWNER] = vu_reset_owner,
	[VHOST_USER_SET_MEM_TABLE] = vu_set_mem_table,
	[VHOST_USER_SET_VRING_NUM] = vu_set_vring_num,
	[VHOST_USER_SET_VRING_ADDR] = vu_set_vring_addr,
	[VHOST_USER_SET_VRING_BASE] = vu_set_vring_base,
	[VHOST_USER_GET_VRING_BASE] = vu_get_vring_base,
	[VHOST_USER_SET_VRING_KICK] = vu_set_vring_kick,
	[VHOST_USER_SET_VRING_CALL] = vu_set_vring_call,
	[VHOST_USER_SET_VRING_ERR] = vu_set_vring_err,
	[VHOST_USER_GET_PROTOCOL_FEATURES] = vu_get_protocol_features,
	[VHOST_USER_SET_PROTOCOL_FEATURES] = vu_set_protocol_features,
	[VHOST_USER_GET_QUEUE_NUM] = vu_get_queue_num,
	[VHOST_USER_SET_VRING_ENABLE] = vu_set_vring_enable,
	[VHOST_USER_SET_BACKEND_REQ_FD] = vu_set_backend_req_fd,
	[VHOST_USER_GET_CONFIG] = vu_get_config,
	[VHOST_USER_SET_CONFIG] = vu_set_config,
	[VHOST_USER_VRING_KICK] = vu_vring_kick,
};

/* ---- dispatch ------------------------------------------------------ */

/*
 * Answer a handled request. Requests with their own reply body get it on
 * success; on failure GET_CONFIG gets an empty payload (the spec's error
 * signal) and the others cannot be answered, so the connection ends.
 * Other requests get an ack when asked (status: 0 or the errno); a failure
 * nobody asked about ends the connection, as does -EPROTO always.
 * Returns 0 or -errno when the connection must end.
 */
static int vu_respond(struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
		      const struct vu_req *req, int r)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(hdr->request);

	if (r == -EPROTO)
		return r;
	if (rule && rule->reply) {
		if (r == 0)
			return vu_reply(s, hdr->request, req->reply, req->reply_size);
		if (hdr->request == VHOST_USER_GET_CONFIG)
			return vu_reply(s, hdr->request, NULL, 0);
		return r;
	}
	if (hdr->flags & VHOST_USER_FLAG_NEED_REPLY) {
		uint64_t status = r < 0 ? (uint64_t)-r : 0;
		return vu_reply(s, hdr->request, &status, sizeof(status));
	}
	return r;
}

static void vu_close_unused(struct vhost_user_server *s, int *fds, unsigned nfds)
{
	for (unsigned i = 0; i < nfds; i++) {
		if (fds[i] >= 0) {
			s->counters.rx_fds_unused++;
			vu_close_fd(&fds[i]);
		}
	}
}

static void vu_count_refusal(struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			     int r, const char *why)
{
	if (r == -EOPNOTSUPP && !vhost_user_req_rule(hdr->request))
		s->counters.rx_messages_unknown++;
	else
		s->counters.rx_messages_invalid++;
	if (hdr->request == VHOST_USER_SET_MEM_TABLE)
		s->counters.rx_mem_tables_refused++;
	vu_warn(s, "request %s (%u) refused: %s (%s)", vhost_user_req_name(hdr->request),
		hdr->request, why ? why : "handler failed", strerror(-r));
}

/* One debug line per request, with the ring it names and, for a
 * vhost_vring_state, its number (as sent, unchecked): with several queue
 * pairs the log shows which rings a front-end set up and enabled. */
static void vu_log_msg(const struct vhost_user_hdr *hdr, const union vhost_user_payload *p,
		       unsigned nfds)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(hdr->request);
	const char *name = vhost_user_req_name(hdr->request);
	enum vhost_user_queue_rule q = rule ? rule->queue : VU_Q_NONE;

	if (q == VU_Q_U64)
		log_debug("vhost-user: %s (%u) flags 0x%x size %u fds %u ring %u", name,
			  hdr->request, hdr->flags, hdr->size, nfds,
			  (unsigned)(p->u64 & VHOST_USER_VRING_IDX_MASK));
	else if (q == VU_Q_STATE && hdr->size == sizeof(p->state))
		log_debug("vhost-user: %s (%u) flags 0x%x size %u fds %u ring %u num %u", name,
			  hdr->request, hdr->flags, hdr->size, nfds, p->state.index, p->state.num);
	else if (q == VU_Q_STATE)
		log_debug("vhost-user: %s (%u) flags 0x%x size %u fds %u ring %u", name,
			  hdr->request, hdr->flags, hdr->size, nfds, p->state.index);
	else
		log_debug("vhost-user: %s (%u) flags 0x%x size %u fds %u", name, hdr->request,
			  hdr->flags, hdr->size, nfds);
}

int vhost_user_handle_msg(struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			  const void *payload, int *fds, unsigned nfds)
{
	union vhost_user_payload p, reply;
	struct vu_req req = { .hdr = hdr, .p = &p, .fds = fds, .nfds = nfds, .reply = &reply };
	int r = vhost_user_check_header(hdr);

	/* Session state exists only with a front-end; keep none without one. */
	if (s->conn_fd < 0) {
		vu_close_unused(s, fds, nfds);
		return -ENOTCONN;
	}
	if (r < 0) {
		req.why = "bad header (version, flags or payload size)";
	} else {
		/* Zeroed past the payload so short messages read as zeros. */
		memset(&p, 0, sizeof(p));
		if (hdr->size)
			memcpy(&p, payload, hdr->size);
		s->counters.rx_messages++;
		vu_log_msg(hdr, &p, nfds);
		r = vhost_user_validate(s, hdr, &p, nfds, &req.why);
		if (r == 0)
			r = vu_handlers[hdr->request] ? vu_handlers[hdr->request](s, &req)
						       : -EOPNOTSUPP;
	}
	if (r < 0)
		vu_count_refusal(s, hdr, r, req.why);
	vu_close_unused(s, fds, nfds);
	r = vu_respond(s, hdr, &req, r);
	if (r < 0) {
		s->counters.disconnects_error++;
		vu_disconnect(s, false);
	}
	return r;
}

/* ---- transport callbacks (device -> front-end) --------------------- */

void vu_backend_want_out(struct vhost_user_server *s, bool on)
{
	if (s->backend_wants_out == on || s->backend_fd < 0)
		return;
	s->backend_wants_out = on;
	event_loop_modify(s->loop, &s->backend_src, EPOLLIN | (on ? EPOLLOUT : 0));
}

static int vu_backend_send(struct vhost_user_server *s, uint32_t request, const void *payload,
			   uint32_t size)
{
	/* No NEED_REPLY: UML may be blocked waiting for the ack of its own
	 * VRING_KICK, so waiting here for its answer would deadlock. */
	return vu_sendmsg(s->backend_fd, request, VHOST_USER_VERSION, payload, size);
}

/* Send an in-band call; false when the channel is full (kept pending). */
bool vu_call_inband(struct vhost_user_server *s, struct vhost_user_vring *vr)
{
	struct vhost_vring_state st = { .index = vr->index, .num = 0 };
	int r = vu_backend_send(s, VHOST_USER_BACKEND_VRING_CALL, &st, sizeof(st));

	if (r == 0) {
		fetch_add_relaxed(&s->counters.tx_calls, 1);   /* workers count it too */
		vr->call_pending = false;
		return true;
	}
	if (r == -EAGAIN) {
		vr->call_pending = true;
		vu_backend_want_out(s, true);
		return false;
	}
	fetch_add_relaxed(&s->counters.tx_calls_dropped, 1);
	vu_warn(s, "back-end channel failed (%s); closing it", strerror(-r));
	vu_close_backend(s);
	return false;
}

static void vu_call_fd(struct vhost_user_server *s, struct vhost_user_vring *vr)
{
	uint64_t one = 1;
	ssize_t n;

	if (vr->call_is_socket)
		n = send(vr->call_fd, &one, sizeof(one), MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		n = write(vr->call_fd, &one, sizeof(one));
	/* Atomic: device workers come here too (vu_signal_used_direct). */
	if (n == sizeof(one))
		fetch_add_relaxed(&s->counters.tx_calls, 1);
	else if (n < 0 && errno == EAGAIN)   /* the driver has one unread */
		fetch_add_relaxed(&s->counters.tx_calls_coalesced, 1);
	else
		fetch_add_relaxed(&s->counters.tx_calls_dropped, 1);
}

static void vu_signal_used(struct virtio_transport *t, unsigned q)
{
	struct vhost_user_server *s = container_of(t, struct vhost_user_server, transport);
	struct vhost_user_vring *vr;

	if (s->conn_fd < 0 || q >= s->dev->num_queues)
		return;
	vr = &s->vrings[q];
	/* The tx_calls counters are atomic: device workers add to them at
	 * the same time (vu_signal_used_direct). */
	if (vr->call_fd >= 0)
		vu_call_fd(s, vr);
	else if (vr->call_pending)
		fetch_add_relaxed(&s->counters.tx_calls_coalesced, 1);
	else if (vu_inband(s) && s->backend_fd >= 0)
		vu_call_inband(s, vr);
	else
		fetch_add_relaxed(&s->counters.tx_calls_dropped, 1);
}

/*
 * vu_signal_used_direct() - interrupt from any thread, when a call fd is
 * set: one write, no trip through the loop thread. Returns false when there
 * is no call fd (in-band calls, which use the loop-owned channel, or none
 * yet): the caller then goes through signal_used on the loop thread.
 */
static bool vu_signal_used_direct(struct virtio_transport *t, unsigned q)
{
	struct vhost_user_server *s = container_of(t, struct vhost_user_server, transport);
	bool sent = false;

	if (q >= s->dev->num_queues)
		return true;        /* nothing to signal */
	pthread_mutex_lock(&s->call_lock);
	if (s->vrings[q].call_fd >= 0) {
		vu_call_fd(s, &s->vrings[q]);
		sent = true;
	}
	pthread_mutex_unlock(&s->call_lock);
	return sent;
}

void vu_send_config_change(struct vhost_user_server *s)
{
	int r = vu_backend_send(s, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0);

	if (r == 0) {
		s->counters.tx_config_changes++;
		s->config_pending = false;
	} else if (r == -EAGAIN) {
		s->config_pending = true;
		vu_backend_want_out(s, true);
	} else {
		vu_warn(s, "back-end channel failed (%s); closing it", strerror(-r));
		vu_close_backend(s);
	}
}

static void vu_signal_config(struct virtio_transport *t)
{
	struct vhost_user_server *s = container_of(t, struct vhost_user_server, transport);

	if (s->conn_fd < 0 || s->backend_fd < 0 || !vu_has_pf(s, VHOST_USER_PROTOCOL_F_CONFIG))
		return;
	if (!s->config_pending)
		vu_send_config_change(s);
}

static const struct virtio_transport_ops vu_transport_ops = {
	.signal_used = vu_signal_used,
	.signal_used_direct = vu_signal_used_direct,
	.signal_config = vu_signal_config,
};

/* ---- public API ---------------------------------------------------- */

static void vu_free(struct vhost_user_server *s)
{
	if (s->listen_fd >= 0) {
		event_loop_unwatch(s->loop, &s->listen_src);
		vu_close_fd(&s->listen_fd);
	}
	free(s->socket_path);
	s->socket_path = NULL;
	free(s->vrings);
	s->vrings = NULL;
	free(s->rx);
	s->rx = NULL;
}

int vhost_user_server_init(struct vhost_user_server *s, struct virtio_device *dev,
			   struct event_loop *loop, const char *socket_path,
			   const struct vhost_user_opts *opts)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->call_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	s->listen_fd = s->conn_fd = s->backend_fd = -1;
	if (!dev || !dev->ops || !loop || dev->num_queues == 0 ||
	    MAX(dev->num_queues, dev->max_queues) > VHOST_USER_MAX_QUEUES)
		return -EINVAL;
	s->dev = dev;
	s->nrings = MAX(dev->num_queues, dev->max_queues);
	s->loop = loop;
	s->opts = opts ? *opts : VHOST_USER_OPTS_DEFAULT;
	s->opts.protocol_features &= VHOST_USER_PROTOCOL_FEATURES_SUPPORTED;
	s->transport.ops = &vu_transport_ops;
	guest_mem_init(&s->mem);
	s->vrings = calloc(vu_ring_count(s), sizeof(*s->vrings));
	s->rx = calloc(1, sizeof(*s->rx));
	if (!s->vrings || !s->rx) {
		vu_free(s);
		return -ENOMEM;
	}
	for (unsigned q = 0; q < vu_ring_count(s); q++)
		vu_vring_init(s, q);
	if (socket_path) {
		r = vu_listen(s, socket_path);
		if (r < 0) {
			vu_free(s);
			return r;
		}
	}
	dev->transport = &s->transport;
	return 0;
}

void vhost_user_server_destroy(struct vhost_user_server *s)
{
	if (!s->dev)
		return;
	vu_disconnect(s, true);
	if (s->socket_path && s->listen_fd >= 0)
		unlink(s->socket_path);
	vu_free(s);
	if (s->dev->transport == &s->transport)
		s->dev->transport = NULL;
	s->dev = NULL;
}

int vhost_user_server_adopt(struct vhost_user_server *s, int fd)
{
	int r = vu_set_nonblock(fd);

	if (r == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return vu_connect(s, fd);
}

#define X(name, doc) COUNTER_DESC(struct vhost_user_counters, name, doc)
const struct counter_set vhost_user_counter_set = COUNTER_SET("vhost_user", VHOST_USER_COUNTERS(X));
#undef X

void vhost_user_server_visit_counters(const struct vhost_user_server *s,
				      const struct counter_sink *sink)
{
	counters_visit(&vhost_user_counter_set, &s->counters, "vhost_user_", sink);
}

void vhost_user_server_dump_counters(const struct vhost_user_server *s, FILE *out)
{
	vhost_user_server_visit_counters(s, COUNTER_SINK_FILE(out));
}
