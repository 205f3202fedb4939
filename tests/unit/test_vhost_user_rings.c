/*
 * vhost-user ring lifecycle tests: the message orders real front-ends send
 * (QEMU without protocol bit 30, DPDK's virtio-user, UML with in-band
 * notifications) end in the ring states of the spec's "Ring states"
 * (stopped/started x disabled/enabled, plus kvmini's RUNNING); messages out
 * of order still start the device once everything is there; the call fd
 * check: only an eventfd or a socket is accepted; and multiqueue: a net
 * device runs on its enabled pairs, restarting when one is enabled or
 * disabled.
 *
 * The ring states are private to the server: this test reads them through
 * vhost_user_internal.h, as the one test that checks the state machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/atomics.h"
#include "core/log.h"
#include "transport/vhost_user_internal.h"
#include "vu_frontend.h"

#define BIT30 (1ull << VHOST_USER_F_PROTOCOL_FEATURES)

static enum vu_ring_state ring_state(struct vfe *f, unsigned q)
{
	return f->srv.vrings[q].state;
}

/* SET_OWNER, acks and MQ, features (@bit30: protocol features acked, so
 * rings start disabled), the memory table. */
static void negotiate(struct vfe *f, bool bit30)
{
	CHECK_EQ(vfe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
			 VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(vfe_u64(f, VHOST_USER_SET_FEATURES, VFE_FEATURES | (bit30 ? BIT30 : 0)), 0);
	CHECK_EQ(vfe_set_mem_uml(f), 0);
}

static void set_call(struct vfe *f, unsigned q)
{
	if (f->call[q] < 0)
		f->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_CALL, q, f->call[q]), 0);
}

/* A new kick eventfd for ring @q (the front-end keeps its copy). */
static void set_kick(struct vfe *f, unsigned q)
{
	if (f->kick[q] >= 0)
		close(f->kick[q]);
	f->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_KICK, q, f->kick[q]), 0);
}

/* GET_VRING_BASE: the base reported, or -1 without a proper reply. */
static long long get_base(struct vfe *f, unsigned q)
{
	struct vhost_vring_state st = { .index = q };
	struct vfe_reply r;

	if (vfe_call(f, VHOST_USER_GET_VRING_BASE, VFE_NO_REPLY, &st, sizeof(st), NULL, 0,
		     &r) != 1 || r.hdr.size != sizeof(st) || r.p.state.index != q)
		return -1;
	return r.p.state.num;
}

static void check_both(struct vfe *f, enum vu_ring_state want)
{
	CHECK_EQ(ring_state(f, 0), want);
	CHECK_EQ(ring_state(f, 1), want);
}

/* QEMU's order without bit 30: rings enabled by SET_FEATURES, started by
 * their kick fds; GET_VRING_BASE stops one ring (and the device); a new
 * base and kick fd start it again; RESET_OWNER stops every ring. */
static void test_states_qemu(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	check_both(&f, VU_RING_STOPPED);
	negotiate(&f, false);
	check_both(&f, VU_RING_STOPPED_ENABLED);
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		set_call(&f, q);
		CHECK_EQ(vfe_ring_setup(&f, q), 0);
		CHECK_EQ(f.srv.vrings[q].have, VU_RING_HAVE_ALL);
	}
	check_both(&f, VU_RING_STOPPED_ENABLED);
	set_kick(&f, 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED_ENABLED);
	CHECK(!f.dev.vdev.active);
	set_kick(&f, 1);
	check_both(&f, VU_RING_RUNNING);
	CHECK(f.dev.vdev.active);

	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(get_base(&f, 0), 1);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STOPPED_ENABLED);
	CHECK_EQ(ring_state(&f, 1), VU_RING_STARTED_ENABLED);
	CHECK_EQ(f.srv.vrings[0].kick_fd, -1);
	CHECK(!f.dev.vdev.active);

	/* Restart where it stopped. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 1), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STOPPED_ENABLED);
	set_kick(&f, 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.activations, 2);

	/* RESET_OWNER: every ring stops, its configuration stays. */
	CHECK_EQ(vfe_ack(&f, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0), 0);
	check_both(&f, VU_RING_STOPPED_ENABLED);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(f.srv.vrings[1].kick_fd, -1);
	CHECK_EQ(f.srv.vrings[1].have, VU_RING_HAVE_ALL);
	set_kick(&f, 0);
	set_kick(&f, 1);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.activations, 3);

	/* Disconnect: back to the initial state, configuration forgotten. */
	vfe_close_peer_fds(&f);
	vfe_pump(&f);
	check_both(&f, VU_RING_STOPPED);
	CHECK_EQ(f.srv.vrings[0].have, 0);
	CHECK(!f.dev.vdev.active);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* DPDK virtio-user: bit 30 acked; per ring CALL, NUM, BASE, ADDR, KICK,
 * then SET_VRING_ENABLE per ring; it stops with ENABLE 0, then
 * GET_VRING_BASE for each ring. */
