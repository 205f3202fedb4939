/*
 * The kvmini test guest's tests, chosen by "test=NAME" on the kernel
 * command line. Each prints PASS:/FAIL: lines and ends the VM with status 0
 * (an i8042 reboot) when every check passed, otherwise through the debug
 * exit port with 1 (status 3), except where the test is about another way
 * of ending (debug exit, fault).
 */
#include <linux/fuse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_vsock.h>

#include "acpi.h"
#include "guest.h"
#include "virtio.h"

#define VIRTIO_FS_TAG_BYTES 36u
#define NET_HDR 12u
#define FRAME_LEN 60u
#define NFRAMES 3u
#define RX_BUF 1526u

void guest_set_cmdline(const char *c);
void guest_main(const uint8_t *zero_page);

static struct gq rxq, txq;
static uint8_t tx_bufs[NFRAMES][NET_HDR + FRAME_LEN];
static uint8_t rx_bufs[GQ_SIZE][RX_BUF];

static void finish(void)
{
	printf("kvm-guest %s: %s (%u failures)\n", test_name, failures ? "FAILED" : "done", failures);
	if (!failures)
		guest_reboot();
	guest_exit(1);
}

/* --- hello, exit, faults ------------------------------------------------------ */

static void test_hello(void)
{
	printf("hello from the kvmini test guest\n");
	guest_reboot();
}

/* The CMOS clock (ports 0x70/0x71), as Linux reads it at boot: its BCD
 * date and time; the host checks them against its own (UTC). */
static uint8_t cmos_read(uint8_t index)
{
	outb(0x70, index);
	return inb(0x71);
}

static unsigned from_bcd(uint8_t v)
{
	return (v >> 4) * 10u + (v & 15u);
}

static void test_rtc(void)
{
	printf("rtc: %u%02u-%02u-%02u %02u:%02u\n", from_bcd(cmos_read(0x32)),
	       from_bcd(cmos_read(0x09)), from_bcd(cmos_read(0x08)), from_bcd(cmos_read(0x07)),
	       from_bcd(cmos_read(0x04)), from_bcd(cmos_read(0x02)));
	guest_reboot();
}

static bool never(void *arg)
{
	return false;
}

/* isa-debug-exit semantics: a write of 42 ends the VM with (42 << 1) | 1. */
static void test_exit_code(void)
{
	printf("kvm-guest exit: writing 42 to the debug exit port\n");
	guest_exit(42);
}

/* The same with a 16-bit write of 0x1234: status (0x2469) & 0xff = 0x69. */
static void test_exit_code_word(void)
{
	printf("kvm-guest exit16: writing 0x1234 to the debug exit port\n");
	__asm__ volatile("outw %0, %1" : : "a"((uint16_t)0x1234), "Nd"((uint16_t)PORT_DEBUG_EXIT));
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* The boot marker (port 0x3f0): another value first, which must not count,
 * then console output (with Linux's "Run /init" line, the console fallback,
 * after a stray 'R'), a pause, and 123, which marks "userspace". */
static void test_boot_marker(void)
{
	outb(PORT_BOOT_MARKER, 7);
	printf("kvm-guest marker: console output first, with Linux's R\n");
	printf("kvm-guest marker: Run /init as init process (as Linux prints it)\n");
	wait_for(never, NULL, 50);
	outb(PORT_BOOT_MARKER, 123);
	printf("kvm-guest marker: marker written\n");
	guest_reboot();
}

/* No usable IDT and an exception: a triple fault, which KVM reports as a
 * shutdown. kvmini must end the VM with its own status, not crash. */
static void test_triple_fault(void)
{
	struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr = { 0, 0 };

	printf("kvm-guest fault: triple fault next\n");
	cli();
	__asm__ volatile("lidt %0; ud2" : : "m"(idtr));
}

/* POPCNT is one of the instructions KVM's emulator lacks; when guest kernel
 * code is emulated (nested PVM) kvmini must report where and what. On a
 * host that runs it natively the guest says so. */
static void test_emulation(void)
{
	uint64_t in = 0xf0f0, out;

	printf("kvm-guest emulation: popcnt next\n");
	__asm__ volatile("popcnt %1, %0" : "=r"(out) : "r"(in));
	printf("kvm-guest emulation: popcnt ran natively (%lu)\n", out);
	guest_reboot();
}

/* --- UART echo ------------------------------------------------------------------ */

static volatile unsigned uart_irqs;
static volatile uint8_t uart_iir_seen;
static char line[128];
static volatile unsigned line_len;
static volatile bool line_done;

static void on_uart(unsigned vector)
{
	uint8_t iir;

	uart_irqs++;
	/* Drain every pending cause, as the 8250 driver does. */
	while (!((iir = inb(PORT_COM1 + 2)) & 1)) {
		uart_iir_seen |= (uint8_t)(1u << ((iir >> 1) & 7));
		while (inb(PORT_COM1 + 5) & 1) {
			char c = (char)inb(PORT_COM1);
			if (c == '\n' || c == '\r') {
				line_done = true;
			} else if (line_len + 1 < sizeof(line) && !line_done) {
				line[line_len++] = c;
			}
		}
	}
}

static bool have_line(void *arg)
{
	return line_done;
}

/* The 16550 probes Linux's 8250 driver makes: scratch, IER, DLAB, loopback,
 * THRE. Values are read first and checked after: printing would itself
 * write THR (and, in loopback mode, come back as input). */
static void uart_register_checks(void)
{
	uint8_t v[10];

	outb(PORT_COM1 + 7, 0xa5);
	v[0] = inb(PORT_COM1 + 7);
	v[2] = inb(PORT_COM1 + 2);
	outb(PORT_COM1 + 3, 0x83);
	outb(PORT_COM1 + 0, 0x0c);
	v[3] = inb(PORT_COM1 + 0);
	outb(PORT_COM1 + 0, 0x01);
	outb(PORT_COM1 + 3, 0x03);
	outb(PORT_COM1 + 4, 0x1a);           /* loop, OUT2, RTS */
	v[4] = inb(PORT_COM1 + 6);
	outb(PORT_COM1, 'Z');
	v[5] = inb(PORT_COM1 + 5);
	v[6] = inb(PORT_COM1);
	outb(PORT_COM1 + 4, 0x0b);
	/* THRE interrupt on enabling it while THR is empty (the 8250 THRE test). */
	outb(PORT_COM1 + 1, 0x02);
	v[7] = inb(PORT_COM1 + 2);
	v[8] = inb(PORT_COM1 + 2);
	/* Last: enabling RDI opens the console input (kvmini holds it until
	 * then), which must not mix with the loopback byte above. */
	outb(PORT_COM1 + 1, 0x0f);
	v[1] = inb(PORT_COM1 + 1);
	outb(PORT_COM1 + 1, 0);
	CHECK_EQ(v[0], 0xa5, "scratch register holds a value");
	CHECK_EQ(v[1], 0x0f, "IER reads back");
	CHECK_EQ(v[2] & 0xc0, 0xc0, "IIR reports the FIFOs enabled");
	CHECK_EQ(v[3], 0x0c, "DLAB gives the divisor latch");
	CHECK_EQ(v[4] & 0xf0, 0x90, "loopback: RTS->CTS, OUT2->DCD");
	check(v[5] & 1, "loopback: a byte sent is received");
	CHECK_EQ(v[6], 'Z', "loopback: the same byte");
	CHECK_EQ(v[7] & 0x0f, 0x02, "IIR: THR empty once enabled");
	CHECK_EQ(v[8] & 0x0f, 0x01, "IIR: reading it acknowledged it");
}

static void test_uart_echo(void)
{
	uart_register_checks();
	irq_set_handler(VEC_UART, on_uart);
	ioapic_route(4, VEC_UART);
	outb(PORT_COM1 + 2, 0xc1);           /* FIFO on, trigger at 14, not cleared */
	outb(PORT_COM1 + 1, 0x01);           /* received-data interrupts */
	printf("kvm-guest uart: ready for a line\n");
	bool got = wait_for(have_line, NULL, 10000);
	outb(PORT_COM1 + 1, 0);
	check(got, "a line arrived through receive interrupts");
	check(uart_irqs > 0, "UART interrupts through the IOAPIC");
	check(uart_iir_seen & ((1u << 2) | (1u << 6)), "IIR said data or timeout");
	line[line_len] = 0;
	printf("echo: %s\n", line);
	finish();
}

/* Bulk input that arrives long before the guest listens and is larger than
 * kvmini's host-side input buffer: every byte must arrive, in order. The
 * guest waits bulk_wait_ms, then takes bulk_len bytes through receive
 * interrupts and prints their count and an order-sensitive hash. */
static volatile uint32_t bulk_count, bulk_hash;
static volatile bool bulk_overrun;

static void on_uart_bulk(unsigned vector)
{
	uint8_t lsr;

	while (!(inb(PORT_COM1 + 2) & 1)) {
		while ((lsr = inb(PORT_COM1 + 5)) & 1) {
			bulk_hash = bulk_hash * 31u + inb(PORT_COM1);
			bulk_count++;
		}
		if (lsr & 0x02)
			bulk_overrun = true;
	}
}

static bool bulk_done(void *arg)
{
	return bulk_count >= *(const uint32_t *)arg;
}

static void test_uart_bulk(void)
{
	char val[16];
	uint32_t want = cmdline_get("bulk_len", val, sizeof(val)) ? (uint32_t)parse_dec(val, NULL) : 0;
	unsigned wait_ms = cmdline_get("bulk_wait_ms", val, sizeof(val)) ? (unsigned)parse_dec(val, NULL) : 300;

	wait_for(never, NULL, wait_ms);
	irq_set_handler(VEC_UART, on_uart_bulk);
	ioapic_route(4, VEC_UART);
	outb(PORT_COM1 + 2, 0x81);           /* FIFO on, trigger at 8 */
	outb(PORT_COM1 + 1, 0x05);           /* received data, line status */
	bool got = wait_for(bulk_done, &want, 60000);
	outb(PORT_COM1 + 1, 0);
	check(got, "every byte arrived");
	check(!bulk_overrun, "no overrun reported");
	printf("uart-bulk: %u bytes, hash %u\n", bulk_count, bulk_hash);
	finish();
}

/* --- virtio-mmio register rules ------------------------------------------------- */

static uint32_t status(struct gdev *d)
{
	return gdev_read(d, VIRTIO_MMIO_STATUS);
}

static void set_status(struct gdev *d, uint32_t v)
{
	gdev_write(d, VIRTIO_MMIO_STATUS, v);
}

#define ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define DRV VIRTIO_CONFIG_S_DRIVER
#define FOK VIRTIO_CONFIG_S_FEATURES_OK
#define DOK VIRTIO_CONFIG_S_DRIVER_OK

static void check_identity(struct gdev *d)
{
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_VENDOR_ID), 0x494d564b, "vendor id");
	uint64_t f = gdev_features(d);
	check(f & (1ull << VIRTIO_F_VERSION_1), "device offers VERSION_1");
	check(f & (1ull << VIRTIO_NET_F_CSUM), "device offers CSUM (offloads on by default)");
	check(!(f & (1ull << VIRTIO_NET_F_CTRL_VLAN)), "device does not offer CTRL_VLAN");
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, 7);
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "QueueNumMax 0 for a missing queue");
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	check(gdev_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX) >= GQ_SIZE, "QueueNumMax of queue 0");
}

