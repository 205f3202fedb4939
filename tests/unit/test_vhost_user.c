/*
 * vhost-user server tests: the test front-end (tests/support/vu_frontend.c)
 * drives the server over a real unix socket with SCM_RIGHTS fds (memfd
 * guest memory, eventfd or socketpair notifications), against a small fake
 * device.
 *
 * Covered: the UML 6.1 boot and halt sequence with in-band notifications,
 * QEMU-style eventfd kicks and calls, every validation failure, reply flags,
 * GET_CONFIG size echo, ring stop/restart, memory table replacement,
 * GET_QUEUE_NUM and ring indices of a multiqueue device,
 * disconnect then a second front-end, listener errors, and no fd leaks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "check.h"
#include "core/compiler.h"
#include "core/log.h"
#include "transport/vhost_user.h"
#include "vu_frontend.h"

static void test_uml_boot_inband(void)
{
	struct vfe f;
	struct vfe_reply r;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_uml_start_inband(&f), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 1);
	/* Buffers queued before activation are served at activation. */
	CHECK(f.dev.notifies[0] >= 1 && f.dev.notifies[1] >= 1);

	/* Many small config reads; the reply repeats the requested size. */
	struct vhost_user_config cfg = { .offset = 0, .size = 6 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 12 + 6, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 12 + 6);
	CHECK_EQ(r.p.config.size, 6);
	CHECK_EQ(r.p.config.data[0], 0xa0);
	CHECK_EQ(r.p.config.data[5], 0xa5);
	cfg = (struct vhost_user_config){ .offset = 10, .size = 2 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 12 + 2, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 12 + 2);
	CHECK_EQ(r.p.config.offset, 10);
	CHECK_EQ(r.p.config.data[0], 0xaa);

	/* In-band kick, acked, and the used buffer comes back as VRING_CALL. */
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_VRING_KICK, 0, 0), 0);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(vfe_used_idx(&f, 0), 1);
	CHECK_EQ(vfe_recv(f.backend, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_VRING_CALL);
	CHECK_EQ(r.hdr.flags, VHOST_USER_VERSION);
	CHECK_EQ(r.hdr.size, 8);
	CHECK_EQ(r.p.state.index, 0);
	CHECK_EQ(vfe_recv(f.backend, &r), 0);

	/* Config change goes to the back-end channel. */
	f.dev.vdev.transport->ops->signal_config(f.dev.vdev.transport);
	CHECK_EQ(vfe_recv(f.backend, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	CHECK_EQ(r.hdr.size, 0);

	/* Halt: rings disabled, GET_FEATURES, disconnect. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(f.dev.resets, 1);
	CHECK_EQ(f.dev.acked, VFE_FEATURES);   /* a ring disable keeps the features */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 0), 0);
	CHECK(vfe_get_u64(&f, VHOST_USER_GET_FEATURES) != UINT64_MAX);
	vfe_close_peer_fds(&f);
	vfe_pump(&f);
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.dev.vdev.features, 0);
	CHECK(f.dev.vdev.mem == NULL);
	CHECK_EQ(f.srv.mem.nregions, 0);

	/* The next front-end is served from scratch. */
	CHECK_EQ(vfe_connect(&f), 0);
	CHECK_EQ(vfe_uml_start_inband(&f), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.srv.counters.connections, 2);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

