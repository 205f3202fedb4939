/*
 * virtio-mmio transport: register file, status state machine, loop-thread
 * calls, ioeventfd kicks and irqfd interrupts. See mmio.h for the rules and
 * the threading contract. Order of this file: helpers, interrupts (transport
 * ops), status machine, loop-thread calls, register access, kicks, setup.
 */
#include "transport/mmio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"

#define MMIO_MAGIC 0x74726976u          /* "virt" */
#define MMIO_VERSION 2u                 /* virtio 1.x register layout */
#define MMIO_NO_SHM 0xffffffffu         /* SHMLen/SHMBase: no such region */

enum mmio_call_op { CALL_STATUS, CALL_CONFIG_READ, CALL_CONFIG_WRITE };

/* A device access handed to the loop thread (lives on the vCPU's stack). */
struct virtio_mmio_call {
	enum mmio_call_op op;
	uint32_t value;              /* status */
	uint32_t offset, len;        /* config */
	uint8_t data[8];
	bool done;
};

#define COUNT(t, name) fetch_add_relaxed(&(t)->counters.name, 1)

static struct virtio_mmio *to_mmio(struct virtio_transport *tr)
{
	return container_of(tr, struct virtio_mmio, transport);
}

/* --- interrupts (transport ops; any thread, no lock) ---------------------- */

static void raise_irq(struct virtio_mmio *t, uint32_t cause)
{
	uint64_t one = 1;

	/* Set the cause first: the guest's handler reads InterruptStatus after
	 * the interrupt, and the RMW orders it before the irqfd write. */
	fetch_or_seq_cst(&t->interrupt_status, cause);
	if (write(t->irq_fd, &one, sizeof(one)) < 0)
		COUNT(t, tx_interrupts_failed);
}

static void mmio_signal_used(struct virtio_transport *tr, unsigned q)
{
	struct virtio_mmio *t = to_mmio(tr);

	COUNT(t, tx_interrupts);
	raise_irq(t, VIRTIO_MMIO_INT_VRING);
}

/* The same from a device's own threads: the irqfd write and the status
 * bit need no lock, so always possible. */
static bool mmio_signal_used_direct(struct virtio_transport *tr, unsigned q)
{
	mmio_signal_used(tr, q);
	return true;
}

static void mmio_signal_config(struct virtio_transport *tr)
{
	struct virtio_mmio *t = to_mmio(tr);

	/* The device calls this for a config change or NEEDS_RESET (it sets
	 * dev->needs_reset first, on the loop thread); mirror both into
	 * atomics the vCPU threads read. */
	if (t->dev->needs_reset)
		store_seq_cst(&t->needs_reset, 1);
	fetch_add_seq_cst(&t->config_generation, 1);
	COUNT(t, tx_config_interrupts);
	raise_irq(t, VIRTIO_MMIO_INT_CONFIG);
}

static const struct virtio_transport_ops mmio_transport_ops = {
	.signal_used = mmio_signal_used,
	.signal_used_direct = mmio_signal_used_direct,
	.signal_config = mmio_signal_config,
};

/* --- status machine (loop thread, @lock held) ------------------------------ */

static void reset_transport_state(struct virtio_mmio *t)
{
	t->status = 0;
	t->device_features_sel = t->driver_features_sel = 0;
	t->driver_features = 0;
	t->queue_sel = 0;
	memset(t->queues, 0, t->dev->num_queues * sizeof(t->queues[0]));
	store_seq_cst(&t->needs_reset, 0);
	store_seq_cst(&t->interrupt_status, 0);
}

static void device_reset(struct virtio_mmio *t)
{
	COUNT(t, rx_device_resets);
	virtio_device_reset(t->dev);
	reset_transport_state(t);
}

/* The device cannot run as configured: NEEDS_RESET plus a config interrupt
 * (spec 2.1.2), as for a poisoned queue. */
static void device_needs_reset(struct virtio_mmio *t)
{
	t->dev->needs_reset = true;
	t->dev->config_generation++;
	mmio_signal_config(&t->transport);
}