static void check_order_rules(struct gdev *d)
{
	set_status(d, 0);
	CHECK_EQ(status(d), 0, "reset reads 0");
	set_status(d, DRV);
	CHECK_EQ(status(d), 0, "DRIVER without ACKNOWLEDGE refused");
	set_status(d, ACK);
	set_status(d, ACK | FOK);
	CHECK_EQ(status(d), ACK, "FEATURES_OK before DRIVER refused");
	set_status(d, ACK | DRV);
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	gdev_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_QUEUE_READY), 0, "queue registers locked before FEATURES_OK");
	set_status(d, ACK | DRV | DOK);
	CHECK_EQ(status(d), ACK | DRV, "DRIVER_OK before FEATURES_OK refused");
}

static void check_feature_rules(struct gdev *d)
{
	set_status(d, 0);
	uint32_t st = gdev_negotiate(d, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_CTRL_VLAN));
	check(!(st & FOK), "FEATURES_OK refused for a feature not offered");
	set_status(d, 0);
	st = gdev_negotiate(d, 1ull << VIRTIO_NET_F_MAC);
	check(!(st & FOK), "FEATURES_OK refused without VERSION_1");
	set_status(d, 0);
	st = gdev_negotiate(d, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC));
	CHECK_EQ(st, ACK | DRV | FOK, "FEATURES_OK kept for an offered subset");
}

static void check_config_space(struct gdev *d)
{
	uint8_t mac[6];

	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(d->base + VIRTIO_MMIO_CONFIG + i);
	check(!(mac[0] & 1), "config space: a unicast MAC (net-config checks which)");
	CHECK_EQ(mmio_read8(d->base + VIRTIO_MMIO_CONFIG + 6) & VIRTIO_NET_S_LINK_UP,
		 VIRTIO_NET_S_LINK_UP, "config space: link up");
	CHECK_EQ(mmio_read8(d->base + VIRTIO_MMIO_CONFIG + 0x80), 0, "config read past the end is 0");
}

static void check_queue_window(struct gdev *d)
{
	gdev_queue_setup(d, 0, &rxq);
	gdev_queue_setup(d, 1, &txq);
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_QUEUE_READY), 1, "queue registers open after FEATURES_OK");
	set_status(d, ACK | DRV | FOK | DOK);
	CHECK_EQ(status(d), ACK | DRV | FOK | DOK, "DRIVER_OK accepted");
	gdev_write(d, VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_QUEUE_READY), 1, "queue registers locked after DRIVER_OK");
	set_status(d, ACK);
	CHECK_EQ(status(d), ACK | DRV | FOK | DOK, "clearing bits without reset refused");
	set_status(d, 0);
	CHECK_EQ(status(d), 0, "reset after DRIVER_OK");
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(gdev_read(d, VIRTIO_MMIO_QUEUE_READY), 0, "reset forgets the queues");
}

static void test_features(void)
{
	struct gdev d = { 0 };

	check(gdev_probe(&d, 0, VIRTIO_ID_NET), "virtio-net found at the command line's address");
	if (failures)
		finish();
	check_identity(&d);
	check_order_rules(&d);
	check_feature_rules(&d);
	check_config_space(&d);
	check_queue_window(&d);
	/* A device that does not accept what it offered cannot activate:
	 * DRIVER_OK with no queue ready reports NEEDS_RESET. */
	gdev_negotiate(&d, 1ull << VIRTIO_F_VERSION_1);
	set_status(&d, ACK | DRV | FOK | DOK);
	check(status(&d) & VIRTIO_CONFIG_S_NEEDS_RESET, "DRIVER_OK with unusable queues: NEEDS_RESET");
	set_status(&d, 0);
	CHECK_EQ(status(&d), 0, "reset clears NEEDS_RESET");
	finish();
}

/* --- net-config: each virtio-net device's MAC and MTU --------------------------- */

/* "mac=AA:BB:CC:DD:EE:FF" from the command line into @mac; false without it. */
static bool cmdline_mac(uint8_t mac[6])
{
	char val[24];
	const char *p = val;

	if (!cmdline_get("mac", val, sizeof(val)))
		return false;
	for (unsigned i = 0; i < 6; i++) {
		mac[i] = (uint8_t)parse_hex(p, &p);
		if (*p == ':')
			p++;
	}
	return true;
}

/* Device @index's MAC into @mac, and its MTU when it offers VIRTIO_NET_F_MTU
 * (the field exists only then, virtio 1.2 5.1.4), else 0; both printed. */
static uint16_t read_net_config(struct gdev *d, unsigned index, uint8_t mac[6])
{
	uint64_t cfg = d->base + VIRTIO_MMIO_CONFIG;
	uint16_t mtu = 0;

	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(cfg + offsetof(struct virtio_net_config, mac) + i);
	if (gdev_features(d) & (1ull << VIRTIO_NET_F_MTU))
		mtu = (uint16_t)(mmio_read8(cfg + offsetof(struct virtio_net_config, mtu)) |
				 mmio_read8(cfg + offsetof(struct virtio_net_config, mtu) + 1) << 8);
	printf("net-config: device %u: MAC %02x:%02x:%02x:%02x:%02x:%02x, MTU %u\n", index,
	       mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mtu);
	return mtu;
}

/* Every device's MAC is unicast and its own; device 0 has the mac= and
 * mtu= of the command line (kvmini run's --mac, --mtu), and without mac=
 * every MAC is kvmini's default: locally administered. */
