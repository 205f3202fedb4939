/*
 * libFuzzer target: the port devices a guest reaches by exits to kvmini,
 * the 16550 UART (src/vmm/serial.c) and the legacy ports (src/vmm/legacy.c:
 * i8042, debug exit, boot marker, CMOS RTC, POST and delay ports),
 * dispatched through the VM's port bus exactly as a vCPU thread does, with
 * console input fed through a pipe and the event loop turned by the input.
 * The VM has no KVM behind it (vm_fd -1: interrupt line changes fail
 * quietly), and a stop request is read back and cleared after each access.
 *
 * Checked after every operation, besides ASan/UBSan:
 *  - UART: IIR reads give one of the 16550's interrupt identifications,
 *    LSR always has THRE and TEMT, IER reads back what was written (low
 *    nibble), wider-than-byte reads give all ones; the receive FIFO never
 *    holds more than its capacity, the host-side buffer never more than
 *    SERIAL_INPUT_BUF; every byte fed is either read by kvmini or still in
 *    the pipe; buffered input waits only while the guest does not listen
 *    (receive interrupts never enabled, loopback) or the FIFO is full; and
 *    kvmini stops reading the pipe only when its buffer is full;
 *  - debug exit: a write of v ends the VM with status ((v << 1) | 1) & 0xff,
 *    whatever the width; i8042 command 0xfe ends it with 0; nothing else
 *    stops the VM;
 *  - boot marker: "userspace" is marked by a byte write of 123 and nothing else;
 *  - RTC: the clock registers read as valid BCD, CMOS RAM reads back what
 *    was written there (a model kept here), status registers are fixed;
 *  - i8042, with Ctrl+Alt+Del queued between accesses: the output buffer
 *    never holds more than its 16 bytes, its status bit says whether it
 *    holds any, a Ctrl+Alt+Del is taken whole or refused whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "vmm/io_bus.h"
#include "vmm/layout.h"
#include "vmm/legacy.h"
#include "vmm/run_state.h"
#include "vmm/serial.h"
#include "vmm/vm.h"
#include "fuzz_input.h"

#define MAX_OPS 400
#define COM1 LAYOUT_PORT_SERIAL

#define FAIL(...) FUZZ_FAIL("fuzz_ports", __VA_ARGS__)

static struct vm vm;
static struct event_loop loop;
static struct serial uart;
static struct legacy_devices legacy;
static int pipe_rd = -1, pipe_wr = -1, out_fd = -1;
static uint64_t fed;                 /* bytes written into the input pipe */
static uint8_t rtc_index;            /* model of the RTC index register */
static int cmos_model[128];          /* -1: never written */
static bool ier_written;
static uint8_t ier_model;

static const uint16_t ports[] = {
	COM1, COM1 + 1, COM1 + 2, COM1 + 3, COM1 + 4, COM1 + 5, COM1 + 6, COM1 + 7,
	0x60, 0x64, 0x70, 0x71, 0x80, 0xed, 0x501, 0x502, 0x3f0, 0x3ef, 0x400,
};

/* ---- the world, rebuilt for each input so inputs replay ---- */