static void test_eventfd_kick_call(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	/* A buffer queued before the device is active is not lost. */
	vfe_guest_offer(&f, 1);
	CHECK_EQ(vfe_start_with_fds(&f, false), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.chains[1], 1);
	uint64_t v = 0;
	CHECK_EQ(read(f.call[1], &v, sizeof(v)), 8);
	CHECK(v >= 1);

	vfe_guest_offer(&f, 0);
	unsigned before = f.dev.notifies[0];
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(f.dev.notifies[0], before + 1);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(read(f.call[0], &v, sizeof(v)), 8);
	CHECK_EQ(f.srv.counters.tx_calls, 2);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* Chains a device answers while it quiesces count in the base GET_VRING_BASE
 * reports: a restart must not see them again. */
static void test_vring_base_after_quiesce(void)
{
	struct vfe f;
	struct vfe_reply r;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_start_with_fds(&f, false), 0);
	f.dev.drain_on_reset = true;
	vfe_guest_offer(&f, 0);        /* no kick: still pending when the ring stops */
	struct vhost_vring_state st = { .index = 0 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_VRING_BASE, VFE_NO_REPLY, &st, sizeof(st), NULL, 0, &r), 1);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(r.p.state.num, 1);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A device whose queue count follows the features (virtio-fs with and
 * without its notification queue): before SET_FEATURES every queue may be
 * set up; without the feature only the first exists and the device starts
 * with it alone; the other ring index is still accepted (up to max_queues)
 * but never started; a new front-end sees both again. */
static void test_queue_count_per_features(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	f.dev.ops.device_id = VIRTIO_ID_FS;   /* GET_QUEUE_NUM counts queues */
	f.dev.queue_per_feature = true;
	f.dev.vdev.max_queues = VFE_QUEUES;
	CHECK_EQ(vfe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), VFE_QUEUES);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 1, VFE_RING_NUM), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 1);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 1, VFE_RING_NUM), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 2, VFE_RING_NUM), EINVAL);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	f.call[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0, f.call[0]), 0);
	CHECK_EQ(vfe_ring_setup(&f, 0), 0);
	f.kick[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, f.kick[0]), 0);
	CHECK(f.dev.vdev.active);
	CHECK(!f.dev.vqs[1].started);
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(f.dev.chains[0], 1);
	/* Disconnect: the device is reset and has room for both again. */
	vfe_close_peer_fds(&f);
	vfe_pump(&f);
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.dev.vdev.num_queues, VFE_QUEUES);
	CHECK_EQ(vfe_connect(&f), 0);
	CHECK_EQ(vfe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, VFE_FEATURES), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 2);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 1, VFE_RING_NUM), 0);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A net device answers GET_QUEUE_NUM in queue pairs, as QEMU reads it. */
static void test_queue_num_option(void)
{
	struct vfe f;
	struct vhost_user_opts opts = VHOST_USER_OPTS_DEFAULT;
	int base_fds = vfe_count_fds();

	opts.queue_num = 1;
	CHECK_EQ(vfe_setup(&f, &opts), 0);
	CHECK_EQ(vfe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 1);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/*
 * Multiqueue: the MQ protocol feature is offered whatever the queue count
 * (GET_QUEUE_NUM then tells, and QEMU without MQ assumes one pair anyway);
 * a net device answers in queue pairs, its control queue not counted; the
 * option overrides; ring indices run up to max_queues (the control queue
 * included) whatever the features.
 */
static void test_queue_num_mq(void)
{
	struct vfe f;
	struct vhost_user_opts opts = VHOST_USER_OPTS_DEFAULT;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK(vfe_get_u64(&f, VHOST_USER_GET_PROTOCOL_FEATURES) & VHOST_USER_PF(MQ));
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 1);
	vfe_teardown(&f);

	CHECK_EQ(vfe_setup_mq(&f, NULL, 2), 0);
	CHECK(vfe_get_u64(&f, VHOST_USER_GET_PROTOCOL_FEATURES) & VHOST_USER_PF(MQ));
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			 VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 2);
	/* QEMU and DPDK ack MQ but keep the control queue to themselves. */
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, VFE_FEATURES | (1ull << VFE_F_MQ)), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 4);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 3, VFE_RING_NUM), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 4, 0), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 5, VFE_RING_NUM), EINVAL);
	/* Not a net device: queues, not pairs. */
	f.dev.ops.device_id = VIRTIO_ID_FS;
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 5);
	vfe_teardown(&f);

	opts.queue_num = 7;
	CHECK_EQ(vfe_setup_mq(&f, &opts, 2), 0);
	CHECK_EQ(vfe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 7);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* UML without in-band notifications: the call "fd" is a socketpair. */