static void test_net_config(void)
{
	uint8_t mac[8][6], want[6];
	uint16_t mtu[8];
	struct gdev d = { 0 };
	char val[16];
	unsigned n = 0;

	while (n < 8 && gdev_probe(&d, n, VIRTIO_ID_NET)) {
		mtu[n] = read_net_config(&d, n, mac[n]);
		n++;
	}
	check(n > 0, "a virtio-net device found");
	bool given = cmdline_mac(want);
	for (unsigned i = 0; i < n; i++) {
		check(!(mac[i][0] & 1), "MAC unicast");
		if (!given)
			CHECK_EQ(mac[i][0] & 2, 2, "default MAC locally administered");
		for (unsigned j = 0; j < i; j++)
			check(memcmp(mac[i], mac[j], 6), "two devices, two MACs");
	}
	if (n && given)
		check(!memcmp(mac[0], want, 6), "device 0: the MAC of mac=");
	if (n && cmdline_get("mtu", val, sizeof(val)))
		CHECK_EQ(mtu[0], parse_dec(val, NULL), "device 0: the MTU of mtu=, with VIRTIO_NET_F_MTU");
	finish();
}

/* --- net frames through the loopback backend ------------------------------------ */

static void post_rx_buffers(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = (uint64_t)rx_bufs[i];
		uint32_t len = RX_BUF;
		bool w = true;
		gq_add(&rxq, &addr, &len, &w, 1);
	}
}

static void send_frames(struct gdev *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t *b = tx_bufs[i];
		memset(b, 0, NET_HDR);
		memset(b + NET_HDR, 0xff, 6);                 /* broadcast */
		for (unsigned j = 6; j < FRAME_LEN; j++)
			b[NET_HDR + j] = (uint8_t)(i * 31 + j);
		/* Header and frame in two descriptors, as Linux may send them. */
		uint64_t addr[2] = { (uint64_t)b, (uint64_t)b + NET_HDR };
		uint32_t len[2] = { NET_HDR, FRAME_LEN };
		bool w[2] = { false, false };
		gq_add(&txq, addr, len, w, 2);
	}
	gdev_kick(d, 1);
}

static bool rx_done(void *arg)
{
	return gq_used_idx(&rxq) >= *(unsigned *)arg;
}

static bool rx_done_q(void *arg)
{
	return gq_used_idx(&txq) >= *(unsigned *)arg;
}

/* Every frame came back whole, with a header saying one buffer. */
static void check_received(unsigned n)
{
	unsigned good = 0;
	uint32_t id, len;

	while (gq_get_used(&rxq, &id, &len)) {
		const uint8_t *b = rx_bufs[id % GQ_SIZE];
		const struct virtio_net_hdr_v1 *h = (const void *)b;
		if (len == NET_HDR + FRAME_LEN && h->num_buffers == 1 &&
		    !memcmp(b + NET_HDR, tx_bufs[good % NFRAMES] + NET_HDR, FRAME_LEN))
			good++;
	}
	CHECK_EQ(good, n, "frames came back intact");
}

static bool vring_irq(void *arg)
{
	return ((struct gdev *)arg)->isr_seen & VIRTIO_MMIO_INT_VRING;
}

static void test_net(void)
{
	struct gdev d = { 0 };

	check(gdev_probe(&d, 0, VIRTIO_ID_NET), "virtio-net found at the command line's address");
	if (failures)
		finish();
	gdev_irq_on(&d);
	check(gdev_net_up(&d, &rxq, &txq), "driver up (VERSION_1, two queues, DRIVER_OK)");
	post_rx_buffers(GQ_SIZE);
	gdev_kick(&d, 0);
	send_frames(&d, NFRAMES);
	unsigned want = NFRAMES;
	check(wait_for(rx_done, &want, 5000), "loopback frames arrived on RX");
	/* The used index can be seen before the interrupt is taken. */
	check(wait_for(vring_irq, &d, 1000), "interrupts through irqfd and the IOAPIC");
	check(d.isr_seen & VIRTIO_MMIO_INT_VRING, "InterruptStatus said used buffers");
	CHECK_EQ(gq_used_idx(&txq), NFRAMES, "TX chains completed");
	check_received(NFRAMES);
	/* between_ms=N: wait N ms with RX buffers posted before the second
	 * round (the host pauses and resumes the VM meanwhile). */
	char between[16];
	if (cmdline_get("between_ms", between, sizeof(between))) {
		printf("kvm-guest net: between rounds\n");
		wait_for(never, NULL, (unsigned)parse_dec(between, NULL));
	}
	/* A second round: buffers and kicks keep working after the first. */
	send_frames(&d, NFRAMES);
	want = 2 * NFRAMES;
	check(wait_for(rx_done, &want, 5000), "a second round arrived");
	check_received(NFRAMES);
	printf("kvm-guest net: %u interrupts\n", d.interrupts);
	/* hold_ms=N: stay up N ms more, so the host can query the device
	 * (the control API tests) before the guest reboots. */
	char val[16];
	if (cmdline_get("hold_ms", val, sizeof(val))) {
		printf("kvm-guest net: holding\n");
		wait_for(never, NULL, (unsigned)parse_dec(val, NULL));
	}
	finish();
}

/* --- ticks: a guest that shows it runs ------------------------------------------------ */

/* ticks=N: a line every 100 ms (LAPIC timer), N of them (default 100),
 * while the host pauses and resumes the VM (tests/kvm/test_pause.sh): the
 * lines stop while paused and go on, numbered without a gap, after. */
static void test_ticks(void)
{
	char val[16];
	unsigned n = cmdline_get("ticks", val, sizeof(val)) ? (unsigned)parse_dec(val, NULL) : 100;

	for (unsigned i = 1; i <= n; i++) {
		wait_for(never, NULL, 100);
		printf("kvm-guest ticks: tick %u\n", i);
	}
	finish();
}

/* --- a poisoned queue reports NEEDS_RESET ------------------------------------------ */

static bool config_irq(void *arg)
{
	return ((struct gdev *)arg)->isr_seen & VIRTIO_MMIO_INT_CONFIG;
}

static void test_poison(void)
{
	struct gdev d = { 0 };

	check(gdev_probe(&d, 0, VIRTIO_ID_NET), "virtio-net found at the command line's address");
	if (failures)
		finish();
	gdev_irq_on(&d);
	check(gdev_net_up(&d, &rxq, &txq), "driver up");
	uint32_t gen = gdev_read(&d, VIRTIO_MMIO_CONFIG_GENERATION);
	/* An avail index more than the queue size ahead: the ring is broken. */
	txq.avail.idx = (uint16_t)(GQ_SIZE + 5);
	gdev_kick(&d, 1);
	check(wait_for(config_irq, &d, 5000), "config-change interrupt");
	check(status(&d) & VIRTIO_CONFIG_S_NEEDS_RESET, "status has NEEDS_RESET");
	check(gdev_read(&d, VIRTIO_MMIO_CONFIG_GENERATION) != gen, "config generation moved");
	set_status(&d, 0);
	CHECK_EQ(status(&d), 0, "reset clears NEEDS_RESET");
	/* The device works again after the reset. */
	d.isr_seen = 0;
	check(gdev_net_up(&d, &rxq, &txq), "driver up again");
	post_rx_buffers(GQ_SIZE);
	gdev_kick(&d, 0);
	send_frames(&d, 1);
	unsigned want = 1;
	check(wait_for(rx_done, &want, 5000), "a frame goes through after the reset");
	check_received(1);
	finish();
}


/* --- virtio-fs: a FUSE round trip ------------------------------------------------- */

#define FS_TAG "kvmtest"
#define FS_FILE "hello.txt"
#define FS_TEXT "hello from the host, through virtio-fs\n"

static uint8_t fs_req[512], fs_reply[4096];
static unsigned fs_req_queue = 1;   /* 2 with the notification queue */

/* Send one request on the request queue (queue 1) and wait for the reply.
 * Returns the reply's fuse_out_header.error, or 1 on timeout. */
static int fuse_call(struct gdev *d, uint32_t opcode, uint64_t nodeid, const void *arg,
		     uint32_t arglen, uint32_t *reply_len)
{
	static uint64_t unique;
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + arglen), .opcode = opcode, .unique = ++unique,
		.nodeid = nodeid,
	};

	memcpy(fs_req, &h, sizeof(h));
	memcpy(fs_req + sizeof(h), arg, arglen);
	memset(fs_reply, 0, sizeof(fs_reply));
	uint64_t addr[2] = { (uint64_t)fs_req, (uint64_t)fs_reply };
	uint32_t len[2] = { h.len, sizeof(fs_reply) };
	bool w[2] = { false, true };
	unsigned want = (unsigned)(gq_used_idx(&txq) + 1);
	gq_add(&txq, addr, len, w, 2);
	gdev_kick(d, fs_req_queue);
	if (!wait_for(rx_done_q, &want, 5000))
		return 1;
	uint32_t id;
	gq_get_used(&txq, &id, reply_len);
	struct fuse_out_header o;
	memcpy(&o, fs_reply, sizeof(o));
	if (o.unique != h.unique || o.len != *reply_len)
		return 2;
	return o.error;
}