static void world_init(void)
{
	int p[2];

	log_threshold = LOG_ERROR;
	if (event_loop_init(&loop) || pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		FAIL("setup");
	pipe_rd = p[0];
	pipe_wr = p[1];
	out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	vm.kvm_fd = vm.vm_fd = -1;
	if (out_fd < 0 || run_state_init(&vm.run_state) < 0)
		FAIL("fds");
}

static void world_start(void)
{
	static bool started;
	uint8_t junk[4096];
	uint64_t v;

	if (started) {
		serial_destroy(&uart);
		legacy_destroy(&legacy);
	}
	started = true;
	while (read(pipe_rd, junk, sizeof(junk)) > 0)
		;
	if (read(vm.run_state.stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		FAIL("stop fd");
	memset(&vm.pio, 0, sizeof(vm.pio));
	memset(&vm.timing, 0, sizeof(vm.timing));
	vm.run_state.stopping = 0;
	vm.run_state.exit_status = 0;
	fed = 0;
	rtc_index = 0;
	ier_written = false;
	for (unsigned i = 0; i < ARRAY_SIZE(cmos_model); i++)
		cmos_model[i] = -1;
	if (serial_init(&uart, &vm, out_fd) || legacy_init(&legacy, &vm) ||
	    serial_attach_input(&uart, &loop, pipe_rd))
		FAIL("devices");
}

/* ---- port access as a vCPU makes it ---- */

static bool port_access(uint16_t port, void *data, unsigned len, bool is_write)
{
	struct io_handler *h = io_bus_find(&vm.pio, port, len);

	if (!h)
		return false;
	h->access(h, port - h->base, data, len, is_write);
	return true;
}

static uint8_t inb(uint16_t port)
{
	uint8_t v = 0;

	port_access(port, &v, 1, false);
	return v;
}

static void outb(uint16_t port, uint8_t v)
{
	port_access(port, &v, 1, true);
}

/* A stop request since the last look: its status, or -1. Clears it. */
static int take_stop(void)
{
	uint64_t v;

	if (!vm.run_state.stopping)
		return -1;
	int status = vm.run_state.exit_status;
	vm.run_state.stopping = 0;
	vm.run_state.exit_status = 0;
	if (read(vm.run_state.stop_fd, &v, sizeof(v)) < 0)
		FAIL("stop requested without the eventfd");
	return status;
}

/* ---- invariants ---- */

static bool is_bcd(uint8_t v)
{
	return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

static void check_uart_read(unsigned reg, uint8_t v)
{
	static const uint8_t iir_ids[] = { 0x01, 0x06, 0x04, 0x0c, 0x02, 0x00 };
	bool dlab = uart.lcr & 0x80;

	if (reg == 2) {
		bool ok = false;
		for (unsigned i = 0; i < ARRAY_SIZE(iir_ids); i++)
			ok |= (v & 0x0f) == iir_ids[i];
		if (!ok || (v & 0x30))
			FAIL("IIR read 0x%02x", v);
	}
	if (reg == 5 && (v & 0x60) != 0x60)
		FAIL("LSR read 0x%02x without THRE|TEMT", v);
	if (reg == 1 && !dlab && ier_written && v != ier_model)
		FAIL("IER read 0x%02x, wrote 0x%02x", v, ier_model);
}

/* Console input: nothing lost between the pipe and kvmini, and nothing held
 * back that the guest could take. */
static void check_input(void)
{
	int pending = 0;

	if (ioctl(pipe_rd, FIONREAD, &pending) < 0)
		FAIL("FIONREAD");
	pthread_mutex_lock(&uart.lock);
	unsigned cap = uart.fifo_enabled ? SERIAL_FIFO_SIZE : 1;
	bool listening = uart.rx_open && !(uart.mcr & 0x10);
	if (uart.rx_count > cap)
		FAIL("FIFO holds %u, capacity %u", uart.rx_count, cap);
	if (uart.in_count > SERIAL_INPUT_BUF)
		FAIL("input buffer holds %u", uart.in_count);
	if (uart.in_bytes + (uint64_t)pending != fed)
		FAIL("fed %llu bytes, kvmini read %llu, %d in the pipe", (unsigned long long)fed,
		     (unsigned long long)uart.in_bytes, pending);
	if (listening && uart.in_count && uart.rx_count < cap)
		FAIL("%u bytes wait while the FIFO has room (%u of %u) and the guest listens",
		     uart.in_count, uart.rx_count, cap);
	pthread_mutex_unlock(&uart.lock);
}

/* After enough loop turns, kvmini reads the pipe dry unless its buffer is full. */
static void check_reading_resumes(void)
{
	int pending = 0;

	for (unsigned i = 0; i < SERIAL_INPUT_BUF / 256 + 4; i++)
		event_loop_once(&loop, 0);
	if (ioctl(pipe_rd, FIONREAD, &pending) < 0)
		FAIL("FIONREAD");
	if (pending && uart.in_count < SERIAL_INPUT_BUF)
		FAIL("%d bytes left in the pipe with room in the buffer (%u)", pending, uart.in_count);
}

static void check_legacy_write(uint16_t port, const uint8_t *data, unsigned len, int stop)
{
	if (port >= LAYOUT_PORT_DEBUG_EXIT && port < LAYOUT_PORT_DEBUG_EXIT + 2 &&
	    port + len <= LAYOUT_PORT_DEBUG_EXIT + 2) {
		unsigned v = data[0] | (len > 1 ? (unsigned)data[1] << 8 : 0);
		if (stop != (int)(((v << 1) | 1) & 0xff))
			FAIL("debug exit write of 0x%x (%u bytes) stopped with %d", v, len, stop);
		return;
	}
	if (port == 0x64 && len == 1 && data[0] == 0xfe) {
		if (stop != 0)
			FAIL("i8042 reset stopped with %d", stop);
		return;
	}
	if (stop != -1)
		FAIL("write of %u bytes to port 0x%x stopped the VM (%d)", len, port, stop);
}

static void check_rtc(uint16_t port, uint8_t *data, unsigned len, bool is_write)
{
	if (len != 1)
		return;
	if (port == 0x70 && is_write) {
		rtc_index = data[0] & 0x7f;
		return;
	}
	if (port != 0x71)
		return;
	bool clock = rtc_index <= 0x0d || rtc_index == 0x32;
	if (is_write) {
		if (!clock)
			cmos_model[rtc_index] = data[0];
		return;
	}
	if (clock && rtc_index < 0x0a && rtc_index != 1 && rtc_index != 3 && rtc_index != 5 &&
	    !is_bcd(data[0]))
		FAIL("RTC register 0x%x read 0x%02x, not BCD", rtc_index, data[0]);
	if (rtc_index == 0x32 && !is_bcd(data[0]))
		FAIL("RTC century 0x%02x", data[0]);
	if (rtc_index == 0x0a && (data[0] & 0x80))
		FAIL("RTC says an update is in progress");
	if (!clock && data[0] != (cmos_model[rtc_index] < 0 ? 0 : cmos_model[rtc_index]))
		FAIL("CMOS 0x%x read 0x%02x, wrote %d", rtc_index, data[0], cmos_model[rtc_index]);
}

static void check_i8042(void)
{
	const struct i8042 *k = &legacy.kbd;

	if (k->len > I8042_BUF_SIZE || k->head >= I8042_BUF_SIZE)
		FAIL("i8042 buffer: %u bytes from %u", k->len, k->head);
	if (!(k->status & I8042_STS_OBF) != !k->len)
		FAIL("i8042 status 0x%02x with %u bytes queued", k->status, k->len);
}

/* ---- operations ---- */

static const unsigned widths[] = { 1, 2, 4, 1 };

static void op_port(struct fuzz_input *in)
{
	uint16_t sel = (uint16_t)fuzz_take(in, 2);
	uint16_t port = (sel & 0x8000) ? (uint16_t)(sel & 0x7ff) : ports[sel % ARRAY_SIZE(ports)];
	unsigned len = widths[fuzz_take(in, 1) % ARRAY_SIZE(widths)];
	bool is_write = fuzz_take(in, 1) & 1;
	uint8_t data[4];
	uint64_t before = vm.timing.userspace;

	fuzz_take_bytes(in, data, sizeof(data));
	if (is_write && port == COM1 + 1 && len == 1 && !(uart.lcr & 0x80)) {
		ier_written = true;
		ier_model = data[0] & 0x0f;
	}
	bool claimed = port_access(port, data, len, is_write);
	if (is_write)
		check_legacy_write(port, data, len, take_stop());
	else if (take_stop() != -1)
		FAIL("a read of port 0x%x stopped the VM", port);
	if (!before && vm.timing.userspace &&
	    !(is_write && port == LAYOUT_PORT_BOOT_MARKER && len == 1 && data[0] == 123))
		FAIL("userspace marked by a %u-byte %s of port 0x%x", len, is_write ? "write" : "read", port);
	if (!claimed)
		return;
	check_rtc(port, data, len, is_write);
	if (!is_write && port >= COM1 && port < COM1 + 8) {
		if (len == 1)
			check_uart_read(port - COM1, data[0]);
		else if (memcmp(data, "\xff\xff\xff\xff", len))
			FAIL("%u-byte UART read gave data", len);
	}
}

/* Console input: up to 1 KiB into the pipe (it may fill). */
static void op_feed(struct fuzz_input *in)
{
	uint8_t buf[1024];
	size_t n = (size_t)fuzz_take(in, 2) % sizeof(buf) + 1;

	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(fed + i);
	ssize_t w = write(pipe_wr, buf, n);
	if (w > 0)
		fed += (uint64_t)w;
}

/* The API's SendCtrlAltDel, between two guest accesses. */
static void op_ctrl_alt_del(void)
{
	unsigned before = legacy.kbd.len;
	int r = legacy_ctrl_alt_del(&legacy);

	if (r == 0 ? legacy.kbd.len != before + 4 : r != -ENOSPC || legacy.kbd.len != before)
		FAIL("Ctrl+Alt+Del: %d with %u bytes queued before, %u after", r, before,
		     legacy.kbd.len);
}

/* What the 8250 driver does to start receiving. */
static void op_driver_up(struct fuzz_input *in)
{
	outb(COM1 + 3, 0x03);
	outb(COM1 + 2, (uint8_t)(fuzz_take(in, 1) | 1));
	outb(COM1 + 4, 0x0b);
	outb(COM1 + 1, 0x05);
	ier_written = true;
	ier_model = 0x05;
}

/* The guest's receive handler: take what is there. */
static void op_drain(void)
{
	for (unsigned i = 0; i < 64 && (inb(COM1 + 5) & 1); i++) {
		if (uart.lcr & 0x80)
			break;
		inb(COM1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };

	if (!ready) {
		world_init();
		ready = true;
	}
	world_start();
	for (unsigned i = 0; i < MAX_OPS && in.n; i++) {
		switch (fuzz_take(&in, 1) % 9) {
		case 0: case 1: case 2: op_port(&in); break;
		case 3: op_feed(&in); break;
		case 4: event_loop_once(&loop, 0); break;
		case 5: op_driver_up(&in); break;
		case 6: op_drain(); break;
		case 7: op_ctrl_alt_del(); break;
		default: check_reading_resumes(); break;
		}
		check_input();
		check_i8042();
	}
	return 0;
}