static void test_socketpair_call(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();
	uint64_t v = 0;

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_start_with_fds(&f, true), 0);
	CHECK(f.dev.vdev.active);
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(recv(f.call[0], &v, sizeof(v), MSG_DONTWAIT), 8);
	CHECK_EQ(v, 1);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* GET_VRING_BASE stops the ring and reports the avail index reached; a new
 * kick fd starts it again. */
static void test_vring_base_stop_restart(void)
{
	struct vfe f;
	struct vfe_reply r;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_start_with_fds(&f, false), 0);
	vfe_guest_offer(&f, 0);
	vfe_guest_offer(&f, 0);
	CHECK_EQ(vfe_kick(&f, 0), 0);
	CHECK_EQ(f.dev.chains[0], 2);

	struct vhost_vring_state st = { .index = 0 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_VRING_BASE, VFE_NO_REPLY, &st, sizeof(st), NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 8);
	CHECK_EQ(r.p.state.index, 0);
	CHECK_EQ(r.p.state.num, 2);
	CHECK(!f.dev.vdev.active);

	/* Stopped: the old kick fd is closed on the server side. */
	vfe_guest_offer(&f, 0);
	uint64_t one = 1;
	CHECK_EQ(write(f.kick[0], &one, sizeof(one)), 8);
	vfe_pump(&f);
	CHECK_EQ(f.dev.chains[0], 2);

	/* Restart at the base reported. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 2), 0);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, f.kick[0]), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.chains[0], 3);
	CHECK_EQ(vfe_used_idx(&f, 0), 3);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A new memory table stops the device for the swap and restarts it; a
 * refused one leaves the running table alone. */
static void test_mem_table_replace(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_start_with_fds(&f, false), 0);
	CHECK_EQ(f.dev.activations, 1);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.dev.resets, 1);

	/* Region past the end of its file: refused, device untouched. */
	struct vfe_mem_msg m = { .nregions = 1 };
	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = VFE_MEM_START, .size = VFE_MEM_SIZE, .uva = VFE_MEM_START, .mmap_offset = VFE_MEM_START,
	};
	CHECK(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 40, &f.memfd, 1) > 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);

	/* Moving memory so the rings fall outside: the restart fails, loudly. */
	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = 0x100000, .size = 0x100000, .uva = 0x100000, .mmap_offset = 0x100000,
	};
	CHECK(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 40, &f.memfd, 1) > 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK(f.dev.vdev.active);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* Every refusal a front-end can get while the connection survives: the
 * ack carries the errno, fds are closed, nothing changed. */