static void test_fs(void)
{
	struct gdev d = { 0 };
	char tag[VIRTIO_FS_TAG_BYTES + 1];
	uint32_t rlen;

	check(gdev_probe(&d, 0, VIRTIO_ID_FS), "virtio-fs found at the command line's address");
	if (failures)
		finish();
	for (unsigned i = 0; i < VIRTIO_FS_TAG_BYTES; i++)
		tag[i] = (char)mmio_read8(d.base + VIRTIO_MMIO_CONFIG + i);
	tag[VIRTIO_FS_TAG_BYTES] = 0;
	check(!memcmp(tag, FS_TAG, sizeof(FS_TAG)), "config space: the tag");
	gdev_irq_on(&d);
	check(gdev_up(&d, &rxq, &txq), "driver up (hiprio and one request queue)");

	struct fuse_init_in init = { .major = FUSE_KERNEL_VERSION, .minor = 31 };
	CHECK_EQ(fuse_call(&d, FUSE_INIT, 0, &init, sizeof(init), &rlen), 0, "FUSE_INIT answered");
	struct fuse_init_out io;
	memcpy(&io, fs_reply + sizeof(struct fuse_out_header), sizeof(io));
	CHECK_EQ(io.major, FUSE_KERNEL_VERSION, "FUSE_INIT: major version 7");

	CHECK_EQ(fuse_call(&d, FUSE_LOOKUP, FUSE_ROOT_ID, FS_FILE, sizeof(FS_FILE), &rlen), 0,
		 "FUSE_LOOKUP of the shared file");
	struct fuse_entry_out e;
	memcpy(&e, fs_reply + sizeof(struct fuse_out_header), sizeof(e));
	CHECK_EQ(e.attr.size, sizeof(FS_TEXT) - 1, "FUSE_LOOKUP: the file's size");

	struct fuse_open_in op = { .flags = 0 };
	CHECK_EQ(fuse_call(&d, FUSE_OPEN, e.nodeid, &op, sizeof(op), &rlen), 0, "FUSE_OPEN");
	struct fuse_open_out oo;
	memcpy(&oo, fs_reply + sizeof(struct fuse_out_header), sizeof(oo));

	struct fuse_read_in rd = { .fh = oo.fh, .offset = 0, .size = 256 };
	CHECK_EQ(fuse_call(&d, FUSE_READ, e.nodeid, &rd, sizeof(rd), &rlen), 0, "FUSE_READ");
	CHECK_EQ(rlen, sizeof(struct fuse_out_header) + sizeof(FS_TEXT) - 1, "FUSE_READ: length");
	check(!memcmp(fs_reply + sizeof(struct fuse_out_header), FS_TEXT, sizeof(FS_TEXT) - 1),
	      "FUSE_READ: the host file's bytes");
	/* ".." of the share's root must not lead outside: refused, or the root. */
	int err = fuse_call(&d, FUSE_LOOKUP, FUSE_ROOT_ID, "..", 3, &rlen);
	memcpy(&e, fs_reply + sizeof(struct fuse_out_header), sizeof(e));
	check(err < 0 || (err == 0 && e.nodeid == FUSE_ROOT_ID), "FUSE_LOOKUP \"..\" stays inside the share");
	check(d.interrupts > 0, "interrupts through irqfd and the IOAPIC");
	finish();
}

/* --- virtio-blk: sectors read and written, the serial, a new capacity ------------------ */

/* The host's image (tests/kvm/test_blk.sh): BLK_SECTORS sectors, every byte
 * of sector s the value s + 1 (mod 256); the serial BLK_ID. */
#define BLK_SECTORS 128u
#define BLK_ID "kvmdisk"

static struct virtio_blk_outhdr blk_hdr;
static uint8_t blk_data[1024], blk_status;

/* One request on queue 0 (txq's ring): header, @len bytes at blk_data
 * (device-writable when @to_guest), status. The status, or 0xff when no
 * answer came in 5 s. */
static unsigned blk_call(struct gdev *d, uint32_t type, uint64_t sector, uint32_t len,
			 bool to_guest)
{
	uint64_t addr[3] = { (uint64_t)&blk_hdr, (uint64_t)blk_data, (uint64_t)&blk_status };
	uint32_t lens[3] = { sizeof(blk_hdr), len, 1 };
	bool w[3] = { false, to_guest, true };
	unsigned want = (unsigned)(gq_used_idx(&txq) + 1), n = len ? 3 : 2;
	uint32_t id, used;

	blk_hdr = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	blk_status = 0xee;
	if (!len) {                  /* header and status only */
		addr[1] = addr[2];
		lens[1] = 1;
		w[1] = true;
	}
	gq_add(&txq, addr, lens, w, n);
	gdev_kick(d, 0);
	if (!wait_for(rx_done_q, &want, 5000))
		return 0xff;
	gq_get_used(&txq, &id, &used);
	return blk_status;
}

/* Reset, VERSION_1 (and FLUSH), one request queue, DRIVER_OK. */
static bool blk_up(struct gdev *d)
{
	gdev_write(d, VIRTIO_MMIO_STATUS, 0);
	uint32_t st = gdev_negotiate(d, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_FLUSH));
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return false;
	gdev_queue_setup(d, 0, &txq);
	gdev_write(d, VIRTIO_MMIO_STATUS, st | VIRTIO_CONFIG_S_DRIVER_OK);
	return gdev_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK;
}

/* Config space's capacity, read twice around the generation (spec 4.2.2.2). */
static uint64_t blk_capacity(struct gdev *d)
{
	uint32_t gen;
	uint64_t cap;

	do {
		gen = gdev_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
		cap = mmio_read32(d->base + VIRTIO_MMIO_CONFIG) |
		      (uint64_t)mmio_read32(d->base + VIRTIO_MMIO_CONFIG + 4) << 32;
	} while (gen != gdev_read(d, VIRTIO_MMIO_CONFIG_GENERATION));
	return cap;
}

static bool all_bytes(const uint8_t *p, unsigned len, uint8_t v)
{
	for (unsigned i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Read sector @s and check it holds the host's pattern (s + 1). */
static void blk_check_sector(struct gdev *d, uint64_t s, const char *what)
{
	memset(blk_data, 0, sizeof(blk_data));
	CHECK_EQ(blk_call(d, VIRTIO_BLK_T_IN, s, 512, true), VIRTIO_BLK_S_OK, what);
	check(all_bytes(blk_data, 512, (uint8_t)(s + 1)), "... the host file's bytes");
}

/* The drive (the first virtio device) found, its capacity BLK_SECTORS, the
 * driver up with interrupts; blk_root=1: root=/dev/vda on the command line
 * (the drive was given as the root, maybe not first). */
static void blk_probe(struct gdev *d)
{
	char root[32];

	check(gdev_probe(d, 0, VIRTIO_ID_BLOCK), "virtio-blk found at the command line's address");
	if (failures)
		finish();
	if (cmdline_get("blk_root", root, sizeof(root)))
		check(cmdline_get("root", root, sizeof(root)) && !memcmp(root, "/dev/vda", 9),
		      "root=/dev/vda on the command line");
	CHECK_EQ(blk_capacity(d), BLK_SECTORS, "config space: capacity in sectors");
	check(gdev_features(d) & (1ull << VIRTIO_BLK_F_FLUSH), "FLUSH offered");
	gdev_irq_on(d);
	check(blk_up(d), "driver up (one request queue)");
}

/* blk: GET_ID, reads, a write, a flush, refusals. */
static void test_blk(void)
{
	struct gdev d = { 0 };

	blk_probe(&d);
	memset(blk_data, 0, sizeof(blk_data));
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK, "GET_ID");
	check(!memcmp(blk_data, BLK_ID, sizeof(BLK_ID)), "GET_ID: the drive's id");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, 5, 1024, true), VIRTIO_BLK_S_OK, "read sectors 5-6");
	check(all_bytes(blk_data, 512, 6) && all_bytes(blk_data + 512, 512, 7),
	      "read: the host file's bytes");
	memset(blk_data, 'K', 512);
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_OUT, 10, 512, false), VIRTIO_BLK_S_OK, "write sector 10");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK, "flush");
	memset(blk_data, 0, sizeof(blk_data));
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, 10, 512, true), VIRTIO_BLK_S_OK, "read sector 10 back");
	check(all_bytes(blk_data, 512, 'K'), "read back: what was written");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, BLK_SECTORS, 512, true), VIRTIO_BLK_S_IOERR,
		 "a read past the capacity: IOERR");
	CHECK_EQ(blk_call(&d, 99, 0, 0, false), VIRTIO_BLK_S_UNSUPP, "an unknown type: UNSUPP");
	check(d.interrupts > 0, "interrupts through irqfd and the IOAPIC");
	finish();
}