static void test_states_dpdk(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	negotiate(&f, true);
	check_both(&f, VU_RING_STOPPED);
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		set_call(&f, q);
		CHECK_EQ(vfe_ring_setup(&f, q), 0);
		set_kick(&f, q);
	}
	check_both(&f, VU_RING_STARTED);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED_ENABLED);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK(f.dev.vdev.active);

	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 0), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED);
	CHECK_EQ(ring_state(&f, 1), VU_RING_STARTED_ENABLED);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
	check_both(&f, VU_RING_STARTED);
	CHECK_EQ(get_base(&f, 0), 0);
	CHECK_EQ(get_base(&f, 1), 0);
	check_both(&f, VU_RING_STOPPED);
	CHECK_EQ(f.dev.resets, 1);

	/* The next start, as DPDK does after a port restart. */
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		CHECK_EQ(vfe_ring_setup(&f, q), 0);
		set_kick(&f, q);
		CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
	}
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.activations, 2);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* UML with in-band notifications: negotiating them starts every ring;
 * disabling one stops the device; an in-band kick restarts a ring
 * stopped by GET_VRING_BASE. */
static void test_states_uml_inband(void)
{
	struct vfe f;
	struct vfe_reply r;

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_uml_negotiate(&f), 0);
	check_both(&f, VU_RING_STARTED);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, q | VFE_NOFD, -1), 0);
		CHECK_EQ(vfe_ring_setup(&f, q), 0);
		CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, q | VFE_NOFD, -1), 0);
	}
	check_both(&f, VU_RING_STARTED);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED_ENABLED);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED_ENABLED);
	CHECK_EQ(ring_state(&f, 1), VU_RING_STARTED);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
	check_both(&f, VU_RING_RUNNING);

	CHECK_EQ(get_base(&f, 0), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STOPPED_ENABLED);
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_VRING_KICK, 0, 0), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.chains[0], 1);   /* served when the device started */
	CHECK_EQ(vfe_recv(f.backend, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_VRING_CALL);

	/* Protocol features again without in-band kicks: rings without a
	 * kick fd lose their kick source. */
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	check_both(&f, VU_RING_STOPPED_ENABLED);
	CHECK(!f.dev.vdev.active);
	vfe_teardown(&f);
}

/* Out of order: a kick fd before the ring's size and addresses, ENABLE
 * before the kick fd, a stop of a ring never started, a new size for a
 * running ring. The device starts once everything is there. */
static void test_states_out_of_order(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	negotiate(&f, true);
	CHECK_EQ(get_base(&f, 0), 0);               /* never started */
	CHECK_EQ(ring_state(&f, 0), VU_RING_STOPPED);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 0), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STOPPED);

	set_kick(&f, 0);                            /* before NUM, BASE, ADDR */
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED);
	CHECK_EQ(f.srv.vrings[0].have, 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK_EQ(ring_state(&f, 0), VU_RING_STARTED_ENABLED);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);   /* before its kick */
	CHECK_EQ(ring_state(&f, 1), VU_RING_STOPPED_ENABLED);
	CHECK_EQ(vfe_ring_setup(&f, 1), 0);
	set_kick(&f, 1);
	CHECK_EQ(ring_state(&f, 1), VU_RING_STARTED_ENABLED);
	CHECK(!f.dev.vdev.active);                  /* ring 0 has no size yet */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 0, VFE_RING_NUM), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0), VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.activations, 1);

	/* A new size for a running ring: the device stops for the change and
	 * starts again with it. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 1, 128), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.resets, 1);
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.dev.vqs[1].size, 128);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/*
 * A two-pair net device as QEMU with mq=on starts it for a driver using
 * one pair: protocol features and MQ acked, the control queue not (QEMU
 * serves it), every ring configured and started, only pair 0 enabled.
 */
