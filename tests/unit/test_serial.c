/*
 * Unit tests of the 16550 UART model and the legacy ports, driven through
 * the VM's port bus as a vCPU drives them, with console input from a pipe.
 * The VM has no KVM behind it (vm_fd -1: interrupt line changes fail
 * quietly). Cases named after a bug were found by tests/fuzz/fuzz_ports.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/state_io.h"
#include "vmm/acpi.h"
#include "vmm/acpi_pm.h"
#include "vmm/io_bus.h"
#include "vmm/layout.h"
#include "vmm/legacy.h"
#include "vmm/run_state.h"
#include "vmm/serial.h"
#include "vmm/vm.h"

#define COM1 LAYOUT_PORT_SERIAL

static struct vm vm;
static struct event_loop loop;
static struct serial uart;
static struct legacy_devices legacy;
static int in_wr = -1, in_rd = -1, out_fd = -1;

static void setup(void)
{
	int p[2];

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;
	CHECK_EQ(run_state_init(&vm.run_state), 0);
	CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	in_rd = p[0];
	in_wr = p[1];
	out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(serial_init(&uart, &vm, out_fd), 0);
	CHECK_EQ(legacy_init(&legacy, &vm), 0);
	CHECK_EQ(serial_attach_input(&uart, &loop, in_rd), 0);
}

static void teardown(void)
{
	serial_destroy(&uart);
	legacy_destroy(&legacy);
	event_loop_destroy(&loop);
	close(in_rd);
	close(in_wr);
	close(out_fd);
	run_state_destroy(&vm.run_state);
}

static void port_io(uint16_t port, void *data, unsigned len, bool is_write)
{
	struct io_handler *h = io_bus_find(&vm.pio, port, len);

	CHECK(h != NULL);
	if (h)
		h->access(h, port - h->base, data, len, is_write);
}

static void outb(uint16_t port, uint8_t v) { port_io(port, &v, 1, true); }
static uint8_t inb(uint16_t port) { uint8_t v = 0; port_io(port, &v, 1, false); return v; }

static void feed(unsigned n)
{
	uint8_t buf[8192];

	for (unsigned i = 0; i < n; i++)
		buf[i] = (uint8_t)('a' + i % 26);
	CHECK_EQ(write(in_wr, buf, n), (ssize_t)n);
	for (unsigned i = 0; i < 40; i++)
		event_loop_once(&loop, 0);
}

/* Input before the guest enables receive interrupts waits host-side. */
static void test_input_held_until_rx_enabled(void)
{
	setup();
	outb(COM1 + 2, 0x07);                /* FIFO on, cleared */
	feed(100);
	CHECK_EQ(uart.rx_count, 0);
	CHECK_EQ(uart.in_count, 100);
	CHECK_EQ(inb(COM1 + 5) & 1, 0);      /* nothing to read yet */
	outb(COM1 + 1, 0x01);                /* the driver listens */
	CHECK_EQ(uart.rx_count, SERIAL_FIFO_SIZE);
	unsigned got = 0;
	bool in_order = true;
	while ((inb(COM1 + 5) & 1) && got < 200) {
		in_order &= inb(COM1) == (uint8_t)('a' + got % 26);
		got++;
	}
	CHECK_EQ(got, 100);
	CHECK(in_order);
	CHECK_EQ(inb(COM1 + 5) & 0x02, 0);   /* no overrun */
	teardown();
}

/* More input than the host-side buffer: kvmini stops reading the pipe, and
 * reads again as the guest drains. */
static void test_input_backpressure(void)
{
	setup();
	feed(SERIAL_INPUT_BUF + 1000);
	CHECK_EQ(uart.in_count, SERIAL_INPUT_BUF);
	CHECK_EQ(uart.in_bytes, SERIAL_INPUT_BUF);
	outb(COM1 + 2, 0x01);
	outb(COM1 + 1, 0x01);
	unsigned got = 0;
	for (unsigned round = 0; round < 1000 && got < SERIAL_INPUT_BUF + 1000; round++) {
		while (inb(COM1 + 5) & 1) {
			CHECK_EQ(inb(COM1), (uint8_t)('a' + got % 26));
			got++;
		}
		event_loop_once(&loop, 0);
	}
	CHECK_EQ(got, SERIAL_INPUT_BUF + 1000);
	teardown();
}