/*
 * blk-resize: the host swaps the drive's file for a larger one (PATCH
 * /drives, tests/kvm/test_blk.sh) while the guest waits, after the line
 * "waiting for a config change": a config-change interrupt, a new config
 * generation, the capacity blk_grown=N, and the new file's sectors read
 * (the host's pattern) and written (sector BLK_SECTORS + 2, 'P'); then,
 * with blk_linger=MS, it waits that long before it ends.
 */
static void test_blk_resize(void)
{
	struct gdev d = { 0 };
	char val[16];
	uint64_t grown = cmdline_get("blk_grown", val, sizeof(val)) ? parse_dec(val, NULL) : 0;

	blk_probe(&d);
	blk_check_sector(&d, 5, "read sector 5");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, BLK_SECTORS, 512, true), VIRTIO_BLK_S_IOERR,
		 "a read of sector 128, past the end: IOERR");
	uint32_t gen = gdev_read(&d, VIRTIO_MMIO_CONFIG_GENERATION);
	d.isr_seen = 0;
	printf("kvm-guest blk-resize: capacity %u, waiting for a config change\n", BLK_SECTORS);
	check(wait_for(config_irq, &d, 30000), "config-change interrupt (InterruptStatus bit 1)");
	check(gdev_read(&d, VIRTIO_MMIO_CONFIG_GENERATION) != gen, "config generation moved");
	CHECK_EQ(blk_capacity(&d), grown, "the new capacity (blk_grown)");
	check(!(gdev_read(&d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET),
	      "no NEEDS_RESET: a config change only");
	blk_check_sector(&d, 5, "read sector 5 of the new file");
	blk_check_sector(&d, grown - 1, "read the new file's last sector");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, grown, 512, true), VIRTIO_BLK_S_IOERR,
		 "a read past the new capacity: IOERR");
	memset(blk_data, 'P', 512);
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_OUT, BLK_SECTORS + 2, 512, false), VIRTIO_BLK_S_OK,
		 "write a sector past the old capacity");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK, "flush");
	/* blk_linger=MS: the VM stays up a while for the host's last requests. */
	if (cmdline_get("blk_linger", val, sizeof(val)))
		wait_for(never, NULL, (unsigned)parse_dec(val, NULL));
	finish();
}

/*
 * fs-notify: with VIRTIO_FS_F_NOTIFICATION (queues: hiprio 0, notification
 * 1, requests 2), look up the shared file, tell the host (console line
 * "fs-notify: change it now") and wait for the FUSE_NOTIFY_INVAL_INODE the
 * host's change of that file brings on the notification queue.
 */
static struct gq hiq;

static void test_fs_notify(void)
{
	struct gdev d = { 0 };
	uint32_t rlen, id, len;

	check(gdev_probe(&d, 0, VIRTIO_ID_FS), "virtio-fs found at the command line's address");
	if (failures)
		finish();
	gdev_irq_on(&d);
	gdev_write(&d, VIRTIO_MMIO_STATUS, 0);
	uint32_t st = gdev_negotiate(&d, (1ull << VIRTIO_F_VERSION_1) | 1ull /* F_NOTIFICATION */);
	check(st & VIRTIO_CONFIG_S_FEATURES_OK, "VIRTIO_FS_F_NOTIFICATION negotiated");
	if (failures)
		finish();
	gdev_queue_setup(&d, 0, &hiq);
	gdev_queue_setup(&d, 1, &rxq);
	gdev_queue_setup(&d, 2, &txq);
	gdev_write(&d, VIRTIO_MMIO_STATUS, st | VIRTIO_CONFIG_S_DRIVER_OK);
	post_rx_buffers(4);
	gdev_kick(&d, 1);
	fs_req_queue = 2;

	struct fuse_init_in init = { .major = FUSE_KERNEL_VERSION, .minor = 31 };
	CHECK_EQ(fuse_call(&d, FUSE_INIT, 0, &init, sizeof(init), &rlen), 0, "FUSE_INIT answered");
	CHECK_EQ(fuse_call(&d, FUSE_LOOKUP, FUSE_ROOT_ID, FS_FILE, sizeof(FS_FILE), &rlen), 0,
		 "FUSE_LOOKUP of the shared file");
	struct fuse_entry_out e;
	memcpy(&e, fs_reply + sizeof(struct fuse_out_header), sizeof(e));
	printf("fs-notify: change it now\n");
	unsigned want = 1;
	check(wait_for(rx_done, &want, 10000), "a notification arrived");
	if (!gq_get_used(&rxq, &id, &len))
		finish();
	const uint8_t *b = rx_bufs[id % GQ_SIZE];
	struct fuse_out_header o;
	struct fuse_notify_inval_inode_out ii;
	memcpy(&o, b, sizeof(o));
	memcpy(&ii, b + sizeof(o), sizeof(ii));
	CHECK_EQ(o.unique, 0, "notification: unique 0");
	CHECK_EQ(o.error, FUSE_NOTIFY_INVAL_INODE, "notification: INVAL_INODE");
	CHECK_EQ(ii.ino, e.nodeid, "notification: the looked-up file's node");
	finish();
}

/* --- user mode: SYSCALL, INT n and faults from CPL3 ---------------------------------- */

void enter_user(uint64_t rip, uint64_t rsp);
extern const uint8_t user_code[], user_code_end[];
void syscall_entry(void);
uint64_t syscall_arrived(uint64_t nr, uint64_t arg, uint64_t rcx, uint64_t r11, uint64_t rflags,
			 uint64_t rsp);

#define USER_BASE 0x200000ull        /* the user page: 2 MiB to 4 MiB */
#define USER_STACK_TOP 0x3ff000ull
#define KERNEL_ONLY_ADDR 0x400000ull /* a supervisor page user code reads */
#define RFLAGS_IF 0x200ull

static uint64_t user_gdt[10] __attribute__((aligned(16)));
static uint8_t tss[104] __attribute__((aligned(16)));
static uint8_t irq_stack[8192] __attribute__((aligned(16)));
static unsigned int80_seen, user_pf_seen;

static void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return lo | ((uint64_t)hi << 32);
}

static uint16_t cur_cs(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs;
}

static bool in_user_code(uint64_t rip)
{
	return rip >= USER_BASE && rip < USER_BASE + (uint64_t)(user_code_end - user_code);
}

/* System calls of the user code: 1 checks how SYSCALL arrived and returns
 * arg + 1; 0 ends the test; anything else means the user code saw a
 * wrong result. */
uint64_t syscall_arrived(uint64_t nr, uint64_t arg, uint64_t rcx, uint64_t r11, uint64_t rflags,
			 uint64_t rsp)
{
	uint16_t ss;

	__asm__ volatile("mov %%ss, %0" : "=r"(ss));
	if (nr == 1) {
		CHECK_EQ(cur_cs(), 0x10, "SYSCALL from CPL3 runs LSTAR in the kernel CS (STAR)");
		CHECK_EQ(ss, 0x18, "SYSCALL: SS is the kernel SS (STAR + 8)");
		check(in_user_code(rcx), "SYSCALL: RCX holds the user's return address");
		check(r11 & RFLAGS_IF, "SYSCALL: R11 holds the user's RFLAGS");
		check(!(rflags & RFLAGS_IF), "SYSCALL: RFLAGS masked with SFMASK (IF clear)");
		CHECK_EQ(rsp, USER_STACK_TOP, "SYSCALL: RSP is still the user's");
		return arg + 1;
	}
	check(nr == 0, "user code: SYSRET, the INT return and the fault fix-up gave it the right values");
	CHECK_EQ(int80_seen, 1, "int $0x80 from CPL3 reached its handler once");
	CHECK_EQ(user_pf_seen, 1, "a user page fault reached the #PF handler once");
	finish();
	return 0;
}

/* int $0x80 (returns RAX + 1) and the user's read of a supervisor page
 * (returns 0x77 and steps over the 3-byte load). */
