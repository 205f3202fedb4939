/*
 * virtio-net (device ID 1): RX/TX queue pairs (VIRTIO_NET_F_MQ with more
 * than one), the control queue, the 12-byte virtio 1.x header, MAC / MTU
 * / STATUS config, and a counter for every outcome.
 *
 * Threads. Each queue pair has its own backend and event loop (struct
 * net_queue_pair). A device built with pair threads (kvmini run, kvmini
 * vhost net) runs each pair's loop on a thread of its own, as
 * cloud-hypervisor's epoll thread per pair: the pair's backend fds, its
 * rate limiters' timers and its drains live there. The device's own loop
 * (the control queue, config space, the control API, counters) stays on
 * the caller's thread, which reaches a pair only
 *  - through the pair's notifier (kicks the transport delivered there),
 *  - or with the pair's thread stopped: activation, reset, pause and
 *    resume, and the control commands and rate-limit changes that touch a
 *    pair (net_device_pairs_hold .. _release).
 * The pair threads reach the device's loop through its notifier (an
 * interrupt the transport cannot send from any thread, a poisoned queue).
 * Built without pair threads (unit tests, fuzzers, benches), every pair
 * runs on the device's loop and nothing crosses a thread.
 */
#ifndef KVMINI_NET_NET_DEVICE_H
#define KVMINI_NET_NET_DEVICE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "core/fine_timer.h"
#include "core/state_io.h"
#include "net/backend.h"
#include "core/rate_limiter.h"
#include "net/soft_tx.h"
#include "virtio/device.h"

/* Queue pairs (--queues): at most as many as a tap has queues in
 * cloud-hypervisor's and QEMU's common set-ups; each costs a thread and
 * about 80 KiB of scratch. */
#define NET_MAX_QUEUE_PAIRS 16
/* A pair's queues, by direction: receiveqN is 2N, transmitqN 2N + 1
 * (virtio 5.1.2); these also name a direction (rate limits). */
#define NET_RX_QUEUE 0
#define NET_TX_QUEUE 1
#define NET_NUM_QUEUES 2                 /* queues of one pair */
/* The control queue follows the pairs in use (VIRTIO_NET_F_CTRL_VQ):
 * queue 2N with MQ negotiated, queue 2 without (net_ctrl_queue). */
#define NET_MAX_QUEUES (2 * NET_MAX_QUEUE_PAIRS + 1)
/* The longest control command's data (a MAC table of about 700 entries). */
#define NET_CTRL_DATA_MAX 4096u

/* Largest frame accepted from the guest after the header (ktstr's cap:
 * 64 KiB of IP datagram plus Ethernet and VLAN headers). */
#define NET_TX_FRAME_MAX 65557u
/* Work per wake-up before yielding to other work (fairness), as Linux
 * vhost-net bounds both frames (VHOST_NET_PKT_WEIGHT, 256) and bytes. Its
 * byte weight is 512 KiB, where requeueing is a kernel work item; here a
 * round of the event loop costs an epoll_wait, and in bench/net_loopback
 * (64 KiB frames) 512 KiB cost 15% of the throughput, 4 MiB 6%, 8 MiB
 * (128 such frames, about half a millisecond of copying) nothing
 * measurable. */
#define NET_BUDGET_FRAMES 256u
#define NET_BUDGET_BYTES (8u << 20)
/* The most a kick's TX drain may wait (--tx-coalesce-us). */
#define NET_TX_COALESCE_MAX_US 1000u
#define NET_POLL_MAX_US 1000u
/* Where --poll-us is not given: the longest adaptive window (as KVM's
 * halt_poll_ns). UML's namespace-to-guest TCP: 2 to 3x with it, as the
 * kicks and the tap's frames find the thread awake; a quiet interface's
 * window shrinks to none, so it costs nothing there. */
#define NET_POLL_DEFAULT_US 200u
/* The virtio 1.x header (struct virtio_net_hdr_v1) in front of every frame. */
#define NET_HDR_LEN 12u
/* Mergeable RX buffers: the most chains, and iovecs, one frame may take
 * (a 64 KiB frame in Linux's smallest mergeable buffers, about 1.5 KiB,
 * takes 44). */
#define NET_RX_MERGE_MAX 256u
#define NET_RX_IOV_MAX 1000u

/*
 * Counters, <direction>_<object>_<event>. Each moves on exactly one event.
 * They survive device reset (the operator's view spans guest reboots).
 */