static void test_validation_acked(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);

	/* Payload sizes. */
	uint32_t four = 4;
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_VRING_NUM, &four, 4, NULL, 0), EINVAL);
	uint64_t big[2] = { 1, 2 };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_FEATURES, big, 16, NULL, 0), EINVAL);
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_OWNER, big, 8, NULL, 0), EINVAL);

	/* Memory tables. */
	struct vfe_mem_msg m = { .nregions = 9 };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, sizeof(m), NULL, 0), EINVAL);
	m.nregions = 2;
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = 0x1000, .size = 0x1000 };
	m.regions[1] = (struct vhost_user_mem_region){ .gpa = 0x2000, .size = 0x1000 };
	int two[2] = { dup(f.memfd), dup(f.memfd) };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 2), EINVAL);
	m.nregions = 1;
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, NULL, 0), EINVAL);
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 2), EINVAL);
	m.regions[0].size = 0;
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 1), EINVAL);
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = ~0ull - 0xfff, .size = 0x2000 };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 1), EINVAL);
	int efd = eventfd(0, EFD_CLOEXEC);
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = 0x1000, .size = 0x1000 };
	CHECK(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &efd, 1) > 0);   /* not a file */
	close(two[0]);
	close(two[1]);
	close(efd);
	CHECK_EQ(f.srv.mem.nregions, 0);

	/* Ring numbers. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 100), EINVAL);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 0), EINVAL);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 65536), EINVAL);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 32768), 0);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 0x10000), EINVAL);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 2), EINVAL);

	/* Queue indices. */
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_NUM, VFE_QUEUES, 256), EINVAL);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0xffffffffu, 1), EINVAL);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 5 | VFE_NOFD, -1), EINVAL);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0x200, -1), EINVAL);   /* undefined bit */

	/* Addresses: no memory yet, then outside it, then misaligned. */
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0), VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), EFAULT);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK_EQ(vfe_addr(&f, 0, 0xdead00000ull, VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), EFAULT);
	CHECK_EQ(vfe_addr(&f, 0, VFE_MEM_SIZE - 8, VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), EFAULT);
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0) + 8, VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), EINVAL);
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0), VFE_AVAIL_GPA(0), VFE_USED_GPA(0) + 2), EINVAL);
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0), VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), 0);

	/* File descriptors: missing, extra, wrong kind. */
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, -1), EINVAL);
	int e1 = eventfd(0, EFD_CLOEXEC);
	int e2 = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0 | VHOST_USER_VRING_NOFD_MASK, e1),
		 EINVAL);
	int both[2] = { e1, e2 };
	uint64_t q0 = 0;
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_VRING_CALL, &q0, 8, both, 2), EINVAL);
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_OWNER, NULL, 0, &e1, 1), EINVAL);
	/* Polling (VFE_NOFD kick without in-band kicks) is not served. */
	CHECK_EQ(vfe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0 | VHOST_USER_VRING_NOFD_MASK, -1),
		 EOPNOTSUPP);
	/* Protocol features not negotiated, not offered, not a socket. */
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &e1, 1), EPERM);
	CHECK_EQ(vfe_state(&f, VHOST_USER_VRING_KICK, 0, 0), EPERM);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << 40), EINVAL);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ)), 0);
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &e1, 1), EINVAL);
	close(e1);
	close(e2);

	/* Features the device did not offer. */
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, VFE_FEATURES | (1ull << 3)), EINVAL);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_FEATURES, 1ull << 5), EINVAL);   /* no VERSION_1 */

	/* Unknown requests get a failed ack. */
	uint64_t zero = 0;
	CHECK_EQ(vfe_ack(&f, 6 /* SET_LOG_BASE */, &zero, 8, NULL, 0), EOPNOTSUPP);
	CHECK_EQ(vfe_ack(&f, 99, NULL, 0, NULL, 0), EOPNOTSUPP);
	CHECK_EQ(vfe_ack(&f, 0x7fffffff, NULL, 0, NULL, 0), EOPNOTSUPP);

	CHECK(vhost_user_server_connected(&f.srv));
	CHECK(f.srv.counters.rx_messages_invalid >= 30);
	CHECK_EQ(f.srv.counters.rx_messages_unknown, 3);
	CHECK(f.srv.counters.rx_fds_unused >= 8);
	CHECK(!f.dev.vdev.active);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* In-band calls that find the back-end channel full wait for room (one
 * per ring, later ones coalesce) and go out when the channel drains. */