/* Bug (fuzz_ports): turning the FIFO off with input buffered left up to 16
 * bytes in a receiver that holds one, because the FIFO was refilled before
 * the mode changed. */
static void test_fifo_off_refills_to_one_byte(void)
{
	setup();
	outb(COM1 + 2, 0x01);
	outb(COM1 + 1, 0x01);
	feed(40);
	CHECK_EQ(uart.rx_count, SERIAL_FIFO_SIZE);
	outb(COM1 + 2, 0x00);                /* FIFO off: the FIFO is emptied */
	CHECK_EQ(uart.rx_count, 1);
	CHECK_EQ(uart.in_count, 40 - SERIAL_FIFO_SIZE - 1);
	/* And on again: emptied, then filled to its full size at once. */
	outb(COM1 + 2, 0x01);
	CHECK_EQ(uart.rx_count, SERIAL_FIFO_SIZE);
	CHECK_EQ(uart.in_count, 40 - 2 * SERIAL_FIFO_SIZE - 1);
	teardown();
}

/* isa-debug-exit: a write of v ends the VM with (v << 1) | 1. */
static void test_debug_exit_status(void)
{
	uint16_t w = 0x1234;

	setup();
	outb(LAYOUT_PORT_DEBUG_EXIT, 0);
	CHECK(run_state_stop_requested(&vm.run_state));
	CHECK_EQ(vm.run_state.exit_status, 1);
	vm.run_state.stopping = 0;
	outb(LAYOUT_PORT_DEBUG_EXIT, 0x7f);
	CHECK_EQ(vm.run_state.exit_status, 0xff);
	vm.run_state.stopping = 0;
	port_io(LAYOUT_PORT_DEBUG_EXIT, &w, 2, true);
	CHECK_EQ(vm.run_state.exit_status, 0x69);
	CHECK(strstr(vm.run_state.exit_reason, "0x1234") != NULL);
	teardown();
}

/* The boot marker counts a byte write of 123 only. */
static void test_boot_marker(void)
{
	setup();
	outb(LAYOUT_PORT_BOOT_MARKER, 122);
	CHECK(io_bus_find(&vm.pio, LAYOUT_PORT_BOOT_MARKER, 2) == NULL);   /* one port wide */
	CHECK_EQ(inb(LAYOUT_PORT_BOOT_MARKER), 0xff);
	CHECK_EQ(vm.timing.userspace, 0);
	CHECK_EQ(legacy.boot_marker_ignored, 1);
	outb(LAYOUT_PORT_BOOT_MARKER, 123);
	CHECK(vm.timing.userspace != 0);
	CHECK_EQ(legacy.boot_marker_ignored, 1);
	CHECK(!run_state_stop_requested(&vm.run_state));
	teardown();
}

/* ACPI sleep control: only SLP_EN with the \_S5 type powers off (status
 * 0); sleep status always reads WAK_STS. */
static void test_acpi_power_off(void)
{
	struct acpi_pm pm;
	uint8_t s5 = (uint8_t)(ACPI_S5_SLP_TYP << 2);

	setup();
	CHECK_EQ(acpi_pm_init(&pm, &vm), 0);
	CHECK_EQ(inb(LAYOUT_PORT_ACPI_SLEEP_STS), ACPI_PM_WAK_STS);
	outb(LAYOUT_PORT_ACPI_SLEEP_CTL, s5);                            /* no SLP_EN */
	outb(LAYOUT_PORT_ACPI_SLEEP_CTL, (uint8_t)((3u << 2) | ACPI_PM_SLP_EN));   /* S3 */
	outb(LAYOUT_PORT_ACPI_SLEEP_STS, ACPI_PM_WAK_STS);
	CHECK(!run_state_stop_requested(&vm.run_state));
	vm.run_state.exit_status = -1;
	outb(LAYOUT_PORT_ACPI_SLEEP_CTL, (uint8_t)(s5 | ACPI_PM_SLP_EN));
	CHECK(run_state_stop_requested(&vm.run_state));
	CHECK_EQ(vm.run_state.exit_status, 0);
	CHECK(strstr(vm.run_state.exit_reason, "S5") != NULL);
	teardown();
}