static bool user_frame_hook(struct isr_frame *f)
{
	if (f->vector == 128) {
		CHECK_EQ(cur_cs(), 0x10, "int $0x80 from CPL3: handler in the kernel CS");
		CHECK_EQ(f->cs, 0x33, "int $0x80: the frame holds the user CS");
		check(in_user_code(f->rip), "int $0x80: returns into the user code");
		int80_seen++;
		f->rax++;
		return true;
	}
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	if (f->vector == 14 && f->cs == 0x33 && cr2 == KERNEL_ONLY_ADDR && in_user_code(f->rip)) {
		check(f->error & 4, "user #PF: error code says user mode");
		user_pf_seen++;
		f->rax = 0x77;
		f->rip += 3;
		return true;
	}
	return false;
}

/* Linux's layout: kernel CS/DS 0x10/0x18, user32 CS 0x23, user DS 0x2b,
 * user CS 0x33, TSS 0x38. */
static void load_user_gdt(void)
{
	uint64_t base = (uint64_t)tss;
	struct { uint16_t limit; uint64_t base; } __attribute__((packed)) gdtr;

	user_gdt[2] = 0x00af9b000000ffffull;
	user_gdt[3] = 0x00cf93000000ffffull;
	user_gdt[4] = 0x00cffb000000ffffull;
	user_gdt[5] = 0x00cff3000000ffffull;
	user_gdt[6] = 0x00affb000000ffffull;
	user_gdt[7] = (sizeof(tss) - 1) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		      (((base >> 24) & 0xff) << 56);
	user_gdt[8] = base >> 32;
	uint64_t rsp0 = (uint64_t)irq_stack + sizeof(irq_stack);
	memcpy(tss + 4, &rsp0, 8);
	gdtr.limit = sizeof(user_gdt) - 1;
	gdtr.base = (uint64_t)user_gdt;
	__asm__ volatile("lgdt %0; mov $0x38, %%ax; ltr %%ax" : : "m"(gdtr) : "rax");
}

/* The 2 MiB page at USER_BASE becomes reachable from CPL3; everything
 * else (this code, LSTAR, the IDT) stays supervisor-only, as in Linux. */
static void map_user_page(void)
{
	uint64_t cr3;

	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	uint64_t *pml4 = (uint64_t *)(cr3 & ~0xfffull);
	uint64_t *pdpt = (uint64_t *)(pml4[0] & ~0xfffull);
	uint64_t *pd = (uint64_t *)(pdpt[0] & ~0xfffull);
	pml4[0] |= 4;
	pdpt[0] |= 4;
	pd[USER_BASE >> 21] |= 4;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	memcpy((void *)USER_BASE, user_code, (size_t)(user_code_end - user_code));
}

static void test_usermode(void)
{
	cli();
	load_user_gdt();
	map_user_page();
	frame_hook = user_frame_hook;
	wrmsr(0xc0000080, rdmsr(0xc0000080) | 1);                 /* EFER.SCE */
	wrmsr(0xc0000081, (0x23ull << 48) | (0x10ull << 32));      /* STAR */
	wrmsr(0xc0000082, (uint64_t)syscall_entry);                /* LSTAR */
	wrmsr(0xc0000084, 0x200);                                  /* SFMASK: IF */
	printf("kvm-guest %s: entering CPL3\n", test_name);
	enter_user(USER_BASE, USER_STACK_TOP);
}


/* --- the boot protocol: zero page, e820, command line, initramfs ------------------ */

static const uint8_t *zp;

struct e820 {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* e820 with ACPI: RAM, reserved (EBDA..), the ACPI tables' 64 KiB at
 * 0xe0000, reserved (the MP table..1 MiB), RAM. With no_acpi=1 (kvmini
 * run --no-acpi): RAM, the whole BIOS area reserved, RAM, and no RSDP. */
static void check_e820(uint64_t mem, bool acpi)
{
	uint8_t n = zp[0x1e8];
	uint64_t rsdp;
	const struct e820 *e = (const void *)(zp + 0x2d0);

	memcpy(&rsdp, zp + 0x70, 8);
	CHECK_EQ(n, acpi ? 5 : 3, acpi ? "e820: five entries below 3 GiB" : "e820: three entries below 3 GiB");
	check(e[0].addr == 0 && e[0].size == 0x9fc00 && e[0].type == 1, "e820: low RAM up to the EBDA");
	if (acpi) {
		check(e[1].addr == 0x9fc00 && e[1].addr + e[1].size == 0xe0000 && e[1].type == 2,
		      "e820: EBDA up to the ACPI tables reserved");
		check(e[2].addr == 0xe0000 && e[2].size == 0x10000 && e[2].type == 3,
		      "e820: the ACPI tables' 64 KiB typed ACPI");
		check(e[3].addr == 0xf0000 && e[3].addr + e[3].size == 0x100000 && e[3].type == 2,
		      "e820: the MP table up to 1 MiB reserved");
		check(rsdp >= e[2].addr && rsdp + 36 <= e[2].addr + e[2].size,
		      "acpi_rsdp_addr: inside the ACPI range");
		e += 2;
	} else {
		check(e[1].addr == 0x9fc00 && e[1].addr + e[1].size == 0x100000 && e[1].type == 2,
		      "e820: the BIOS area reserved");
		CHECK_EQ(rsdp, 0, "--no-acpi: acpi_rsdp_addr 0");
		bool found = false;
		for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
			found = found || !memcmp((const void *)a, "RSD PTR ", 8);
		check(!found, "--no-acpi: no RSDP in the BIOS area");
	}
	check(e[2].addr == 0x100000 && e[2].addr + e[2].size == mem && e[2].type == 1,
	      "e820: RAM from 1 MiB to the end of --mem");
}

static void test_bootparams(void)
{
	char val[32];
	uint32_t u32;
	uint64_t mem = cmdline_get("mem_mib", val, sizeof(val)) ? parse_dec(val, NULL) << 20 : 0;

	CHECK_EQ(zp[0x210], 0xff, "type_of_loader: 0xff");
	memcpy(&u32, zp + 0x202, 4);
	CHECK_EQ(u32, 0x53726448, "setup header magic HdrS");
	check_e820(mem, !cmdline_get("no_acpi", val, sizeof(val)));
	uint32_t image, size;
	memcpy(&image, zp + 0x218, 4);
	memcpy(&size, zp + 0x21c, 4);
	if (cmdline_get("initrd_len", val, sizeof(val))) {
		CHECK_EQ(size, parse_dec(val, NULL), "ramdisk_size: the initrd's length");
		check(image >= 0x100000 && image % 4096 == 0 && image + size <= mem,
		      "ramdisk_image: page aligned, inside RAM");
		check(!memcmp((const void *)(uint64_t)image, "KVMINI-INITRD", 13), "initrd bytes in place");
	} else {
		CHECK_EQ(size, 0, "no initrd: ramdisk_size 0");
	}
	uint64_t rip;
	__asm__ volatile("lea 0(%%rip), %0" : "=r"(rip));
	printf("kvm-guest bootparams: running at 0x%lx\n", rip);
	finish();
}

/* --- i8042 --------------------------------------------------------------------------- */

#define PORT_KBD_DATA 0x60
#define PORT_KBD_STS  0x64
#define VEC_KBD       33             /* 32 + IRQ 1 */

static volatile uint8_t kbd_bytes[32];
static volatile unsigned kbd_len, kbd_irqs;

/* Drain the output buffer, as Linux's i8042_interrupt does per byte. */
static void on_kbd(unsigned vector)
{
	kbd_irqs++;
	while (inb(PORT_KBD_STS) & 1) {
		uint8_t b = inb(PORT_KBD_DATA);
		if (kbd_len < sizeof(kbd_bytes))
			kbd_bytes[kbd_len++] = b;
	}
}

struct kbd_wait {
	unsigned n;
};

static bool have_kbd_bytes(void *arg)
{
	return kbd_len >= ((struct kbd_wait *)arg)->n;
}

/* A controller command answered through the polled output buffer. */
static int kbd_command(uint8_t cmd)
{
	outb(PORT_KBD_STS, cmd);
	for (unsigned i = 0; i < 1000; i++)
		if (inb(PORT_KBD_STS) & 1)
			return inb(PORT_KBD_DATA);
	return -1;
}

/* What Linux's i8042 and atkbd probes do, then Ctrl+Alt+Del from the API
 * (the host script sends it once "ready" is printed). */
static void test_i8042(void)
{
	struct kbd_wait w = { 3 };

	while (inb(PORT_KBD_STS) & 1)
		inb(PORT_KBD_DATA);
	CHECK_EQ(kbd_command(0xaa), 0x55, "controller self-test answers 0x55");
	CHECK_EQ(kbd_command(0xab), 0x00, "keyboard interface test answers 0x00");
	int ctr = kbd_command(0x20);
	check(ctr >= 0 && (ctr & 0x01), "command byte read, keyboard interrupt enabled");
	outb(PORT_KBD_STS, 0x60);
	outb(PORT_KBD_DATA, 0x45);
	CHECK_EQ(kbd_command(0x20), 0x45, "command byte written and read back");
	irq_set_handler(VEC_KBD, on_kbd);
	ioapic_route(1, VEC_KBD);
	outb(PORT_KBD_DATA, 0xf2);       /* keyboard: GET ID */
	check(wait_for(have_kbd_bytes, &w, 5000), "GET ID answered through IRQ 1");
	check(kbd_bytes[0] == 0xfa && kbd_bytes[1] == 0xab && kbd_bytes[2] == 0x83,
	      "GET ID: ACK, then 0xab 0x83");
	kbd_len = 0;
	w.n = 4;
	printf("kvm-guest i8042: ready for Ctrl+Alt+Del\n");
	bool got = wait_for(have_kbd_bytes, &w, 20000);
	check(got, "Ctrl+Alt+Del arrived through IRQ 1");
	printf("kvm-guest i8042: %u bytes: %x %x %x %x, %u interrupts\n", kbd_len, kbd_bytes[0],
	       kbd_bytes[1], kbd_bytes[2], kbd_bytes[3], kbd_irqs);
	check(kbd_bytes[0] == 0x14 && kbd_bytes[1] == 0x11 && kbd_bytes[2] == 0xe0 &&
	      kbd_bytes[3] == 0x71, "Ctrl+Alt+Del: set 2 make codes 14 11 e0 71");
	finish();
}

/*
 * blk-snap: tests/kvm/test_snapshot_blk.sh snapshots the VM and restores
 * it in a new kvmini while this runs. Sector 10 is written ('A') and
 * flushed, the line below printed, then for blk_snap_ms (guest time, which
 * goes on across the restore) writes and reads back sectors 20..51 one
 * request after the other, so the snapshot most likely finds one in
 * flight; then sector 11 ('B') is written and both are read back.
 */
static void test_blk_snap(void)
{
	struct gdev d;
	char val[16];
	unsigned ms = cmdline_get("blk_snap_ms", val, sizeof(val)) ? (unsigned)parse_dec(val, NULL)
								     : 5000;
	unsigned rounds = 0, bad = 0;

	blk_probe(&d);
	memset(blk_data, 'A', 512);
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_OUT, 10, 512, false), VIRTIO_BLK_S_OK, "write sector 10");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK, "flush");
	printf("kvm-guest blk-snap: sector 10 written, requests go on for %u ms\n", ms);
	for (uint64_t end = ticks + ms / 10; ticks < end; rounds++) {
		uint8_t v = (uint8_t)(rounds * 7 + 1);
		memset(blk_data, v, 512);
		bad += blk_call(&d, VIRTIO_BLK_T_OUT, 20 + rounds % 32, 512, false) != VIRTIO_BLK_S_OK;
		memset(blk_data, 0, 512);
		bad += blk_call(&d, VIRTIO_BLK_T_IN, 20 + rounds % 32, 512, true) != VIRTIO_BLK_S_OK;
		bad += !all_bytes(blk_data, 512, v);
	}
	CHECK_EQ(bad, 0, "every request of the loop answered OK with the data written");
	printf("kvm-guest blk-snap: %u write/read rounds\n", rounds);
	memset(blk_data, 'B', 512);
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_OUT, 11, 512, false), VIRTIO_BLK_S_OK, "write sector 11");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK, "flush");
	CHECK_EQ(blk_call(&d, VIRTIO_BLK_T_IN, 10, 1024, true), VIRTIO_BLK_S_OK, "read sectors 10-11");
	check(all_bytes(blk_data, 512, 'A') && all_bytes(blk_data + 512, 512, 'B'),
	      "sector 10 as written before, 11 as written after");
}

