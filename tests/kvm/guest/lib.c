/* Runtime of the kvmini test guest (see guest.h). */
#include <stdarg.h>

#include "guest.h"

const char *test_name = "?";
unsigned failures;
volatile uint64_t ticks;
static const char *cmdline;

/* --- libc bits the compiler may call -------------------------------------- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

static const char *find_str(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (!memcmp(hay, needle, n))
			return hay;
	return NULL;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* --- UART (polled output) ------------------------------------------------- */

void uart_init(void)
{
	outb(PORT_COM1 + 1, 0);          /* IER: no interrupts */
	outb(PORT_COM1 + 3, 0x80);       /* DLAB */
	outb(PORT_COM1 + 0, 1);          /* 115200 baud */
	outb(PORT_COM1 + 1, 0);
	outb(PORT_COM1 + 3, 0x03);       /* 8N1 */
	outb(PORT_COM1 + 2, 0x07);       /* FIFO on, cleared */
	outb(PORT_COM1 + 4, 0x0b);       /* DTR, RTS, OUT2 */
}

void putc_raw(char c)
{
	while (!(inb(PORT_COM1 + 5) & 0x20))
		;
	outb(PORT_COM1, (uint8_t)c);
}

void puts_raw(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_raw('\r');
		putc_raw(*s++);
	}
}

static void put_num(uint64_t v, unsigned base, int width, char pad)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n < width && n < (int)sizeof(buf))
		buf[n++] = pad;
	while (n)
		putc_raw(buf[--n]);
}

/* %s %c %d %u %x %lx %lu %llx %llu %p, with an optional 0 and width. */
void printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			if (*fmt == '\n')
				putc_raw('\r');
			putc_raw(*fmt);
			continue;
		}
		char pad = ' ';
		int width = 0, lng = 0;
		if (*++fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 's': puts_raw(va_arg(ap, const char *)); break;
		case 'c': putc_raw((char)va_arg(ap, int)); break;
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				putc_raw('-');
				v = -v;
			}
			put_num((uint64_t)v, 10, width, pad);
			break;
		}
		case 'u': put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad); break;
		case 'x': put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad); break;
		case 'p': puts_raw("0x"); put_num((uint64_t)va_arg(ap, void *), 16, width, pad); break;
		case '%': putc_raw('%'); break;
		default: putc_raw('?'); break;
		}
	}
	va_end(ap);
}

/* --- checks and exit --------------------------------------------------------- */

void check(bool ok, const char *what)
{
	printf("%s: kvm-guest %s: %s\n", ok ? "PASS" : "FAIL", test_name, what);
	if (!ok)
		failures++;
}

void check_eq(uint64_t got, uint64_t want, const char *what)
{
	if (got == want) {
		check(true, what);
		return;
	}
	printf("FAIL: kvm-guest %s: %s (got 0x%lx, want 0x%lx)\n", test_name, what, got, want);
	failures++;
}

void guest_exit(unsigned code)
{
	outb(PORT_DEBUG_EXIT, (uint8_t)code);
	for (;;) {
		cli();
		__asm__ volatile("hlt");
	}
}

void guest_reboot(void)
{
	/* Wait for the controller's input buffer, then pulse the reset line. */
	while (inb(0x64) & 0x02)
		;
	outb(0x64, 0xfe);
	for (;;) {
		cli();
		__asm__ volatile("hlt");
	}
}

/* --- interrupts ---------------------------------------------------------------- */