/* DRIVER_OK: hand the queue registers to the virtqueues and start the device. */
static void activate(struct virtio_mmio *t)
{
	struct virtio_device *dev = t->dev;

	for (unsigned q = 0; q < dev->num_queues; q++) {
		const struct virtio_mmio_queue *mq = &t->queues[q];
		/* A queue the driver did not make ready has size 0: vq_start
		 * refuses it and the activation fails. MMIO rings start at 0. */
		struct vq_config cfg = {
			.size = mq->ready ? mq->num : 0,
			.desc_gpa = mq->desc, .avail_gpa = mq->avail, .used_gpa = mq->used,
		};
		vq_configure(&dev->vqs[q], &cfg);
	}
	int r = virtio_device_activate(dev);
	if (r < 0) {
		COUNT(t, rx_device_activate_failed);
		log_warn("%s: activation refused (%s); device needs reset", dev->ops->name, strerror(-r));
		device_needs_reset(t);
		return;
	}
	COUNT(t, device_activations);
}

bool virtio_mmio_status_step_ok(uint32_t old, uint32_t next)
{
	if (old & ~next)
		return false;
	if ((next & VIRTIO_CONFIG_S_DRIVER) && !(next & VIRTIO_CONFIG_S_ACKNOWLEDGE))
		return false;
	if ((next & VIRTIO_CONFIG_S_FEATURES_OK) && !(next & VIRTIO_CONFIG_S_DRIVER))
		return false;
	if ((next & VIRTIO_CONFIG_S_DRIVER_OK) && !(next & VIRTIO_CONFIG_S_FEATURES_OK))
		return false;
	return true;
}

