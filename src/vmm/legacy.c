/*
 * Legacy ports: i8042 (the model is i8042.c), debug exit, boot marker, CMOS RTC, POST. See legacy.h.
 */
#include "vmm/legacy.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"
#include "vmm/layout.h"

#define RTC_SECONDS   0x00u
#define RTC_MINUTES   0x02u
#define RTC_HOURS     0x04u
#define RTC_WEEKDAY   0x06u
#define RTC_MDAY      0x07u
#define RTC_MONTH     0x08u
#define RTC_YEAR      0x09u
#define RTC_STATUS_A  0x0au
#define RTC_STATUS_B  0x0bu
#define RTC_STATUS_C  0x0cu
#define RTC_STATUS_D  0x0du
#define RTC_CENTURY   0x32u

#define RTC_A_DIVIDER_32K  0x26u    /* 32.768 kHz time base, 1024 Hz rate; UIP clear */
#define RTC_B_24H          0x02u    /* 24-hour mode, BCD, no interrupts */
#define RTC_D_VALID        0x80u    /* battery good, time valid */

static void fill_read(void *data, unsigned len, uint8_t value)
{
	memset(data, value, len);
}

/* IRQ 1 is edge-triggered (the MP table and ACPI's default for ISA
 * lines), so a byte's interrupt is a pulse. Called with i8042_lock held:
 * a vCPU's read and a Ctrl+Alt+Del from the API pulse the same line, and
 * two pulses interleaved (up, up, down, down) would be one edge, one
 * byte left without its interrupt. */
static void i8042_pulse_locked(struct legacy_devices *l, unsigned effects)
{
	if (effects & I8042_IRQ) {
		vm_set_irq_line(l->vm, I8042_IRQ_LINE, true);
		vm_set_irq_line(l->vm, I8042_IRQ_LINE, false);
	}
}

/* Both ports are byte-wide; a wider access reads all ones, writes nothing. */
static void i8042_access(struct legacy_devices *l, unsigned port, void *data, unsigned len,
			 bool is_write)
{
	unsigned effects;

	if (len != 1) {
		if (!is_write)
			fill_read(data, len, 0xff);
		return;
	}
	pthread_mutex_lock(&l->i8042_lock);
	uint8_t ctr = l->kbd.ctr;
	if (is_write)
		effects = i8042_write(&l->kbd, port, *(uint8_t *)data);
	else
		effects = i8042_read(&l->kbd, port, data);
	uint8_t ctr_now = l->kbd.ctr;
	i8042_pulse_locked(l, effects);
	pthread_mutex_unlock(&l->i8042_lock);
	/* Whether keys can reach the guest at all: said when it changes (a
	 * few times while the guest probes), so a Ctrl+Alt+Del that seems lost
	 * can be explained from the log. */
	if ((ctr ^ ctr_now) & (I8042_CTR_KBD_INT | I8042_CTR_KBD_DIS))
		log_debug("i8042: command byte 0x%02x: keyboard interrupt %s, keyboard %s", ctr_now,
			  ctr_now & I8042_CTR_KBD_INT ? "on" : "off",
			  ctr_now & I8042_CTR_KBD_DIS ? "disabled" : "enabled");
	if (effects & I8042_RESET)
		run_state_request_stop(&l->vm->run_state, VM_EXIT_OK, "guest rebooted (i8042 reset)");
}

static void i8042_data_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			      bool is_write)
{
	i8042_access(container_of(h, struct legacy_devices, i8042_data), I8042_PORT_DATA, data,
		     len, is_write);
}

static void i8042_cmd_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			     bool is_write)
{
	i8042_access(container_of(h, struct legacy_devices, i8042_cmd), I8042_PORT_STATUS, data,
		     len, is_write);
}

/* Where IRQ 1 goes in the guest's IOAPIC, at debug level: the keys of a
 * Ctrl+Alt+Del the guest never saw are explained by a masked pin. */
static void log_ioapic_pin(struct legacy_devices *l)
{
	uint64_t e;
	bool irr;

	if (log_threshold < LOG_DEBUG || vm_ioapic_pin(l->vm, I8042_IRQ_LINE, &e, &irr) < 0)
		return;
	log_debug("i8042: IOAPIC pin %u: vector %u, %s, %s, %s, remote IRR %u, IRR %u, "
		  "destination %u (%s), delivery mode %u",
		  I8042_IRQ_LINE, (unsigned)(e & 0xff), e >> 16 & 1 ? "masked" : "unmasked",
		  e >> 15 & 1 ? "level" : "edge", e >> 13 & 1 ? "active low" : "active high",
		  (unsigned)(e >> 14 & 1), irr, (unsigned)(e >> 56), e >> 11 & 1 ? "logical" : "physical",
		  (unsigned)(e >> 8 & 7));
}

