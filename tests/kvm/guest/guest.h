/*
 * Runtime of the kvmini test guest: port and MMIO access, the UART, the
 * IOAPIC and local APIC, an IDT, a tick counter, and reporting. Everything
 * runs on the boot CPU with a flat identity map.
 */
#ifndef KVMINI_TEST_GUEST_H
#define KVMINI_TEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PORT_COM1 0x3f8
#define PORT_DEBUG_EXIT 0x501
#define PORT_BOOT_MARKER 0x3f0
#define IOAPIC_BASE 0xfec00000ul
#define LAPIC_BASE 0xfee00000ul
#define VEC_TIMER 240
#define VEC_UART 36                  /* 32 + IRQ 4 */
#define VEC_DEV_BASE 37              /* 32 + IRQ 5 onwards */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)addr; }
static inline uint8_t mmio_read8(uint64_t addr) { return *(volatile uint8_t *)addr; }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti;hlt: the interrupt shadow makes the pair atomic, so a wake-up that
 * arrives between the check and the halt is not lost. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

void uart_init(void);
void putc_raw(char c);
void puts_raw(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Interrupts: handlers per vector, IOAPIC routing, LAPIC. */
typedef void (*irq_fn)(unsigned vector);
void irq_init(void);
void irq_set_handler(unsigned vector, irq_fn fn);
void ioapic_route(unsigned pin, unsigned vector);
void ioapic_mask(unsigned pin);
void lapic_eoi(void);

/* What an interrupt stub saved: the registers, then the CPU's frame. */
struct isr_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
/* Called first for exceptions and vector 128; true: handled, return to @f. */
extern bool (*frame_hook)(struct isr_frame *f);

/* Ticks of about 10 ms from the LAPIC timer (0 if it does not run). */
extern volatile uint64_t ticks;
/* Halt until @cond(arg) holds or about @ms milliseconds pass; true if it held. */
bool wait_for(bool (*cond)(void *), void *arg, unsigned ms);

/* Checks: print "PASS: kvm-guest <test>: <what>" or FAIL, count failures. */
extern const char *test_name;
extern unsigned failures;
void check(bool ok, const char *what);
#define CHECK_EQ(a, b, what) check_eq((uint64_t)(a), (uint64_t)(b), what)
void check_eq(uint64_t got, uint64_t want, const char *what);

/* End the VM through the debug exit port: exit status (code << 1) | 1. */
void __attribute__((noreturn)) guest_exit(unsigned code);
void __attribute__((noreturn)) guest_reboot(void);

/* Command line: value of "key=" (up to a space) copied into @out, or false. */
bool cmdline_get(const char *key, char *out, size_t len);
uint64_t parse_hex(const char *s, const char **end);
uint64_t parse_dec(const char *s, const char **end);

/* The first virtio_mmio.device=4K@ADDR:IRQ on the command line. */
bool find_virtio_device(uint64_t *base, unsigned *irq, unsigned index);

#endif