static void test_backend_backpressure(void)
{
	struct vfe f;
	struct vfe_reply r;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_uml_start_inband(&f), 0);
	CHECK(f.dev.vdev.active);
	int sp[2], small = 1;
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp), 0);
	CHECK_EQ(setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1), 0);
	close(sp[1]);
	close(f.backend);
	f.backend = sp[0];

	struct virtio_transport *t = f.dev.vdev.transport;
	for (int i = 0; i < 100000 && !f.srv.counters.tx_calls_coalesced; i++)
		t->ops->signal_used(t, 1);
	CHECK(f.srv.counters.tx_calls_coalesced > 0);
	t->ops->signal_config(t);
	uint64_t sent = f.srv.counters.tx_calls;
	unsigned got = 0;
	while (vfe_recv(f.backend, &r) == 1) {
		CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_VRING_CALL);
		CHECK_EQ(r.p.state.index, 1);
		got++;
	}
	CHECK_EQ(got, sent);
	/* Room again: the pending call and the config change go out. */
	vfe_pump(&f);
	CHECK_EQ(f.srv.counters.tx_calls, sent + 1);
	CHECK_EQ(f.srv.counters.tx_config_changes, 1);
	unsigned calls = 0, configs = 0;
	while (vfe_recv(f.backend, &r) == 1) {
		calls += r.hdr.request == VHOST_USER_BACKEND_VRING_CALL;
		configs += r.hdr.request == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG;
	}
	CHECK_EQ(calls, 1);
	CHECK_EQ(configs, 1);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, 0);

	/* The front-end closing the channel: calls are dropped, counted. */
	close(f.backend);
	f.backend = -1;
	vfe_pump(&f);
	t->ops->signal_used(t, 0);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, 1);
	CHECK(vhost_user_server_connected(&f.srv));
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* GET_CONFIG errors are an empty reply (spec), not a disconnect. */
static void test_get_config_errors(void)
{
	struct vfe f;
	struct vfe_reply r;

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	struct vhost_user_config cfg = { .offset = 0, .size = 4 };
	/* CONFIG not negotiated yet. */
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(CONFIG)), 0);
	/* Outside the 16-byte config space. */
	cfg = (struct vhost_user_config){ .offset = 14, .size = 4 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 0);
	/* Size field not matching the payload. */
	cfg = (struct vhost_user_config){ .offset = 0, .size = 8 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 0);
	/* Whole space: fine. SET_CONFIG writes through the device. */
	cfg = (struct vhost_user_config){ .offset = 0, .size = 16 };
	CHECK_EQ(vfe_call(&f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg, 28, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 28);
	CHECK_EQ(r.p.config.data[15], 0xaf);
	cfg = (struct vhost_user_config){ .offset = 2, .size = 1, .data = { 0x55 } };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), 0);
	CHECK_EQ(f.dev.config[2], 0x55);
	cfg = (struct vhost_user_config){ .offset = 16, .size = 1 };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), EINVAL);
	cfg = (struct vhost_user_config){ .offset = 0, .size = 1, .flags = 7 };
	CHECK_EQ(vfe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), EINVAL);
	CHECK(vhost_user_server_connected(&f.srv));
	vfe_teardown(&f);
}

/* Errors that end the connection; the server then takes the next one. */
static void expect_disconnect(const char *what, uint32_t req, uint32_t flags,
			      const void *payload, uint32_t size, bool setup_pf)
{
	struct vfe f;
	struct vfe_reply r;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	if (setup_pf)
		CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	int rc = vfe_call(&f, req, flags, payload, size, NULL, 0, &r);
	if (rc != -1 && !vfe_closed(&f)) {
		fprintf(stderr, "  no disconnect after %s\n", what);
		check_case_failed = 1;
	}
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.srv.mem.nregions, 0);
	CHECK_EQ(f.srv.counters.disconnects_error, 1);
	close(f.sock);
	f.sock = -1;
	CHECK_EQ(vfe_connect(&f), 0);
	CHECK(vfe_get_u64(&f, VHOST_USER_GET_FEATURES) != UINT64_MAX);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