#define NET_COUNTERS(X) \
	X(rx_packets,             "frames written to the guest") \
	X(rx_bytes,               "bytes of those frames, header excluded") \
	X(tx_packets,             "frames sent to the backend") \
	X(tx_bytes,               "bytes of those frames, header excluded") \
	X(rx_dropped_no_buffer,   "frames dropped: no RX buffer took them before the device stopped") \
	X(rx_dropped_poisoned,    "frames dropped: the RX queue is poisoned") \
	X(rx_dropped_too_big,     "frames dropped: larger than the RX chain") \
	X(tx_chain_invalid,       "TX chains completed unread: malformed or no frame") \
	X(tx_frame_oversize,      "TX frames over 65557 bytes: dropped, not truncated") \
	X(tx_backend_errors,      "TX frames the backend failed to send") \
	X(rx_chain_invalid,       "RX chains completed unused: malformed or too short") \
	X(rx_write_failed,        "RX writes that failed; the chain was given back") \
	X(used_add_failed,        "used-ring entries that could not be written") \
	X(avail_index_invalid,    "queues poisoned by a broken avail ring") \
	X(tx_hdr_invalid,         "TX frames dropped: a header the guest may not send (flags, checksum range, GSO type or headers)") \
	X(tx_csum_completed,      "TX frames whose checksum kvmini completed for a backend of plain frames") \
	X(tx_gso_segmented,       "TX GSO frames kvmini segmented for a backend of plain frames") \
	X(rx_hdr_refused,         "frames dropped: the backend's header asks for an offload the guest did not take") \
	X(rx_merged_buffers,      "RX buffers beyond the first that frames spread over (MRG_RXBUF)") \
	X(rx_waited_for_buffers,  "frames that waited in the spill buffer for the guest to give more RX buffers") \
	X(tx_ctrl_ok,             "control queue commands answered VIRTIO_NET_OK") \
	X(tx_ctrl_refused,        "control queue commands answered VIRTIO_NET_ERR (malformed, unknown, not negotiated, refused) or unanswerable") \
	X(rx_announce_requested,  "announcements asked of the guest (VIRTIO_NET_S_ANNOUNCE, after a restore)") \
	X(rx_interrupts,          "RX interrupts sent") \
	X(tx_interrupts,          "TX interrupts sent") \
	X(tx_rate_limited,        "times the TX rate limiter stopped the TX queue") \
	X(rx_rate_limited,        "times the RX rate limiter stopped delivery to the guest") \
	X(rx_events_polled,       "rounds of a pair thread's work found by polling (--poll-us), not after a wake-up")