/* --- virtio-vsock: a stream to the host and one from it ---------------------------- */

/* tests/kvm/test_vsock.sh: the guest is VSOCK_CID; an echo service listens
 * at PATH_VSOCK_HOST_PORT; a host client on PATH asks for VSOCK_GUEST_PORT
 * and sends "ping". */
#define VSOCK_CID 3u
#define VSOCK_HOST_PORT 52u
#define VSOCK_GUEST_PORT 1234u
#define VSOCK_LOCAL_PORT 1025u
#define VSOCK_BUF_ALLOC 4096u
#define VSOCK_RX_BUF 256u
#define VSOCK_HDR ((uint32_t)sizeof(struct virtio_vsock_hdr))

static struct gq evq;
static struct virtio_vsock_hdr vs_hdr;
static uint8_t vs_data[64];
static uint8_t vs_rx[GQ_SIZE][VSOCK_RX_BUF];
static uint32_t vs_fwd_cnt;          /* stream bytes taken on the current connection */

/* One receive buffer into the ring: head h is always vs_rx[h] (one
 * descriptor each, completed in order). */
static void vs_post_rx(void)
{
	uint64_t addr = (uint64_t)vs_rx[rxq.next_desc % GQ_SIZE];
	uint32_t len = VSOCK_RX_BUF;
	bool w = true;

	gq_add(&rxq, &addr, &len, &w, 1);
}

/* A packet to the host: the header and @len bytes of @data, on queue 1. */
static bool vs_send(struct gdev *d, uint32_t src, uint32_t dst, uint16_t op, uint32_t flags,
		    const void *data, uint32_t len)
{
	uint64_t addr[2] = { (uint64_t)&vs_hdr, (uint64_t)vs_data };
	uint32_t lens[2] = { VSOCK_HDR, len };
	bool w[2] = { false, false };
	unsigned want = (unsigned)(gq_used_idx(&txq) + 1);
	uint32_t id, used;

	vs_hdr = (struct virtio_vsock_hdr){ .src_cid = VSOCK_CID, .dst_cid = 2, .src_port = src,
		.dst_port = dst, .len = len, .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
		.flags = flags, .buf_alloc = VSOCK_BUF_ALLOC, .fwd_cnt = vs_fwd_cnt };
	memcpy(vs_data, data, len);
	gq_add(&txq, addr, lens, w, len ? 2 : 1);
	gdev_kick(d, 1);
	if (!wait_for(rx_done_q, &want, 5000))
		return false;
	return gq_get_used(&txq, &id, &used);
}

static bool vs_rx_ready(void *arg)
{
	return gq_used_idx(&rxq) != rxq.last_used;
}

/* The next packet from the host within @ms: its header in *@h, its payload
 * (up to 64 bytes) in vs_data; the buffer goes back to the ring. */
static bool vs_recv(struct gdev *d, struct virtio_vsock_hdr *h, unsigned ms)
{
	uint32_t id, len;

	if (!wait_for(vs_rx_ready, NULL, ms) || !gq_get_used(&rxq, &id, &len) || len < VSOCK_HDR)
		return false;
	memcpy(h, vs_rx[id % GQ_SIZE], VSOCK_HDR);
	memcpy(vs_data, vs_rx[id % GQ_SIZE] + VSOCK_HDR, h->len < 64 ? h->len : 64);
	if (h->op == VIRTIO_VSOCK_OP_RW)
		vs_fwd_cnt += h->len;
	vs_post_rx();
	gdev_kick(d, 0);
	return h->len == len - VSOCK_HDR && h->src_cid == 2 && h->dst_cid == VSOCK_CID;
}

/* The next packet that is not a credit update. */
static bool vs_recv_op(struct gdev *d, struct virtio_vsock_hdr *h, unsigned ms)
{
	while (vs_recv(d, h, ms))
		if (h->op != VIRTIO_VSOCK_OP_CREDIT_UPDATE)
			return true;
	return false;
}

/* Reset, VERSION_1, the rx, tx and event queues, DRIVER_OK; every receive
 * buffer posted. */
static bool vsock_up(struct gdev *d)
{
	gdev_write(d, VIRTIO_MMIO_STATUS, 0);
	uint32_t st = gdev_negotiate(d, 1ull << VIRTIO_F_VERSION_1);
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return false;
	gdev_queue_setup(d, 0, &rxq);
	gdev_queue_setup(d, 1, &txq);
	gdev_queue_setup(d, 2, &evq);
	gdev_write(d, VIRTIO_MMIO_STATUS, st | VIRTIO_CONFIG_S_DRIVER_OK);
	for (unsigned i = 0; i < GQ_SIZE; i++)
		vs_post_rx();
	gdev_kick(d, 0);
	return gdev_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK;
}

/* The guest connects to the host's echo service, hears its bytes back, and
 * closes (SHUTDOWN both ways, answered with RST). */