static void test_validation_disconnects(void)
{
	uint32_t four = 4;
	uint64_t zero = 0;
	uint8_t big[VHOST_USER_PAYLOAD_MAX + 8] = { 0 };
	struct vhost_vring_state st = { .index = 7 };

	expect_disconnect("version 0", VHOST_USER_GET_FEATURES, 0, NULL, 0, false);
	expect_disconnect("version 2", VHOST_USER_GET_FEATURES, 2, NULL, 0, false);
	expect_disconnect("reply bit", VHOST_USER_SET_OWNER, 0x5, NULL, 0, false);
	expect_disconnect("undefined flag", VHOST_USER_SET_OWNER, 0x11, NULL, 0, false);
	expect_disconnect("oversized payload", VHOST_USER_SET_OWNER, VFE_NO_REPLY, big,
			  sizeof(big), false);
	/* No ack asked: a refused request cannot be reported otherwise. */
	expect_disconnect("short payload, no ack", VHOST_USER_SET_VRING_NUM, VFE_NO_REPLY, &four, 4,
			  true);
	expect_disconnect("unknown request, no ack", 6, VFE_NO_REPLY, &zero, 8, true);
	/* A request with its own reply body cannot carry an error. */
	expect_disconnect("GET_VRING_BASE bad index", VHOST_USER_GET_VRING_BASE, VFE_NEED_REPLY,
			  &st, 8, true);
	/* Spec "In-band notifications": without BACKEND_REQ and REPLY_ACK. */
	uint64_t inband = VHOST_USER_PF(INBAND_NOTIFICATIONS);
	expect_disconnect("in-band without its companions", VHOST_USER_SET_PROTOCOL_FEATURES,
			  VFE_NEED_REPLY, &inband, 8, false);
}

/* Bytes and fds arriving in pieces, several fds with one message (too
 * many is a protocol error), and a message split over two writes. */
static void test_framing(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	struct vhost_user_hdr hdr = { .request = VHOST_USER_GET_FEATURES, .flags = 1 };
	CHECK_EQ(write(f.sock, &hdr, 5), 5);
	vfe_pump(&f);
	CHECK_EQ(write(f.sock, (char *)&hdr + 5, 7), 7);
	vfe_pump(&f);
	struct vfe_reply r;
	CHECK_EQ(vfe_recv(f.sock, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_GET_FEATURES);
	CHECK_EQ(r.p.u64, VFE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));

	/* Nine fds with one message: the connection ends, nothing leaks. */
	int fds[9];
	for (int i = 0; i < 9; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(vfe_send(&f, VHOST_USER_SET_OWNER, VFE_NO_REPLY, NULL, 0, fds, 9), 0);
	for (int i = 0; i < 9; i++)
		close(fds[i]);
	CHECK(vfe_closed(&f));
	CHECK(!vhost_user_server_connected(&f.srv));
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A server with no listener serves a socket it is handed. */
static void test_adopt(void)
{
	struct event_loop loop;
	struct vhost_user_server srv;
	struct vfe_dev dev;
	struct vhost_user_opts opts = VHOST_USER_OPTS_DEFAULT;
	int sp[2];
	int base_fds = vfe_count_fds();

	vfe_dev_init(&dev);
	opts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, &opts), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	CHECK_EQ(vhost_user_server_adopt(&srv, sp[1]), 0);
	CHECK(vhost_user_server_connected(&srv));
	int other = dup(sp[0]);
	CHECK_EQ(vhost_user_server_adopt(&srv, other), -EBUSY);

	struct vhost_user_hdr hdr = { .request = VHOST_USER_GET_PROTOCOL_FEATURES, .flags = 1 };
	CHECK_EQ(write(sp[0], &hdr, sizeof(hdr)), sizeof(hdr));
	event_loop_once(&loop, 100);
	struct vfe_reply r;
	CHECK_EQ(vfe_recv(sp[0], &r), 1);
	CHECK_EQ(r.p.u64, VHOST_USER_PROTOCOL_FEATURES_SUPPORTED &
			  ~VHOST_USER_PF(INBAND_NOTIFICATIONS));
	close(sp[0]);
	event_loop_once(&loop, 100);
	CHECK(!vhost_user_server_connected(&srv));

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	vhost_user_server_dump_counters(&srv, out);
	fclose(out);
	CHECK(strstr(text, "vhost_user_connections 1\n") != NULL);
	CHECK(strstr(text, "vhost_user_tx_replies 1\n") != NULL);
	free(text);
	vhost_user_server_destroy(&srv);
	event_loop_destroy(&loop);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

static void test_listen_paths(void)
{
	struct event_loop loop;
	struct vhost_user_server srv, srv2;
	struct vfe_dev dev;
	char dir[] = "/tmp/kvmini-vu-XXXXXX";
	char path[200], longpath[200];
	int base_fds = vfe_count_fds();

	vfe_dev_init(&dev);
	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ(event_loop_init(&loop), 0);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, longpath, NULL), -ENAMETOOLONG);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, "", NULL), -EINVAL);

	/* A regular file is never removed. */
	snprintf(path, sizeof(path), "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, path, NULL), -EEXIST);
	unlink(path);

	/* A stale socket file is replaced. */
	snprintf(path, sizeof(path), "%s/sock", dir);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_EQ(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, path, NULL), 0);
	/* A live server is not. */
	struct vfe_dev dev2;
	vfe_dev_init(&dev2);
	CHECK_EQ(vhost_user_server_init(&srv2, &dev2.vdev, &loop, path, NULL), -EADDRINUSE);
	vhost_user_server_destroy(&srv);
	struct stat st;
	CHECK(stat(path, &st) < 0);   /* removed at destroy */

	/* Device shape checks. */
	dev.vdev.num_queues = 0;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, NULL), -EINVAL);
	dev.vdev.num_queues = 257;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, NULL), -EINVAL);

	event_loop_destroy(&loop);
	rmdir(dir);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* The table and the central validator agree with the spec's numbers. */