static void mq_start_pair0(struct vfe *f)
{
	CHECK_EQ(vfe_setup_mq(f, NULL, 2), 0);
	CHECK_EQ(vfe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
			 VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(vfe_u64(f, VHOST_USER_SET_FEATURES,
			 VFE_FEATURES | (1ull << VFE_F_MQ) | BIT30), 0);
	CHECK_EQ(f->dev.vdev.num_queues, 4);
	CHECK_EQ(vfe_set_mem_uml(f), 0);
	for (unsigned q = 0; q < 4; q++) {
		set_call(f, q);
		CHECK_EQ(vfe_ring_setup(f, q), 0);
		set_kick(f, q);
	}
	CHECK_EQ(vfe_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK(!f->dev.vdev.active);                 /* pair 0 is required whole */
	CHECK_EQ(vfe_state(f, VHOST_USER_SET_VRING_ENABLE, 1, 1), 0);
	CHECK_EQ(vfe_state(f, VHOST_USER_SET_VRING_ENABLE, 2, 0), 0);
	CHECK_EQ(vfe_state(f, VHOST_USER_SET_VRING_ENABLE, 3, 0), 0);
	CHECK(f->dev.vdev.active);
	CHECK_EQ(f->dev.activations, 1);
}

/* Which of the device's four queues are started, as a bit mask. */
static unsigned started_mask(struct vfe *f)
{
	unsigned m = 0;

	for (unsigned q = 0; q < 4; q++)
		m |= (unsigned)f->dev.vqs[q].started << q;
	return m;
}

/* Pair 1 disabled, then enabled (the driver's VQ_PAIRS_SET 2): the device
 * runs on pair 0 with pair 1's queues stopped and inert, a kick on them
 * reaches nothing; each enable restarts the device with the ring added,
 * and buffers that waited are served then. */
static void test_mq_enable_pair1(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	mq_start_pair0(&f);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STARTED);
	CHECK_EQ(ring_state(&f, 3), VU_RING_STARTED);
	CHECK_EQ(started_mask(&f), 0x3);
	vfe_guest_offer(&f, 2);
	CHECK_EQ(vfe_kick(&f, 2), 0);
	CHECK_EQ(f.dev.notifies[2], 0);
	CHECK_EQ(f.dev.chains[2], 0);
	CHECK_EQ(vfe_used_idx(&f, 2), 0);

	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
	CHECK_EQ(ring_state(&f, 2), VU_RING_RUNNING);
	CHECK_EQ(started_mask(&f), 0x7);
	CHECK_EQ(f.dev.resets, 1);                  /* stopped for the change */
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.dev.chains[2], 1);               /* the waiting buffer */
	CHECK_EQ(vfe_used_idx(&f, 2), 1);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 1), 0);
	CHECK_EQ(started_mask(&f), 0xf);
	CHECK_EQ(f.dev.activations, 3);
	for (unsigned q = 0; q < 4; q++)
		CHECK_EQ(ring_state(&f, q), VU_RING_RUNNING);
	/* Enabling a running ring again changes nothing. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 1), 0);
	CHECK_EQ(f.dev.activations, 3);
	vfe_guest_offer(&f, 3);
	CHECK_EQ(vfe_kick(&f, 3), 0);
	CHECK_EQ(f.dev.chains[3], 1);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* Pair 1 disabled while the device runs on both (VQ_PAIRS_SET 1): the
 * device restarts on pair 0, pair 1 keeps the base it reached, and its
 * GET_VRING_BASE leaves pair 0 running; stopping ring 0 stops the device. */
static void test_mq_disable_pair1(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	mq_start_pair0(&f);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 1), 0);
	CHECK_EQ(started_mask(&f), 0xf);
	vfe_guest_offer(&f, 2);
	CHECK_EQ(vfe_kick(&f, 2), 0);
	CHECK_EQ(f.dev.chains[2], 1);
	unsigned acts = f.dev.activations, resets = f.dev.resets;

	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 0), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 0), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(started_mask(&f), 0x3);
	CHECK_EQ(f.dev.activations, acts + 2);
	CHECK_EQ(f.dev.resets, resets + 2);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STARTED);
	CHECK_EQ(f.srv.vrings[2].base, 1);
	vfe_guest_offer(&f, 2);                     /* inert again */
	CHECK_EQ(vfe_kick(&f, 2), 0);
	CHECK_EQ(f.dev.chains[2], 1);

	/* Stopping a ring the device does not run on leaves it running. */
	CHECK_EQ(get_base(&f, 2), 1);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STOPPED);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.resets, resets + 2);
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(get_base(&f, 0), 1);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(started_mask(&f), 0);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* Pair 1 takes its kicks on a thread of the device (its own loop here),
 * and runs not: a new kick fd for one of its rings, or its stop, closes a
 * fd that thread may be dispatching an event of, so the device stops
 * around the change and starts again. Kicks on the loop of the server
 * (pair 0 here) keep today's rule: only a ring the device runs on stops it. */