/* --- snapshot state -------------------------------------------------------- */

/* FIFO on (trigger 14), receive interrupts on, 40 bytes typed: 16 in the
 * FIFO, 24 buffered host-side, a scratch value and a CMOS byte; saved,
 * loaded into fresh devices, every byte comes out in order. */
static void test_state_roundtrip(void)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct state_reader r;

	setup();
	state_writer_init(&w);
	outb(COM1 + 2, 0xc1);
	outb(COM1 + 1, 0x01);
	outb(COM1 + 7, 0x5a);
	outb(0x70, 0x40);
	outb(0x71, 0x99);
	feed(40);
	CHECK_EQ(uart.rx_count, 16);
	CHECK_EQ(uart.in_count, 24);
	CHECK_EQ(inb(COM1), 'a');    /* the heads move off 0 */
	serial_state_save(&uart, &w);
	legacy_state_save(&legacy, &w);
	teardown();

	setup();
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(serial_state_load(&uart, &r), 0);
	CHECK_EQ(legacy_state_load(&legacy, &r), 0);
	CHECK(state_at_end(&r));
	CHECK_EQ(inb(COM1 + 7), 0x5a);
	CHECK_EQ(inb(0x71), 0x99);   /* the index came back too */
	CHECK_EQ(uart.rx_bytes, 17);
	for (unsigned i = 1; i < 40; i++)
		CHECK_EQ(inb(COM1), 'a' + i % 26);
	CHECK_EQ(inb(COM1 + 5) & 0x01, 0);
	state_writer_free(&w);
	teardown();
}

/* A bad section changes nothing: a trigger level the FCR cannot set,
 * a flag that is neither 0 nor 1, reserved IER bits, a CMOS index past
 * 127, a short section. */
static void check_uart_refused(unsigned at, uint8_t value, const char *want)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct state_reader r;

	setup();
	state_writer_init(&w);
	outb(COM1 + 7, 0x33);
	serial_state_save(&uart, &w);
	outb(COM1 + 7, 0x44);
	w.buf[8 + at] = value;
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(serial_state_load(&uart, &r), -EINVAL);
	CHECK(strstr(eb.msg, want) != NULL);
	CHECK_EQ(inb(COM1 + 7), 0x44);
	state_writer_free(&w);
	teardown();
}

static void test_state_refusals(void)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct state_reader r;

	check_uart_refused(9, 3, "FIFO trigger level 3");      /* after 8 registers and the FIFO flag */
	check_uart_refused(11, 2, "a flag of value 2");
	check_uart_refused(0, 0x10, "IER 0x10 has reserved bits");
	setup();
	state_writer_init(&w);
	legacy_state_save(&legacy, &w);
	w.buf[8] = 0x80;
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(legacy_state_load(&legacy, &r), -EINVAL);
	CHECK(strstr(eb.msg, "RTC index 0x80") != NULL);
	w.buf[8] = 0;                          /* the cut falls in the i8042's section */
	state_reader_init(&r, w.buf, w.len - 1, &eb);
	CHECK_EQ(legacy_state_load(&legacy, &r), -EINVAL);
	CHECK(strstr(eb.msg, "truncated") != NULL);
	state_writer_free(&w);
	teardown();
}

int main(void)
{
	log_threshold = LOG_ERROR;
	RUN_TEST(test_input_held_until_rx_enabled);
	RUN_TEST(test_input_backpressure);
	RUN_TEST(test_fifo_off_refills_to_one_byte);
	RUN_TEST(test_debug_exit_status);
	RUN_TEST(test_boot_marker);
	RUN_TEST(test_acpi_power_off);
	RUN_TEST(test_state_roundtrip);
	RUN_TEST(test_state_refusals);
	return CHECK_DONE();
}
