/*
 * libFuzzer target: a hostile driver's control queue (virtio 1.x 5.1.6.5)
 * against the virtio-net device (loopback backend, every control feature
 * and offload acked or, by the input's first byte, only some).
 *
 * The input is a list of commands: a class, a command, a data length and
 * the data, each sent as one chain (header and data readable in one or
 * two pieces, then the answer byte writable, or sometimes no writable
 * part at all). Checked besides ASan/UBSan:
 *  - every chain is completed once, with 1 byte (the answer: OK or ERR) or
 *    with 0 when it had nowhere to answer;
 *  - every chain moves exactly one counter, tx_ctrl_ok or tx_ctrl_refused,
 *    and OK is answered only for a command the device knows;
 *  - what an OK applied holds: the RX offloads stay within those acked,
 *    the config space's MAC stays unicast, the pairs in use in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "net/net_device.h"
#include "net/offload.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define FAIL(...) FUZZ_FAIL("fuzz_net_ctrl", __VA_ARGS__)
#define MAX_CMDS 64
#define F(bit) (1ull << (bit))

static struct vd_mem mem;
static struct event_loop loop;
static struct net_device net;
static struct vd_queue cq, rxq, txq;
static uint64_t buf_gpa;

static const uint64_t base_features = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) |
				      F(VIRTIO_NET_F_CTRL_VQ);
static const uint64_t optional[] = {
	F(VIRTIO_NET_F_CTRL_RX), F(VIRTIO_NET_F_CTRL_MAC_ADDR), F(VIRTIO_NET_F_GUEST_ANNOUNCE),
	F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_GUEST_CSUM),
	F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_CSUM),
	F(VIRTIO_NET_F_GUEST_UFO) | F(VIRTIO_NET_F_GUEST_CSUM),
};

static int init_world(void)
{
	struct errbuf eb = { 0 };
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500 };

	log_threshold = LOG_ERROR;
	if (vd_mem_init(&mem, 0x100000, 1 << 20, 0) || event_loop_init(&loop))
		return -1;
	struct net_backend *be = net_loopback_create(&loop, NULL, &eb);
	if (!be || net_device_init(&net, &opts, be, &loop))
		return -1;
	return 0;
}

static void bring_up(uint8_t which)
{
	struct vd_queue_opts qo = { .size = 16 };
	uint64_t features = base_features;

	for (unsigned i = 0; i < ARRAY_SIZE(optional); i++)
		if (which & (1u << i))
			features |= optional[i];
	vd_alloc_reset(&mem);
	if (vd_queue_init(&cq, &mem, &qo) || vd_queue_init(&rxq, &mem, &qo) ||
	    vd_queue_init(&txq, &mem, &qo))
		FAIL("queues");
	buf_gpa = vd_alloc(&mem, 8192, 64);
	net.vdev.mem = &mem.gm;
	if (virtio_device_set_features(&net.vdev, features))
		FAIL("features 0x%llx refused", (unsigned long long)features);
	vd_queue_to_vq(&rxq, &net.vqs[NET_RX_QUEUE], false);
	vd_queue_to_vq(&txq, &net.vqs[NET_TX_QUEUE], false);
	vd_queue_to_vq(&cq, &net.vqs[net_ctrl_queue(&net)], false);
	if (virtio_device_activate(&net.vdev))
		FAIL("activate");
}

static void tear_down(void)
{
	virtio_device_reset(&net.vdev);
	vd_queue_destroy(&cq);
	vd_queue_destroy(&rxq);
	vd_queue_destroy(&txq);
}

/* One command as one chain; returns the used length, *ack the answer. */
static uint32_t send_cmd(struct fuzz_input *in, uint8_t *ack)
{
	uint8_t shape = (uint8_t)fuzz_take(in, 1);
	uint32_t len = (uint32_t)fuzz_take(in, 2) % (NET_CTRL_DATA_MAX + 64) + 2;
	uint64_t out = buf_gpa, answer = buf_gpa + 8192 - 16;
	uint8_t cmd[NET_CTRL_DATA_MAX + 66];
	uint32_t id, used = 0;

	if (len > 8192 - 16)
		len = 8192 - 16;
	cmd[0] = (uint8_t)(shape & 0x80 ? fuzz_take(in, 1) : fuzz_take(in, 1) % 6);
	cmd[1] = (uint8_t)(shape & 0x40 ? fuzz_take(in, 1) : fuzz_take(in, 1) % 2);
	fuzz_take_bytes(in, cmd + 2, MIN(len - 2, 64u));     /* the rest stays zero */
	memset(cmd + 2 + MIN(len - 2, 64u), 0, len - 2 - MIN(len - 2, 64u));
	vd_write(&mem, out, cmd, len);
	vd_fill(&mem, answer, 0xee, 1);
	struct vd_buf bufs[3] = { { out, len, false }, { answer, 1, true } };
	unsigned n = 2;
	if (shape & 1) {              /* header and data in two pieces */
		bufs[2] = bufs[1];
		bufs[0].len = 2;
		bufs[1] = (struct vd_buf){ out + 2, len - 2, false };
		n = 3;
	}
	if (shape & 2)
		n--;                      /* nowhere to answer */
	vd_add_chain(&cq, bufs, n, false);
	vd_publish(&cq);
	net.vdev.ops->queue_notify(&net.vdev, net_ctrl_queue(&net));
	if (vd_get_used(&cq, &id, &used) != 1)
		FAIL("command not completed");
	if (used > 1)
		FAIL("used length %u", used);
	vd_read(&mem, answer, ack, 1);
	if (used == 1 && *ack != VIRTIO_NET_OK && *ack != VIRTIO_NET_ERR)
		FAIL("answer %u", *ack);
	if (used == 1 && *ack == VIRTIO_NET_OK && cmd[0] > VIRTIO_NET_CTRL_GUEST_OFFLOADS)
		FAIL("OK for class %u", cmd[0]);
	return used;
}

static void check_state(void)
{
	struct virtio_net_config cfg;

	if (net.ctrl.guest_offloads & ~(net.vdev.features & NET_GUEST_OFFLOADS))
		FAIL("RX offloads 0x%llx beyond those acked",
		     (unsigned long long)net.ctrl.guest_offloads);
	net.vdev.ops->config_read(&net.vdev, &cfg);
	if (cfg.mac[0] & 1)
		FAIL("a multicast MAC in config space");
	if (net.ctrl.vq_pairs < 1 || net.ctrl.vq_pairs > net.npairs)
		FAIL("%u pairs in use", net.ctrl.vq_pairs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };

	if (!ready) {
		if (init_world())
			FAIL("cannot set up the device");
		ready = true;
	}
	bring_up((uint8_t)fuzz_take(&in, 1));
	for (unsigned i = 0; in.n && i < MAX_CMDS; i++) {
		uint64_t ok = net_device_totals(&net).tx_ctrl_ok, bad = net_device_totals(&net).tx_ctrl_refused;
		uint8_t ack = 0;
		uint32_t used = send_cmd(&in, &ack);
		uint64_t d_ok = net_device_totals(&net).tx_ctrl_ok - ok, d_bad = net_device_totals(&net).tx_ctrl_refused - bad;
		if (d_ok + d_bad != 1 || (used == 1 && (ack == VIRTIO_NET_OK) != (d_ok == 1)))
			FAIL("counters moved ok %llu refused %llu for one command",
			     (unsigned long long)d_ok, (unsigned long long)d_bad);
		if (fuzz_take(&in, 1) == 0xa5)
			net_device_announce(&net);
		check_state();
	}
	tear_down();
	return 0;
}