int legacy_ctrl_alt_del(struct legacy_devices *l)
{
	pthread_mutex_lock(&l->i8042_lock);
	int r = i8042_ctrl_alt_del(&l->kbd);
	uint8_t ctr = l->kbd.ctr;
	if (r > 0)
		i8042_pulse_locked(l, (unsigned)r);
	pthread_mutex_unlock(&l->i8042_lock);
	if (r >= 0 && !(ctr & I8042_CTR_KBD_INT))
		log_warn("Ctrl+Alt+Del: the keys wait in the i8042; the guest has its keyboard "
			 "interrupt off (command byte 0x%02x)", ctr);
	log_ioapic_pin(l);
	return r < 0 ? r : 0;
}

/* isa-debug-exit, as QEMU defines it: a write of v (1 or 2 bytes, anywhere
 * in the 2-port window) ends the VM with status (v << 1) | 1. The status is
 * always odd, so a guest can never fake a clean exit (0). */
static void debug_exit_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			      bool is_write)
{
	struct legacy_devices *l = container_of(h, struct legacy_devices, debug_exit);
	uint16_t v = 0;

	if (!is_write) {
		fill_read(data, len, 0xff);
		return;
	}
	memcpy(&v, data, MIN(len, (unsigned)sizeof(v)));
	unsigned status = ((unsigned)v << 1) | 1u;
	run_state_request_stop(&l->vm->run_state, (int)(status & 0xffu),
			       "guest wrote 0x%x to the debug exit port (status (0x%x << 1) | 1 = %u)",
			       v, v, status);
}

/* Boot marker (Firecracker's convention): the guest's init writes 123 to
 * port 0x3f0 when userspace is up; --boot-timing reports when. Other
 * values and reads (all ones) do nothing. */
static void boot_marker_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			       bool is_write)
{
	struct legacy_devices *l = container_of(h, struct legacy_devices, boot_marker);

	if (!is_write) {
		fill_read(data, len, 0xff);
		return;
	}
	if (len == 1 && *(uint8_t *)data == LAYOUT_BOOT_MARKER_VALUE)
		vm_timing_mark(&l->vm->timing.userspace);
	else
		fetch_add_relaxed(&l->boot_marker_ignored, 1);
}

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* The clock registers read the host's time at the moment of the read. */
static uint8_t rtc_read(struct legacy_devices *l, uint8_t index)
{
	struct timespec ts;
	struct tm tm;

	/* clock_gettime, not time(): where the vDSO falls back to a system
	 * call, only clock_gettime is in the vCPU's seccomp list. */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	switch (index) {
	case RTC_SECONDS: return bcd(MIN(tm.tm_sec, 59));
	case RTC_MINUTES: return bcd(tm.tm_min);
	case RTC_HOURS:   return bcd(tm.tm_hour);
	case RTC_WEEKDAY: return bcd(tm.tm_wday + 1);
	case RTC_MDAY:    return bcd(tm.tm_mday);
	case RTC_MONTH:   return bcd(tm.tm_mon + 1);
	case RTC_YEAR:    return bcd(tm.tm_year % 100);
	case RTC_CENTURY: return bcd((tm.tm_year + 1900) / 100);
	case RTC_STATUS_A: return RTC_A_DIVIDER_32K;
	case RTC_STATUS_B: return RTC_B_24H;
	case RTC_STATUS_C: return 0;
	case RTC_STATUS_D: return RTC_D_VALID;
	default:          return l->cmos[index];
	}
}

static bool rtc_is_clock(uint8_t index)
{
	return index <= RTC_STATUS_D || index == RTC_CENTURY;
}

static void rtc_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
		       bool is_write)
{
	struct legacy_devices *l = container_of(h, struct legacy_devices, rtc);
	uint8_t *byte = data;

	if (len != 1) {
		if (!is_write)
			fill_read(data, len, 0xff);
		return;
	}
	pthread_mutex_lock(&l->rtc_lock);
	if (offset == 0) {
		/* Bit 7 is the NMI mask; the index is the low 7 bits. */
		if (is_write)
			l->rtc_index = *byte & 0x7fu;
		else
			*byte = 0xff;
	} else if (is_write) {
		/* Setting the clock is ignored: the guest always sees host time. */
		if (!rtc_is_clock(l->rtc_index))
			l->cmos[l->rtc_index] = *byte;
	} else {
		*byte = rtc_read(l, l->rtc_index);
	}
	pthread_mutex_unlock(&l->rtc_lock);
}