static void test_table(void)
{
	CHECK_EQ(VHOST_USER_GET_FEATURES, 1);
	CHECK_EQ(VHOST_USER_SET_BACKEND_REQ_FD, 21);
	CHECK_EQ(VHOST_USER_GET_CONFIG, 24);
	CHECK_EQ(VHOST_USER_VRING_KICK, 35);
	CHECK(vhost_user_req_rule(6) == NULL);
	CHECK(vhost_user_req_rule(1000) == NULL);
	CHECK(strcmp(vhost_user_req_name(VHOST_USER_SET_MEM_TABLE), "SET_MEM_TABLE") == 0);
	CHECK(strcmp(vhost_user_req_name(40), "unknown") == 0);
	for (uint32_t id = 0; id < VHOST_USER_REQUEST_LIMIT; id++) {
		const struct vhost_user_req_rule *rule = vhost_user_req_rule(id);
		if (rule)
			CHECK(rule->min_size <= rule->max_size &&
			      rule->max_size <= VHOST_USER_PAYLOAD_MAX);
	}
	struct vhost_user_hdr h = { .request = 1, .flags = 1, .size = VHOST_USER_PAYLOAD_MAX };
	CHECK_EQ(vhost_user_check_header(&h), 0);
	h.size++;
	CHECK_EQ(vhost_user_check_header(&h), -EPROTO);
	h.size = 0;
	h.flags = 1 | VHOST_USER_FLAG_NEED_REPLY;
	CHECK_EQ(vhost_user_check_header(&h), 0);
	h.flags = 3;
	CHECK_EQ(vhost_user_check_header(&h), -EPROTO);
}

int main(void)
{
	log_threshold = LOG_ERROR;   /* refusals are expected here */
	RUN_TEST(test_table);
	RUN_TEST(test_uml_boot_inband);
	RUN_TEST(test_eventfd_kick_call);
	RUN_TEST(test_queue_num_option);
	RUN_TEST(test_queue_count_per_features);
	RUN_TEST(test_queue_num_mq);
	RUN_TEST(test_socketpair_call);
	RUN_TEST(test_vring_base_stop_restart);
	RUN_TEST(test_vring_base_after_quiesce);
	RUN_TEST(test_mem_table_replace);
	RUN_TEST(test_validation_acked);
	RUN_TEST(test_backend_backpressure);
	RUN_TEST(test_get_config_errors);
	RUN_TEST(test_validation_disconnects);
	RUN_TEST(test_framing);
	RUN_TEST(test_adopt);
	RUN_TEST(test_listen_paths);
	return CHECK_DONE();
}