static void test_mq_kick_on_pair_thread(void)
{
	struct vfe f;
	struct event_loop pair_loop;
	int base_fds = vfe_count_fds();

	CHECK_EQ(event_loop_init(&pair_loop), 0);
	mq_start_pair0(&f);
	f.dev.pair_loop = &pair_loop;
	CHECK_EQ(ring_state(&f, 2), VU_RING_STARTED);
	unsigned acts = f.dev.activations, resets = f.dev.resets;

	/* Watched on the server's loop until now: nothing stops. */
	set_kick(&f, 2);
	CHECK(f.srv.vrings[2].kick_loop == &pair_loop);
	CHECK_EQ(f.dev.resets, resets);
	CHECK_EQ(f.dev.activations, acts);
	/* Now the old fd is the pair thread's. */
	set_kick(&f, 2);
	CHECK_EQ(f.dev.resets, resets + 1);
	CHECK_EQ(f.dev.activations, acts + 1);
	CHECK(f.dev.vdev.active);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STARTED);
	CHECK_EQ(started_mask(&f), 0x3);
	/* The kick reaches the pair's loop, and a ring not running ignores it. */
	CHECK_EQ(vfe_kick(&f, 2), 0);
	CHECK_EQ(event_loop_once(&pair_loop, 0), 1);
	CHECK_EQ(f.dev.notifies[2], 0);
	/* GET_VRING_BASE of that ring closes the fd too. */
	CHECK_EQ(get_base(&f, 2), 0);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STOPPED);
	CHECK_EQ(f.dev.resets, resets + 2);
	CHECK_EQ(f.dev.activations, acts + 2);
	CHECK(f.dev.vdev.active);
	CHECK(f.srv.vrings[2].kick_loop == NULL);
	/* Ring 3's fd is still watched on the server's loop: nothing stops. */
	CHECK_EQ(get_base(&f, 3), 0);
	CHECK_EQ(f.dev.resets, resets + 2);
	vfe_teardown(&f);
	event_loop_destroy(&pair_loop);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A driver without MQ (iPXE behind QEMU with mq=on): one pair, and QEMU
 * still sets the call fds of pair 1 and disables its rings: accepted, and
 * the device runs on pair 0 only. */
static void test_mq_not_negotiated(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup_mq(&f, NULL, 2), 0);
	CHECK_EQ(vfe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			 VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	for (unsigned q = 0; q < 4; q++)
		set_call(&f, q);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, VFE_FEATURES | BIT30), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 2);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	for (unsigned q = 0; q < 2; q++) {
		CHECK_EQ(vfe_ring_setup(&f, q), 0);
		set_kick(&f, q);
		CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
	}
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 0), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 0), 0);
	check_both(&f, VU_RING_RUNNING);
	CHECK_EQ(f.dev.activations, 1);
	/* A ring past the negotiated queues, even ready, is not started. */
	CHECK_EQ(vfe_ring_setup(&f, 2), 0);
	set_kick(&f, 2);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
	CHECK_EQ(ring_state(&f, 2), VU_RING_STARTED_ENABLED);
	CHECK_EQ(f.dev.activations, 1);
	CHECK_EQ(started_mask(&f), 0x3);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

#define SIGNALS_PER_THREAD 20000

struct signaller {
	struct vfe *f;
	unsigned first;           /* rings first, first + 1 */
	unsigned sent;            /* signal_used_direct said it signalled */
	bool done;                /* atomic: the thread finished */
};

/* A pair thread of the device: interrupts on its two rings, directly. */
static void *signal_thread(void *arg)
{
	struct signaller *sg = arg;
	struct virtio_transport *t = &sg->f->srv.transport;

	for (unsigned i = 0; i < SIGNALS_PER_THREAD; i++)
		sg->sent += t->ops->signal_used_direct(t, sg->first + i % 2);
	store_release(&sg->done, true);
	return NULL;
}