static void sink_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			bool is_write)
{
	if (!is_write)
		fill_read(data, len, 0xff);
}

int legacy_init(struct legacy_devices *l, struct vm *vm)
{
	/* glibc's gmtime_r loads the time zone data (/etc/localtime) on its
	 * first call: done now, so a vCPU's first clock read (rtc_read) opens
	 * no file under its seccomp filter. */
	tzset();
	memset(l, 0, sizeof(*l));
	l->vm = vm;
	i8042_reset(&l->kbd);
	int r = -pthread_mutex_init(&l->rtc_lock, NULL);
	if (r < 0)
		return r;
	r = -pthread_mutex_init(&l->i8042_lock, NULL);
	if (r < 0) {
		pthread_mutex_destroy(&l->rtc_lock);
		return r;
	}
	l->i8042_data = (struct io_handler){ I8042_PORT_DATA, 1, i8042_data_access, "i8042 data" };
	l->i8042_cmd = (struct io_handler){ I8042_PORT_STATUS, 1, i8042_cmd_access,
					    "i8042 command" };
	l->debug_exit = (struct io_handler){ LAYOUT_PORT_DEBUG_EXIT, 2, debug_exit_access, "debug exit" };
	l->boot_marker = (struct io_handler){ LAYOUT_PORT_BOOT_MARKER, 1, boot_marker_access,
					      "boot marker" };
	l->rtc = (struct io_handler){ 0x70, 2, rtc_access, "rtc" };
	l->post = (struct io_handler){ 0x80, 1, sink_access, "post" };
	l->delay = (struct io_handler){ 0xed, 1, sink_access, "io delay" };
	struct io_handler *all[] = { &l->i8042_data, &l->i8042_cmd, &l->debug_exit, &l->rtc,
				     &l->post, &l->delay, &l->boot_marker };
	for (unsigned i = 0; !r && i < ARRAY_SIZE(all); i++)
		r = io_bus_add(&vm->pio, all[i]);
	return r;
}

void legacy_destroy(struct legacy_devices *l)
{
	pthread_mutex_destroy(&l->rtc_lock);
	pthread_mutex_destroy(&l->i8042_lock);
}

/* --- snapshot state -------------------------------------------------------- */

void legacy_state_save(struct legacy_devices *l, struct state_writer *w)
{
	pthread_mutex_lock(&l->rtc_lock);
	state_begin(w, "CMOS");
	state_put_u8(w, l->rtc_index);
	state_put_bytes(w, l->cmos, sizeof(l->cmos));
	state_end(w);
	pthread_mutex_unlock(&l->rtc_lock);
	pthread_mutex_lock(&l->i8042_lock);
	i8042_state_save(&l->kbd, w);
	pthread_mutex_unlock(&l->i8042_lock);
}

/* A snapshot from before the keyboard controller has no "I8K2": the
 * controller starts at power-on state, which is what that VM had. */
static int i8042_load(struct legacy_devices *l, struct state_reader *r)
{
	struct i8042 k = l->kbd;
	char tag[5];

	state_peek_tag(r, tag);
	if (strcmp(tag, "I8K2"))
		i8042_reset(&k);
	else if (i8042_state_load(&k, r) < 0)
		return -EINVAL;
	pthread_mutex_lock(&l->i8042_lock);
	l->kbd = k;
	pthread_mutex_unlock(&l->i8042_lock);
	return 0;
}

int legacy_state_load(struct legacy_devices *l, struct state_reader *r)
{
	struct state_reader sec;
	uint8_t cmos[sizeof(l->cmos)];

	if (!state_section(r, "CMOS", &sec))
		return -EINVAL;
	uint8_t index = state_get_u8(&sec);
	state_get_bytes(&sec, cmos, sizeof(cmos));
	if (!sec.failed && index > 0x7fu)
		state_fail(&sec, "RTC index 0x%x beyond the 128 bytes of CMOS", index);
	if (!state_section_done(r, &sec) || i8042_load(l, r) < 0)
		return -EINVAL;
	pthread_mutex_lock(&l->rtc_lock);
	l->rtc_index = index;
	memcpy(l->cmos, cmos, sizeof(cmos));
	pthread_mutex_unlock(&l->rtc_lock);
	return 0;
}
