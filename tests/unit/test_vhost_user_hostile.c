/*
 * A hostile vhost-user front-end (issue 14, "How it is proven"): oversized,
 * truncated and out-of-order messages, memory tables with overlapping, huge
 * or too many regions. Each is refused with its counter, the session's
 * memory stays what it was (or the connection closes cleanly, fds and all),
 * and a second, well-behaved front-end is served afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "transport/vhost_user.h"
#include "vu_frontend.h"

/* mem_region - a region of the test's memfd at file offset @off. */
static struct vhost_user_mem_region mem_region(uint64_t gpa, uint64_t size, uint64_t off)
{
	return (struct vhost_user_mem_region){
		.gpa = gpa, .size = size, .uva = 0x40000000ull + gpa, .mmap_offset = off,
	};
}

/* send_table - SET_MEM_TABLE with @n (up to 8) regions, each backed by
 * the memfd; the ack's status. */
static long long send_table(struct vfe *f, const struct vhost_user_mem_region *regs, unsigned n)
{
	struct vfe_mem_msg m = { .nregions = n };
	int fds[8] = { -1, -1, -1, -1, -1, -1, -1, -1 };
	long long r;

	if (n > 8)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		m.regions[i] = regs[i];
		fds[i] = dup(f->memfd);
	}
	r = vfe_ack(f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32 * n, fds, n);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
	return r;
}

/* second_frontend_served - after the hostile one is gone, a new
 * connection negotiates and maps its memory. */
static void second_frontend_served(struct vfe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
	vfe_pump(f);
	CHECK_EQ(vfe_connect(f), 0);
	CHECK(vfe_get_u64(f, VHOST_USER_GET_FEATURES) != UINT64_MAX);
	CHECK_EQ(vfe_set_mem_uml(f), 0);
	CHECK_EQ(f->srv.mem.nregions, 1);
}

/* Memory tables: every bad one refused and counted, the good table kept. */
static void test_hostile_mem_tables(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();
	struct vhost_user_mem_region r[2];

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK_EQ(f.srv.mem.nregions, 1);

	/* Overlapping guest addresses. */
	r[0] = mem_region(0x0, 0x100000, 0);
	r[1] = mem_region(0x80000, 0x100000, 0x80000);
	CHECK(send_table(&f, r, 2) > 0);
	/* Overlapping host addresses, distinct guest ones. */
	r[1] = mem_region(0x200000, 0x100000, 0x100000);
	r[1].uva = r[0].uva + 0x1000;
	CHECK(send_table(&f, r, 2) > 0);
	/* Huge: far beyond the file, and wrapping the address space. */
	r[0] = mem_region(0x0, 1ull << 62, 0);
	CHECK(send_table(&f, r, 1) > 0);
	r[0] = mem_region(~0ull - 0xfff, 0x2000, 0);
	CHECK(send_table(&f, r, 1) > 0);
	r[0] = mem_region(0x0, 0x1000, ~0ull - 0xfff);
	CHECK(send_table(&f, r, 1) > 0);
	/* More regions than VHOST_USER_MAX_REGIONS (8). */
	struct vfe_mem_msg many = { .nregions = 9 };
	CHECK(vfe_ack(&f, VHOST_USER_SET_MEM_TABLE, &many, sizeof(many), NULL, 0) > 0);

	CHECK_EQ(f.srv.counters.rx_mem_tables_refused, 6);
	CHECK(vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.srv.mem.nregions, 1);   /* the good table still in place */
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK_EQ(f.srv.counters.rx_mem_tables_refused, 6);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A header announcing more than the largest valid payload: the connection
 * ends at the header (the body is never read), counted, and the next
 * front-end is served. */
static void test_hostile_oversized(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();
	struct vhost_user_hdr hdr = {
		.request = VHOST_USER_SET_MEM_TABLE, .flags = 1, .size = 0xffffffffu,
	};

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(write(f.sock, &hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	CHECK(vfe_closed(&f));
	CHECK_EQ(f.srv.counters.rx_messages_oversized, 1);
	CHECK_EQ(f.srv.counters.disconnects_error, 1);
	second_frontend_served(&f);
	CHECK_EQ(f.srv.counters.rx_messages_oversized, 1);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* A memory table cut short, its fd already sent, then the front-end goes
 * away: nothing mapped, the fd closed, the next front-end served. */
static void test_hostile_truncated(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();
	struct {
		struct vhost_user_hdr hdr;
		struct vfe_mem_msg m;
	} msg = { .hdr = { .request = VHOST_USER_SET_MEM_TABLE, .flags = 1, .size = 8 + 32 } };
	int fd;

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	msg.m.nregions = 1;
	msg.m.regions[0] = mem_region(0x0, 0x100000, 0);
	fd = dup(f.memfd);
	CHECK_EQ(vfe_sendmsg_fds(f.sock, &msg, sizeof(msg.hdr) + 20, &fd, 1), 0);
	close(fd);
	vfe_pump(&f);
	CHECK(vhost_user_server_connected(&f.srv));   /* still waiting for the rest */
	CHECK_EQ(f.srv.mem.nregions, 0);
	second_frontend_served(&f);
	CHECK_EQ(f.srv.counters.rx_messages, 2);   /* GET_FEATURES, SET_MEM_TABLE */
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

/* Requests out of order: a ring address before any memory, a kick fd for
 * a ring with no size, memory then replaced under a configured ring. The
 * session stays consistent and the device never starts on a bad ring. */
static void test_hostile_out_of_order(void)
{
	struct vfe f;
	int base_fds = vfe_count_fds();

	CHECK_EQ(vfe_setup(&f, NULL), 0);
	CHECK_EQ(vfe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(vfe_addr(&f, 0, VFE_DESC_GPA(0), VFE_AVAIL_GPA(0), VFE_USED_GPA(0)), EFAULT);
	CHECK_EQ(vfe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(vfe_set_mem_uml(&f), 0);
	CHECK(!f.dev.vdev.active);
	CHECK(vhost_user_server_connected(&f.srv));
	CHECK(f.srv.counters.rx_messages_invalid >= 1);
	second_frontend_served(&f);
	vfe_teardown(&f);
	CHECK_EQ(vfe_count_fds(), base_fds);
}

int main(void)
{
	RUN_TEST(test_hostile_mem_tables);
	RUN_TEST(test_hostile_oversized);
	RUN_TEST(test_hostile_truncated);
	RUN_TEST(test_hostile_out_of_order);
	return CHECK_DONE();
}