static void vsock_to_host(struct gdev *d)
{
	static const char msg[] = "hello over vsock";
	struct virtio_vsock_hdr h;
	char echo[sizeof(msg)] = { 0 };
	unsigned got = 0;

	vs_send(d, VSOCK_LOCAL_PORT, VSOCK_HOST_PORT, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0);
	check(vs_recv_op(d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RESPONSE &&
	      h.src_port == VSOCK_HOST_PORT && h.dst_port == VSOCK_LOCAL_PORT,
	      "guest to host: RESPONSE from the host's port 52");
	check(h.buf_alloc > 0, "... with the device's buf_alloc");
	vs_send(d, VSOCK_LOCAL_PORT, VSOCK_HOST_PORT, VIRTIO_VSOCK_OP_RW, 0, msg, sizeof(msg) - 1);
	while (got < sizeof(msg) - 1 && vs_recv_op(d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RW) {
		memcpy(echo + got, vs_data, h.len < sizeof(msg) - 1 - got ? h.len : sizeof(msg) - 1 - got);
		got += h.len;
	}
	check(got == sizeof(msg) - 1 && !memcmp(echo, msg, got), "guest to host: the echo, byte-exact");
	vs_send(d, VSOCK_LOCAL_PORT, VSOCK_HOST_PORT, VIRTIO_VSOCK_OP_SHUTDOWN,
		VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, 0);
	check(vs_recv_op(d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RST,
	      "guest to host: SHUTDOWN both ways answered with RST");
}

/* A host client asks for the guest's port: REQUEST, RESPONSE, "ping" in,
 * "pong" out, the host's SHUTDOWN, and the guest's close. */
static void vsock_from_host(struct gdev *d)
{
	struct virtio_vsock_hdr h;

	check(vs_recv_op(d, &h, 30000) && h.op == VIRTIO_VSOCK_OP_REQUEST &&
	      h.dst_port == VSOCK_GUEST_PORT && h.src_port >= (1u << 30),
	      "host to guest: REQUEST for port 1234 from a host port of 2^30 or more");
	uint32_t host_port = h.src_port;
	vs_fwd_cnt = 0;              /* credit is per connection: this one starts afresh */
	vs_send(d, VSOCK_GUEST_PORT, host_port, VIRTIO_VSOCK_OP_RESPONSE, 0, NULL, 0);
	check(vs_recv_op(d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RW && h.len == 4 &&
	      !memcmp(vs_data, "ping", 4), "host to guest: the bytes after the CONNECT line");
	vs_send(d, VSOCK_GUEST_PORT, host_port, VIRTIO_VSOCK_OP_RW, 0, "pong", 4);
	check(vs_recv_op(d, &h, 10000) && h.op == VIRTIO_VSOCK_OP_SHUTDOWN &&
	      (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND), "host to guest: the client's close is SHUTDOWN");
	vs_send(d, VSOCK_GUEST_PORT, host_port, VIRTIO_VSOCK_OP_SHUTDOWN,
		VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, 0);
	check(vs_recv_op(d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RST, "host to guest: closed with RST");
}

static void test_vsock(void)
{
	struct gdev d;

	check(gdev_probe(&d, 0, VIRTIO_ID_VSOCK), "virtio-vsock found at the command line's address");
	if (failures)
		finish();
	uint64_t cid = mmio_read32(d.base + VIRTIO_MMIO_CONFIG) |
		       (uint64_t)mmio_read32(d.base + VIRTIO_MMIO_CONFIG + 4) << 32;
	CHECK_EQ(cid, VSOCK_CID, "config space: the guest's CID");
	gdev_irq_on(&d);
	check(vsock_up(&d), "driver up (rx, tx, event queues)");
	vsock_to_host(&d);
	vsock_from_host(&d);
	/* vsock_linger=MS: the VM stays up a while (the host asks for a snapshot). */
	char ms[16];
	if (cmdline_get("vsock_linger", ms, sizeof(ms))) {
		printf("kvm-guest vsock: lingering\n");
		wait_for(never, NULL, (unsigned)parse_dec(ms, NULL));
	}
}

static uint32_t vs_events[GQ_SIZE];

/* An event buffer (4 bytes, device-writable) into the event queue. */
static void vs_post_event(void)
{
	uint64_t addr = (uint64_t)&vs_events[evq.next_desc % GQ_SIZE];
	uint32_t len = sizeof(vs_events[0]);
	bool w = true;

	gq_add(&evq, &addr, &len, &w, 1);
}

static bool vs_event_ready(void *arg)
{
	return gq_used_idx(&evq) != evq.last_used;
}

/*
 * vsock-snap: tests/kvm/test_snapshot_vsock.sh snapshots the VM while a
 * connection to the host's echo service is open, and restores it in a new
 * kvmini: the guest then finds VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in an
 * event buffer, gives the buffer back (the acknowledgment), and makes a
 * new connection each way.
 */
static void test_vsock_snap(void)
{
	struct gdev d;
	struct virtio_vsock_hdr h;
	uint32_t id, len;

	check(gdev_probe(&d, 0, VIRTIO_ID_VSOCK), "virtio-vsock found at the command line's address");
	if (failures)
		finish();
	gdev_irq_on(&d);
	check(vsock_up(&d), "driver up (rx, tx, event queues)");
	vs_post_event();
	vs_post_event();
	gdev_kick(&d, 2);
	vs_send(&d, VSOCK_LOCAL_PORT + 1, VSOCK_HOST_PORT, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0);
	check(vs_recv_op(&d, &h, 5000) && h.op == VIRTIO_VSOCK_OP_RESPONSE,
	      "a connection to the host's port 52, open across the snapshot");
	printf("kvm-guest vsock-snap: connected, waiting for the transport reset\n");
	check(wait_for(vs_event_ready, NULL, 60000) && gq_get_used(&evq, &id, &len),
	      "an event after the restore");
	CHECK_EQ(len, sizeof(vs_events[0]), "... of 4 bytes");
	CHECK_EQ(vs_events[id % GQ_SIZE], VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, "... TRANSPORT_RESET");
	uint64_t cid = mmio_read32(d.base + VIRTIO_MMIO_CONFIG);
	CHECK_EQ(cid, VSOCK_CID, "config space: the CID, read again after the reset");
	vs_post_event();
	gdev_kick(&d, 2);
	printf("kvm-guest vsock-snap: reset taken\n");
	vsock_to_host(&d);
	vsock_from_host(&d);
}

/* --- ACPI (acpi.c) ------------------------------------------------------------------ */

static void test_acpi(void) { acpi_test_tables(zp); }
static void test_acpi_poweroff(void) { acpi_test_poweroff(zp); }
static void test_acpi_reset(void) { acpi_test_reset(zp); }

/* --- entry ------------------------------------------------------------------------------ */

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "hello", test_hello },
	{ "rtc", test_rtc },
	{ "exit", test_exit_code },
	{ "exit16", test_exit_code_word },
	{ "marker", test_boot_marker },
	{ "uart-bulk", test_uart_bulk },
	{ "fault", test_triple_fault },
	{ "emulation", test_emulation },
	{ "uart", test_uart_echo },
	{ "features", test_features },
	{ "net-config", test_net_config },
	{ "net", test_net },
	{ "ticks", test_ticks },
	{ "poison", test_poison },
	{ "fs", test_fs },
	{ "fs-notify", test_fs_notify },
	{ "blk", test_blk },
	{ "blk-resize", test_blk_resize },
	{ "blk-snap", test_blk_snap },
	{ "vsock", test_vsock },
	{ "vsock-snap", test_vsock_snap },
	{ "usermode", test_usermode },
	{ "bootparams", test_bootparams },
	{ "acpi", test_acpi },
	{ "acpi-poweroff", test_acpi_poweroff },
	{ "acpi-reset", test_acpi_reset },
	{ "i8042", test_i8042 },
};

void guest_main(const uint8_t *zero_page)
{
	char name[32];
	uint32_t cmdline_ptr;

	zp = zero_page;
	memcpy(&cmdline_ptr, zero_page + 0x228, sizeof(cmdline_ptr));
	guest_set_cmdline((const char *)(uint64_t)cmdline_ptr);
	uart_init();
	irq_init();
	sti();
	if (!cmdline_get("test", name, sizeof(name))) {
		printf("kvm-guest: no test= on the command line\n");
		guest_exit(2);
	}
	for (unsigned i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (!memcmp(name, tests[i].name, strlen(tests[i].name) + 1)) {
			test_name = tests[i].name;
			tests[i].fn();
			finish();
		}
	}
	printf("kvm-guest: unknown test \"%s\"\n", name);
	guest_exit(2);
}