struct idt_entry {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

extern const uint64_t isr_table[];
static struct idt_entry idt[256] __attribute__((aligned(16)));
static irq_fn handlers[256];
bool (*frame_hook)(struct isr_frame *f);

void isr_handler(struct isr_frame *f);
void isr_handler(struct isr_frame *f)
{
	if ((f->vector < 32 || f->vector == 128) && frame_hook && frame_hook(f))
		return;
	if (f->vector < 32) {
		printf("FAIL: kvm-guest %s: exception %lu (error 0x%lx) at rip 0x%lx cs 0x%lx\n",
		       test_name, f->vector, f->error, f->rip, f->cs);
		guest_exit(0x7f);
	}
	if (handlers[f->vector & 0xff])
		handlers[f->vector & 0xff]((unsigned)f->vector);
	if (f->vector != 255)
		lapic_eoi();
}

static void lapic_write(unsigned reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }

void lapic_eoi(void)
{
	lapic_write(0xb0, 0);
}

static void on_timer(unsigned vector)
{
	ticks++;
}

void irq_set_handler(unsigned vector, irq_fn fn)
{
	handlers[vector & 0xff] = fn;
}

static void ioapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

/* Edge-triggered, active high, fixed delivery to APIC 0. */
void ioapic_route(unsigned pin, unsigned vector)
{
	ioapic_write(0x11 + 2 * pin, 0);
	ioapic_write(0x10 + 2 * pin, vector);
}

void ioapic_mask(unsigned pin)
{
	ioapic_write(0x10 + 2 * pin, 1u << 16);
}

void irq_init(void)
{
	struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr;

	for (const uint64_t *e = isr_table; e[0] != (uint64_t)-1; e += 2) {
		struct idt_entry *d = &idt[e[0]];
		d->off_lo = (uint16_t)e[1];
		d->off_mid = (uint16_t)(e[1] >> 16);
		d->off_hi = (uint32_t)(e[1] >> 32);
		d->sel = 0x10;
		d->type = 0x8e;          /* present, DPL 0, 64-bit interrupt gate */
		if (e[0] == 128)
			d->type = 0xee;  /* int $0x80 allowed from CPL3 */
	}
	idtr.limit = sizeof(idt) - 1;
	idtr.base = (uint64_t)idt;
	__asm__ volatile("lidt %0" : : "m"(idtr));
	/* The PIC stays out of the way: all its lines masked. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x100 | 0xff);     /* enable, spurious vector 255 */
	lapic_write(0x80, 0);                /* TPR: accept everything */
	lapic_write(0x350, 1u << 16);        /* LINT0 (PIC) masked */
	irq_set_handler(VEC_TIMER, on_timer);
	lapic_write(0x3e0, 0xb);             /* divide by 1 */
	lapic_write(0x320, (1u << 17) | VEC_TIMER);   /* periodic */
	lapic_write(0x380, 10000000);        /* 10 ms at KVM's 1 GHz APIC bus */
}

bool wait_for(bool (*cond)(void *), void *arg, unsigned ms)
{
	uint64_t end = ticks + ms / 10 + 1;

	for (;;) {
		cli();
		if (cond(arg)) {
			sti();
			return true;
		}
		if (ticks >= end) {
			sti();
			return false;
		}
		sti_hlt();
	}
}

/* --- command line --------------------------------------------------------------- */

void guest_set_cmdline(const char *c);
void guest_set_cmdline(const char *c)
{
	cmdline = c;
}

bool cmdline_get(const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	for (const char *p = cmdline; p && *p; ) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, key, klen) && p[klen] == '=') {
			p += klen + 1;
			size_t n = 0;
			while (p[n] && p[n] != ' ' && n + 1 < len) {
				out[n] = p[n];
				n++;
			}
			out[n] = 0;
			return true;
		}
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

uint64_t parse_hex(const char *s, const char **end)
{
	uint64_t v = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9') d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f') d = (unsigned)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F') d = (unsigned)(*s - 'A' + 10);
		else break;
		v = v * 16 + d;
	}
	if (end)
		*end = s;
	return v;
}

uint64_t parse_dec(const char *s, const char **end)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	if (end)
		*end = s;
	return v;
}

/* Entries look like virtio_mmio.device=4K@0xd0000000:5 */
bool find_virtio_device(uint64_t *base, unsigned *irq, unsigned index)
{
	static const char key[] = "virtio_mmio.device=";
	const char *p = cmdline;

	while (p && (p = find_str(p, key))) {
		const char *at = p + sizeof(key) - 1;
		p = at;
		while (*at && *at != '@' && *at != ' ')
			at++;
		if (*at != '@')
			continue;
		if (index--)
			continue;
		const char *end;
		*base = parse_hex(at + 1, &end);
		if (*end != ':')
			return false;
		*irq = (unsigned)parse_dec(end + 1, NULL);
		return true;
	}
	return false;
}