/* A Status write, under the rules of mmio.h (loop thread, @lock held). */
static void status_write(struct virtio_mmio *t, uint32_t value)
{
	if (value == 0) {
		device_reset(t);
		return;
	}
	uint32_t old = t->status;
	/* NEEDS_RESET is the device's bit; a driver writing back what it read
	 * must not be refused for it. */
	uint32_t next = value & ~(uint32_t)VIRTIO_CONFIG_S_NEEDS_RESET;
	if ((next & ~VIRTIO_MMIO_STATUS_DRIVER_BITS) || !virtio_mmio_status_step_ok(old, next)) {
		COUNT(t, rx_status_refused);
		log_debug("%s: status 0x%x -> 0x%x refused", t->dev->ops->name, old, value);
		return;
	}
	uint32_t added = next & ~old;
	if (added & VIRTIO_CONFIG_S_FEATURES_OK &&
	    virtio_device_set_features(t->dev, t->driver_features) < 0) {
		COUNT(t, rx_features_refused);
		/* Leave FEATURES_OK (and anything depending on it) unset. */
		t->status = next & ~(uint32_t)(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
		return;
	}
	t->status = next;
	if (added & VIRTIO_CONFIG_S_DRIVER_OK)
		activate(t);
}

/* --- loop-thread calls ------------------------------------------------------ */

static bool transport_has_vm(const struct virtio_mmio *t)
{
	return t->opts.vm_fd >= 0;
}

static void run_call(struct virtio_mmio *t, struct virtio_mmio_call *c)
{
	switch (c->op) {
	case CALL_STATUS:
		status_write(t, c->value);
		break;
	case CALL_CONFIG_READ:
		/* Out of range reads give zeros (virtio_device_config_read
		 * clears the buffer). */
		virtio_device_config_read(t->dev, c->offset, c->data, c->len);
		break;
	case CALL_CONFIG_WRITE:
		virtio_device_config_write(t->dev, c->offset, c->data, c->len);
		break;
	}
}

void virtio_mmio_serve_call(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	struct virtio_mmio_call *c = t->call;
	if (c && !c->done) {
		run_call(t, c);
		c->done = true;
		t->call = NULL;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
}

/* A vCPU posted a call: run it and wake the vCPU (loop thread). */
static void on_call(struct event_notifier *n)
{
	virtio_mmio_serve_call(container_of(n, struct virtio_mmio, call_wake));
}

/* Run @c on the loop thread and wait for it. vCPU thread, @lock held.
 * Returns 0, or -ESHUTDOWN when the loop has stopped. */
static int call_loop(struct virtio_mmio *t, struct virtio_mmio_call *c)
{
	if (!transport_has_vm(t)) {
		/* No VM: the caller is the loop thread itself (mmio.h). */
		run_call(t, c);
		return 0;
	}
	while (t->call && !t->closed)
		pthread_cond_wait(&t->cond, &t->lock);
	if (t->closed)
		goto failed;
	c->done = false;
	t->call = c;
	if (event_notifier_signal(&t->call_wake) < 0) {
		t->call = NULL;
		pthread_cond_broadcast(&t->cond);
		goto failed;
	}
	while (!c->done && !t->closed)
		pthread_cond_wait(&t->cond, &t->lock);
	if (c->done)
		return 0;
	if (t->call == c)
		t->call = NULL;
failed:
	COUNT(t, rx_register_dropped);
	return -ESHUTDOWN;
}

/* --- register access (vCPU threads) ---------------------------------------- */

static bool queue_regs_writable(const struct virtio_mmio *t)
{
	return (t->status & VIRTIO_CONFIG_S_FEATURES_OK) && !(t->status & VIRTIO_CONFIG_S_DRIVER_OK);
}

static struct virtio_mmio_queue *selected_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->dev->num_queues ? &t->queues[t->queue_sel] : NULL;
}

static uint32_t status_read(struct virtio_mmio *t)
{
	bool nr = load_seq_cst(&t->needs_reset);

	return t->status | (nr ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
}

/* SHMLen/SHMBase of the region SHMSel names: a half of its length or base,
 * all ones for a region the device does not have (spec 4.2.2). */
static uint32_t shm_read(const struct virtio_mmio *t, uint32_t off)
{
	const struct virtio_device *d = t->dev;

	for (unsigned i = 0; i < d->num_shm; i++) {
		const struct virtio_shm_region *sr = &d->shm[i];
		if (sr->id != t->shm_sel)
			continue;
		uint64_t v = (off == VIRTIO_MMIO_SHM_LEN_LOW || off == VIRTIO_MMIO_SHM_LEN_HIGH)
				     ? sr->len : sr->base;
		bool high = off == VIRTIO_MMIO_SHM_LEN_HIGH || off == VIRTIO_MMIO_SHM_BASE_HIGH;
		return (uint32_t)(high ? v >> 32 : v);
	}
	return MMIO_NO_SHM;
}

/* A 32-bit register read (vCPU thread, @lock held). */
static uint32_t reg_read(struct virtio_mmio *t, uint32_t off)
{
	struct virtio_mmio_queue *mq = selected_queue(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:  return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:      return MMIO_VERSION;
	case VIRTIO_MMIO_DEVICE_ID:    return t->dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:    return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return t->device_features_sel < 2 ? (uint32_t)(t->offered >> (32 * t->device_features_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return mq ? t->opts.queue_num_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return mq ? mq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return load_seq_cst(&t->interrupt_status);
	case VIRTIO_MMIO_STATUS:
		return status_read(t);
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return load_seq_cst(&t->config_generation);
	case VIRTIO_MMIO_SHM_LEN_LOW: case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW: case VIRTIO_MMIO_SHM_BASE_HIGH:
		return shm_read(t, off);
	default:
		COUNT(t, rx_register_invalid);
		return 0;
	}
}

static void set_half(uint64_t *v, bool high, uint32_t half)
{
	if (high)
		*v = (*v & 0xffffffffull) | ((uint64_t)half << 32);
	else
		*v = (*v & ~0xffffffffull) | half;
}

static void driver_features_write(struct virtio_mmio *t, uint32_t value)
{
	bool open = (t->status & VIRTIO_CONFIG_S_DRIVER) && !(t->status & VIRTIO_CONFIG_S_FEATURES_OK);

	if (!open || t->driver_features_sel > 1) {
		COUNT(t, rx_feature_writes_refused);
		return;
	}
	set_half(&t->driver_features, t->driver_features_sel == 1, value);
}

/* QueueNum, QueueDesc/Avail/Used and QueueReady. While a queue is ready
 * only QueueReady may change (spec 4.2.2.2: the driver must not touch the
 * others until it has written 0 to QueueReady). */
static void queue_reg_write(struct virtio_mmio *t, uint32_t off, uint32_t value)
{
	struct virtio_mmio_queue *mq = selected_queue(t);
	bool locked = mq && mq->ready && off != VIRTIO_MMIO_QUEUE_READY;

	if (!mq || !queue_regs_writable(t) || locked) {
		COUNT(t, rx_queue_writes_refused);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NUM:
		/* Checked against the ring rules when the queue starts. */
		mq->num = value <= t->opts.queue_num_max ? (uint16_t)value : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:       mq->ready = value & 1; break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:    set_half(&mq->desc, false, value); break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:   set_half(&mq->desc, true, value); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:   set_half(&mq->avail, false, value); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:  set_half(&mq->avail, true, value); break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:    set_half(&mq->used, false, value); break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:   set_half(&mq->used, true, value); break;
	default: break;
	}
}

/* A QueueNotify write that no ioeventfd matched (a bad index, or a width
 * KVM does not match): a valid index is passed on as a kick anyway. */
static void notify_exit(struct virtio_mmio *t, uint32_t value)
{
	uint64_t one = 1;

	COUNT(t, rx_notify_exits);
	if (value < t->dev->num_queues && write(t->kicks[value].fd, &one, sizeof(one)) < 0)
		log_debug("%s: kick eventfd: %s", t->dev->ops->name, strerror(errno));
}

/* A 32-bit register write (vCPU thread, @lock held). */
static void reg_write(struct virtio_mmio *t, uint32_t off, uint32_t value)
{
	struct virtio_mmio_call c = { .op = CALL_STATUS, .value = value };

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: t->device_features_sel = value; return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: t->driver_features_sel = value; return;
	case VIRTIO_MMIO_DRIVER_FEATURES:     driver_features_write(t, value); return;
	case VIRTIO_MMIO_QUEUE_SEL:           t->queue_sel = value; return;
	case VIRTIO_MMIO_QUEUE_NUM: case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW: case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW: case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW: case VIRTIO_MMIO_QUEUE_USED_HIGH:
		queue_reg_write(t, off, value);
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:        notify_exit(t, value); return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		fetch_and_seq_cst(&t->interrupt_status, ~value);
		return;
	case VIRTIO_MMIO_STATUS:
		call_loop(t, &c);
		return;
	case VIRTIO_MMIO_SHM_SEL:             t->shm_sel = value; return;
	default:
		COUNT(t, rx_register_invalid);
		return;
	}
}

static void config_access(struct virtio_mmio *t, uint32_t off, void *data, unsigned len,
			  bool is_write)
{
	struct virtio_mmio_call c = {
		.op = is_write ? CALL_CONFIG_WRITE : CALL_CONFIG_READ,
		.offset = off, .len = len,
	};

	if (is_write)
		memcpy(c.data, data, len);
	if (call_loop(t, &c) < 0)
		memset(c.data, 0, sizeof(c.data));
	if (!is_write)
		memcpy(data, c.data, len);
}

void virtio_mmio_access(struct virtio_mmio *t, uint64_t offset, void *data, unsigned len,
			bool is_write)
{
	uint32_t value = 0;

	if (offset >= VIRTIO_MMIO_WINDOW || (len != 1 && len != 2 && len != 4 && len != 8)) {
		COUNT(t, rx_register_invalid);
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		config_access(t, (uint32_t)(offset - VIRTIO_MMIO_CONFIG), data, len, is_write);
	} else if (len != 4 || offset % 4) {
		/* Spec 4.2.2: registers are accessed as aligned 32-bit words. */
		COUNT(t, rx_register_invalid);
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		memcpy(&value, data, 4);
		reg_write(t, (uint32_t)offset, value);
	} else {
		value = reg_read(t, (uint32_t)offset);
		memcpy(data, &value, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

/* --- kicks (the thread of the queue's loop) -------------------------------- */

static void on_kick(struct event_source *src, uint32_t events)
{
	struct virtio_mmio_kick *k = container_of(src, struct virtio_mmio_kick, src);
	struct virtio_mmio *t = k->t;
	uint64_t v;

	if (read(k->fd, &v, sizeof(v)) < 0)
		return;
	COUNT(t, rx_kicks);
	/* Kicks before DRIVER_OK are dropped: activation drains every queue.
	 * (A device thread reads the flag the loop thread sets: relaxed.) */
	if (!load_relaxed(&t->dev->active)) {
		COUNT(t, rx_kicks_inactive);
		return;
	}
	t->dev->ops->queue_notify(t->dev, k->q);
}

/* --- setup ------------------------------------------------------------------- */

static int kvm_ioeventfd(struct virtio_mmio *t, struct virtio_mmio_kick *k, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = k->q,
		.addr = t->opts.base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.fd = k->fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(t->opts.vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static int kvm_irqfd(struct virtio_mmio *t, bool assign)
{
	struct kvm_irqfd irq = { .fd = (uint32_t)t->irq_fd, .gsi = t->opts.gsi,
				 .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };

	return ioctl(t->opts.vm_fd, KVM_IRQFD, &irq) < 0 ? -errno : 0;
}

/* Queue @q's kick: an eventfd KVM signals on "QueueNotify = q", watched on
 * the loop the device takes that queue's kicks on (a queue pair's own
 * thread: no hop through the device's loop). */
static int setup_kick(struct virtio_mmio *t, unsigned q)
{
	struct virtio_mmio_kick *k = &t->kicks[q];

	k->t = t;
	k->q = q;
	k->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (k->fd < 0)
		return -errno;
	int r = transport_has_vm(t) ? kvm_ioeventfd(t, k, true) : 0;
	if (r < 0) {
		log_err("%s: KVM_IOEVENTFD for queue %u: %s", t->dev->ops->name, q, strerror(-r));
		return r;
	}
	k->assigned = transport_has_vm(t);
	k->loop = virtio_device_queue_loop(t->dev, q);
	return event_loop_watch(k->loop, &k->src, k->fd, EPOLLIN, on_kick, "virtio-mmio kick");
}

/* The irqfd, the call notifier and every queue's kick. */
static int setup_fds(struct virtio_mmio *t)
{
	t->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->irq_fd < 0)
		return -errno;
	int r = transport_has_vm(t) ? kvm_irqfd(t, true) : 0;
	if (r < 0) {
		log_err("%s: KVM_IRQFD on GSI %u: %s", t->dev->ops->name, t->opts.gsi, strerror(-r));
		return r;
	}
	t->irq_assigned = transport_has_vm(t);
	r = event_notifier_init(t->loop, &t->call_wake, on_call, "virtio-mmio call");
	for (unsigned q = 0; !r && q < t->dev->num_queues; q++)
		r = setup_kick(t, q);
	return r;
}

int virtio_mmio_init(struct virtio_mmio *t, struct virtio_device *dev, struct event_loop *loop,
		     const struct guest_mem *mem, const struct virtio_mmio_opts *opts)
{
	memset(t, 0, sizeof(*t));
	t->irq_fd = -1;
	t->transport.ops = &mmio_transport_ops;
	t->dev = dev;
	t->loop = loop;
	t->opts = *opts;
	if (!t->opts.queue_num_max)
		t->opts.queue_num_max = VIRTIO_MMIO_QUEUE_MAX_DEFAULT;
	if (t->opts.queue_num_max > VQ_MAX_SIZE || !dev->num_queues)
		return -EINVAL;
	t->nqueues = dev->num_queues;
	t->queues = calloc(dev->num_queues, sizeof(t->queues[0]));
	t->kicks = calloc(dev->num_queues, sizeof(t->kicks[0]));
	if (!t->queues || !t->kicks) {
		free(t->queues);
		free(t->kicks);
		return -ENOMEM;
	}
	for (unsigned q = 0; q < dev->num_queues; q++)
		t->kicks[q].fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	dev->transport = &t->transport;
	dev->mem = mem;
	t->offered = dev->ops->features(dev);
	int r = setup_fds(t);
	if (r < 0)
		virtio_mmio_destroy(t);
	return r;
}

void virtio_mmio_close(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	t->closed = true;
	t->call = NULL;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (!t->queues)
		return;
	virtio_device_reset(t->dev);
	for (unsigned q = 0; q < t->dev->num_queues; q++) {
		struct virtio_mmio_kick *k = &t->kicks[q];
		if (k->loop)
			event_loop_unwatch(k->loop, &k->src);
		if (k->assigned)
			kvm_ioeventfd(t, k, false);
		if (k->fd >= 0)
			close(k->fd);
	}
	event_notifier_destroy(t->loop, &t->call_wake);
	if (t->irq_assigned)
		kvm_irqfd(t, false);
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	t->dev->transport = NULL;
	free(t->queues);
	free(t->kicks);
	t->queues = NULL;
	t->kicks = NULL;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

#define X(name, doc) COUNTER_DESC(struct virtio_mmio_counters, name, doc)
const struct counter_set virtio_mmio_counter_set = COUNTER_SET("mmio", VIRTIO_MMIO_COUNTERS(X));
#undef X

void virtio_mmio_visit_counters(const struct virtio_mmio *t, const struct counter_sink *sink)
{
	counters_visit(&virtio_mmio_counter_set, &t->counters, "mmio_", sink);
}

void virtio_mmio_dump_counters(const struct virtio_mmio *t, FILE *out)
{
	virtio_mmio_visit_counters(t, COUNTER_SINK_FILE(out));
}