/* What the front-end's call eventfd @fd counted, and close it. */
static uint64_t drain_call(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	close(fd);
	return v;
}

/* signal_used_direct from two pair threads at once while the loop thread
 * replaces call fds (SET_VRING_CALL): every interrupt it reports sent
 * reached exactly one call eventfd and was counted once. */
static void test_mq_signal_threads(void)
{
	struct vfe f;
	struct signaller sg[2] = { { .f = &f, .first = 0 }, { .f = &f, .first = 2 } };
	pthread_t th[2];
	uint64_t got = 0;
	int base_fds = vfe_count_fds();

	mq_start_pair0(&f);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 2, 1), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 3, 1), 0);
	uint64_t calls0 = f.srv.counters.tx_calls;
	for (unsigned i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, signal_thread, &sg[i]), 0);
	/* Replace call fds for as long as the threads signal. */
	for (unsigned i = 0; i < 8 || !load_acquire(&sg[0].done) || !load_acquire(&sg[1].done);
	     i++) {
		unsigned q = i % 4;
		int old = f.call[q];
		/* Read the old one once the server let it go: nothing more
		 * can reach it then. */
		f.call[q] = -1;
		set_call(&f, q);
		got += drain_call(old);
	}
	for (unsigned i = 0; i < 2; i++)
		CHECK_EQ(pthread_join(th[i], NULL), 0);
	for (unsigned q = 0; q < 4; q++) {
		got += drain_call(f.call[q]);
		f.call[q] = -1;
	}
	CHECK(sg[0].sent + sg[1].sent > SIGNALS_PER_THREAD);
	CHECK_EQ(got, sg[0].sent + sg[1].sent);
	CHECK_EQ(f.srv.counters.tx_calls - calls0, got);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, 0);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* True when nobody but us holds the write end of the pipe @rd reads. */
static bool pipe_writer_gone(int rd)
{
	char c;

	return read(rd, &c, 1) == 0;
}

/* SET_VRING_CALL takes an eventfd or a socket; anything else (a pipe, a
 * regular file) is refused with EINVAL, the fd closed, the ring left with
 * no call fd (the old one went with the request), the connection kept. */
static void test_call_fd_kinds(void)
{
	struct vfe f;
	struct virtio_transport *t;
	uint64_t v = 0;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_start_with_fds(&f, false), 0);
	t = f.dev.vdev.transport;

	int p[2];
	CHECK_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0, p[1]), EINVAL);
	close(p[1]);
	CHECK(pipe_writer_gone(p[0]));             /* the server kept no copy */
	close(p[0]);
	CHECK_EQ(f.srv.vrings[0].call_fd, -1);
	uint64_t dropped = f.srv.counters.tx_calls_dropped;
	t->ops->signal_used(t, 0);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, dropped + 1);
	CHECK(read(f.call[0], &v, sizeof(v)) < 0 && errno == EAGAIN);

	char path[] = "/tmp/kvmini-vu-call-XXXXXX";
	int file = mkstemp(path);
	CHECK(file >= 0);
	unlink(path);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 1, file), EINVAL);
	t->ops->signal_used(t, 1);
	struct stat st;
	CHECK_EQ(fstat(file, &st), 0);
	CHECK_EQ(st.st_size, 0);                    /* never written */
	close(file);

	/* An eventfd is taken, and signalled. */
	uint64_t calls = f.srv.counters.tx_calls;
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0, f.call[0]), 0);
	t->ops->signal_used(t, 0);
	CHECK_EQ(read(f.call[0], &v, sizeof(v)), 8);
	CHECK_EQ(v, 1);
	CHECK_EQ(f.srv.counters.tx_calls, calls + 1);
	CHECK(vhost_user_server_connected(&f.srv));
	check_both(&f, VU_RING_RUNNING);            /* calls are no lifecycle */
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

int main(void)
{
	log_threshold = LOG_ERROR;   /* refusals are expected here */
	RUN_TEST(test_states_qemu);
	RUN_TEST(test_states_dpdk);
	RUN_TEST(test_states_uml_inband);
	RUN_TEST(test_states_out_of_order);
	RUN_TEST(test_call_fd_kinds);
	RUN_TEST(test_mq_enable_pair1);
	RUN_TEST(test_mq_disable_pair1);
	RUN_TEST(test_mq_kick_on_pair_thread);
	RUN_TEST(test_mq_not_negotiated);
	RUN_TEST(test_mq_signal_threads);
	return CHECK_DONE();
}