struct net_counters {
	NET_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set net_counter_set;

struct net_config_opts {
	uint8_t mac[6];
	uint16_t mtu;                 /* advertised MTU (VIRTIO_NET_F_MTU) */
	/* Offer no checksum or GSO offload (measuring their worth, or a
	 * guest that mishandles them); mergeable RX buffers stay. */
	bool offloads_off;
	/* Run each queue pair on a thread of its own (the header's
	 * "Threads"); false: every pair on the device's loop. */
	bool pair_threads;
	/* Pair threads: a kick's TX drain waits this many µs, so the frames
	 * the guest queues meanwhile go in the same drain (tx_kicked); 0:
	 * at once. */
	unsigned tx_coalesce_us;
	/* Pair threads: after a round that moved something, keep polling
	 * (the kicks, the backend, the timers) for an adaptive window of at
	 * most this many µs before sleeping (event_loop_run_polling); 0:
	 * sleep at once. */
	unsigned poll_us;
};

/*
 * One receiveq/transmitq pair (virtio 5.1.2: receiveqN is queue 2N,
 * transmitqN queue 2N+1) and its data path's state, all of it owned by the
 * thread that runs the pair's loop.
 */
struct net_queue_pair {
	struct net_device *net;
	struct virtqueue *rx, *tx;       /* in net->vqs */
	struct net_backend *be;          /* this pair's own (a tap queue, a loopback) */
	struct event_loop *loop;         /* its fds, timers and deferred work */
	/* Written by this pair's thread only; read by anyone (relaxed). */
	struct net_counters counters;
	/* Per pair, as cloud-hypervisor's: each pair has the configured limits. */
	struct rate_limiter tx_limiter;
	struct rate_limiter rx_limiter;
	/* Pair threads: the thread, whether it should move buffers (set
	 * before it starts, cleared after it ended), and the way in from
	 * other threads: kicks and the stop request as bits, then a signal. */
	pthread_t thread;
	bool thread_started;
	bool go;
	struct event_notifier wake;
	unsigned wake_bits;              /* NET_WAKE_*, exchanged atomically */
	struct event_source rx_event;    /* backend rx_fd (fd backends) */
	bool rx_fd_watched;              /* rx_fd is polled only while RX has buffers */
	/* Both drains, after this event-loop round: a drain used its budget,
	 * or the backend called up (rx_pending, tx_unblocked). */
	struct event_deferred more_work;
	struct fine_timer tx_coalesce;   /* a kick's drain waiting (opts.tx_coalesce_us) */
	bool tx_blocked;                 /* backend said -EAGAIN; wait for tx_unblocked */
	bool rx_dirty;                   /* RX entries pushed but not yet published */
	bool tx_dirty;                   /* kept TX chains given back, not yet published */
	bool rx_wanted;                  /* the backend said rx_pending since the last RX drain */
	/* The chains being worked on (too big for the stack); a held one
	 * stays here across wake-ups (vq_hold). */
	struct vq_chain tx_chain;
	struct vq_chain rx_chain;
	/* TX: the checked header (net/offload.h) passed on with the frame,
	 * and the software finishing for a backend of plain frames. */
	struct virtio_net_hdr_v1 tx_hdr;
	struct net_soft_tx soft;
	/* RX: the header the backend wrote (or zero), then written to the
	 * guest with num_buffers; the chains a frame is read into (more than
	 * one with MRG_RXBUF: heads, capacities and their iovecs), the
	 * scratch chain more are popped into, and the spill buffer: a frame
	 * waiting, whole, for the guest to give more room (header in front;
	 * also where frames are read off and dropped while RX is poisoned). */
	struct virtio_net_hdr_v1 rx_hdr;
	struct iovec *rx_iov_buf;        /* NET_RX_IOV_MAX + 1; rx_iov = rx_iov_buf + 1 */
	struct iovec *rx_iov;            /* the gathered chains' room after the header */
	unsigned rx_niov;
	uint16_t *rx_heads;              /* NET_RX_MERGE_MAX */
	uint32_t *rx_caps;
	unsigned rx_nchains;
	uint64_t rx_room;                /* bytes the gathered chains hold, header included */
	bool rx_gather_stopped;          /* a chain that may not be merged ended the gathering */
	bool rx_need_buffers;            /* a frame waits for buffers: kicks wanted */
	struct vq_chain *rx_more;
	uint8_t *rx_spill_buf;           /* NET_HDR_LEN + NET_OFFLOAD_FRAME_MAX */
	size_t rx_spill_len;             /* the waiting frame's length, header included; 0: none */
};

/* What the driver set through the control queue (net_ctrl.c). */
struct net_ctrl {
	/* The GUEST_* offloads in force: those acked, until the driver sets
	 * others (GUEST_OFFLOADS_SET); RX headers are checked against them. */
	uint64_t guest_offloads;
	bool promisc, allmulti;          /* RX mode asked for (nothing is filtered) */
	unsigned mac_table_entries;      /* the last MAC table's entries, both tables */
	bool announce;                   /* VIRTIO_NET_S_ANNOUNCE raised, not yet acked */
	uint16_t vq_pairs;               /* queue pairs in use (MQ) */
	struct vq_chain *chain;          /* the command being answered */
	uint8_t *buf;                    /* its header and data (2 + NET_CTRL_DATA_MAX) */
	struct event_deferred more;      /* the drain used its budget */
};

struct net_device {
	struct virtio_device vdev;
	struct virtqueue vqs[NET_MAX_QUEUES];
	struct net_queue_pair pairs[NET_MAX_QUEUE_PAIRS];
	unsigned npairs;                 /* built (--queues); max_virtqueue_pairs */
	struct net_backend *backend;     /* the first pair's (features, MTU) */
	struct net_config_opts opts;
	/* The device's own events (the control queue, announcements,
	 * counters restored from a snapshot); the data path counts per pair,
	 * and the totals are the sum (net_device_counters_total). */
	struct net_counters counters;
	/* Pair threads post here what only the device's loop may do: an
	 * interrupt the transport cannot send from their thread, a poisoned
	 * queue's NEEDS_RESET (per queue, exchanged atomically). */
	struct event_notifier posted;
	bool irq_pending[NET_MAX_QUEUES];
	bool poisoned_pending[NET_MAX_QUEUES];
	/* A control queue kick a pair's thread took (queue 2 is pair 1's
	 * receiveq with MQ, the control queue without), and the thread that
	 * runs the device's loop, which answers it. */
	bool ctrl_pending;
	pthread_t device_thread;
	/* Snapshot restore (net_state.h): keep opts.mac as configured here
	 * instead of the state's. The machine sets it before loading when its
	 * configuration names a MAC (a clone of a snapshot with its own). The
	 * guest's interface keeps the MAC its driver read at probe either
	 * way: only config space reads see the new one. */
	bool keep_configured_mac;
	struct net_ctrl ctrl;
	/* ctrl was loaded from a snapshot: the features about to be set keep
	 * its RX offloads rather than all those acked. */
	bool ctrl_restored;
	/* A restored device asks the guest to announce itself (gratuitous
	 * ARP, unsolicited NA: its MAC may now sit behind another port) once
	 * it runs again. */
	bool announce_on_resume;
};

/* One pair on @loop, no pair threads (tests, fuzzers, benches). */
int net_device_init(struct net_device *net, const struct net_config_opts *opts,
		    struct net_backend *backend, struct event_loop *loop);
/*
 * @npairs pairs, pair i with backends[i], its fds registered on
 * pair_loops[i] (with opts->pair_threads, loops of their own that the
 * device's threads run; else each is @loop). The caller owns the backends
 * and the loops and destroys them after net_device_destroy.
 */
int net_device_init_pairs(struct net_device *net, const struct net_config_opts *opts,
			  struct net_backend *const *backends, unsigned npairs,
			  struct event_loop *loop, struct event_loop *const *pair_loops);
void net_device_destroy(struct net_device *net);
/* The totals: the device's own counters plus every pair's. */
void net_device_counters_total(const struct net_device *net, struct net_counters *out);
static inline struct net_counters net_device_totals(const struct net_device *net)
{
	struct net_counters c;

	net_device_counters_total(net, &c);
	return c;
}
/* The totals under their names, then with more than one pair each pair's
 * under "pairN_", then the backends' own (a pair after the first with
 * "pairN " in front). */
void net_device_visit_counters(const struct net_device *net, const struct counter_sink *sink);
void net_device_dump_counters(const struct net_device *net, FILE *out);

/* Tell every pair's backend which offloaded RX frames the guest takes
 * (set_offloads); 0, or the first refusal's -errno. */
int net_backends_set_offloads(struct net_device *net, uint64_t guest);
/* The control queue's index with the features negotiated. */
unsigned net_ctrl_queue(const struct net_device *net);
/* Stop every pair thread (wait for it) so the caller may change what the
 * pairs read; _release starts them again. Nesting is not allowed. No-ops
 * without pair threads or while the device is not running. Device loop. */
bool net_device_pairs_hold(struct net_device *net);
void net_device_pairs_release(struct net_device *net, bool held);
/* The backends of the pairs in use take the host's traffic, the others
 * are detached from its steering (a multi-queue tap). */
void net_device_steer_pairs(struct net_device *net);

/* The control queue (net_ctrl.c): answer what the driver queued, and
 * continue after the budget (deferred work). */
void net_ctrl_drain(struct net_device *net);
void net_ctrl_more(struct event_deferred *d);
/* Ask the guest to announce itself, when it negotiated GUEST_ANNOUNCE. */
void net_device_announce(struct net_device *net);

/* Change a direction's limits while running (NET_RX_QUEUE or NET_TX_QUEUE),
 * for every pair; 0 or -EINVAL. Traffic held back by the old limits
 * resumes at once. */
int net_device_set_rate_limit(struct net_device *net, unsigned q,
			      const struct rate_limiter_config *cfg);
void net_device_get_rate_limit(const struct net_device *net, unsigned q,
			       struct rate_limiter_config *cfg);

/*
 * The device's snapshot state hooks (virtio_device_ops.save_state /
 * .load_state; net_state.c): section "VNET" with the config (MAC, MTU),
 * every counter, and both rate limiters (configuration, tokens, and the
 * time since their last refill rather than the old process's clock). The
 * backend is not in it: the machine opens one anew from its configuration.
 * The state's MAC replaces opts.mac unless keep_configured_mac is set.
 */
int net_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb);
bool net_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
		    struct state_reader *r);

/* Parse "52:54:00:12:34:56" (six two-digit hex bytes, either case) into
 * @mac: 0, -EINVAL when malformed, -EADDRNOTAVAIL for a multicast or
 * all-zero address (no station's own); @mac is untouched on failure. */
int net_parse_mac(const char *text, uint8_t mac[6]);
/*
 * A MAC for an interface given none: locally administered, unicast, its
 * other 46 bits from getrandom(). Random rather than derived from the pid,
 * the clock and the NIC's index: those repeat across hosts sharing a bridge
 * and across pid namespaces (a jailed monitor is often pid 1), while random
 * bits differ with no coordination at all: among 1000 VMs on one segment
 * the chance that two collide is below 1e-8. The price: a restarted VM gets
 * a new MAC unless it is given one (--mac), as an operator who wants it
 * stable does.
 */
void net_random_mac(uint8_t mac[6]);

#endif
