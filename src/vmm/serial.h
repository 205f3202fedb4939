/*
 * A 16550A UART (COM1: port 0x3f8, IRQ 4) for the guest's console.
 *
 * Register model: RBR/THR, IER, IIR/FCR, LCR (with DLAB and the divisor
 * latch), MCR (loopback included), LSR, MSR and SCR, a 16-byte receive
 * FIFO with the FCR trigger levels, and the four interrupt sources in the
 * 16550's priority order (line status, received data / timeout, THR empty,
 * modem status). Transmission is instantaneous: a byte written to THR goes
 * to the output fd (or, in loopback mode, back into the receive FIFO) and
 * THR is empty again at once, so THRE interrupts behave as the Linux 8250
 * driver's probes expect. The interrupt line follows "any enabled source
 * pending" and is driven through KVM_IRQ_LINE, edges included.
 *
 * Threads: register accesses come from vCPU threads; console input is read
 * on the event-loop thread; both take @lock.
 *
 * Console input goes through a bounded host-side buffer (SERIAL_INPUT_BUF
 * bytes) into the FIFO. Bytes move into the FIFO only once the guest has
 * enabled receive interrupts (its driver is up: nothing typed or piped early
 * is lost to the FIFO resets of a driver probe, nor overruns the FIFO), and
 * not in loopback mode; the vCPU that drains the FIFO refills it from the
 * buffer. No byte is ever dropped: when the buffer is full the loop stops
 * reading the input fd (what is unread stays in the pipe or terminal), and a
 * vCPU that makes room writes room_fd to have the loop read again. Input is
 * read (and the console escape seen) even before the guest listens.
 *
 * A terminal on input is put in raw mode (restored by serial_destroy), so
 * keys reach the guest; Ctrl-A x ends the VM, Ctrl-A Ctrl-A sends Ctrl-A.
 */
#ifndef KVMINI_VMM_SERIAL_H
#define KVMINI_VMM_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <termios.h>

#include "core/event_loop.h"
#include "core/state_io.h"
#include "vmm/io_bus.h"
#include "vmm/vm.h"

#define SERIAL_FIFO_SIZE 16u
#define SERIAL_INPUT_BUF 4096u       /* host-side console input buffer */

struct serial {
	struct io_handler io;
	struct vm *vm;
	unsigned irq;
	int out_fd;

	pthread_mutex_t lock;
	/* Registers; @lock. */
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool fifo_enabled;
	uint8_t rx_trigger;          /* bytes for a received-data interrupt */
	bool thr_pending;            /* THR-empty interrupt raised, not yet acknowledged */
	uint8_t rx[SERIAL_FIFO_SIZE];
	unsigned rx_head, rx_count;
	bool irq_level;              /* what the line was last driven to */
	bool rx_open;                /* the guest enabled receive interrupts once */

	/* Console input (event-loop thread, except where noted). */
	struct event_loop *loop;
	int in_fd;                   /* -1: no input */
	struct event_source in_src;
	bool in_paused;              /* @lock: input buffer full, input not watched */
	uint8_t in_buf[SERIAL_INPUT_BUF];   /* @lock: read, not yet in the FIFO */
	unsigned in_head, in_count;  /* @lock */
	int room_fd;                 /* eventfd: vCPU -> loop, FIFO has room again */
	struct event_source room_src;
	bool escape;                 /* Ctrl-A seen */
	bool tty_raw;
	struct termios saved_tty;

	unsigned init_pos;           /* @lock: bytes of "Run /init" matched so far */
	bool init_seen;              /* @lock */

	uint64_t tx_bytes, rx_bytes; /* @lock */
	uint64_t in_bytes;           /* @lock: console bytes read from the input fd */
};

/* Register the UART on @vm's port bus; output goes to @out_fd. */
int serial_init(struct serial *s, struct vm *vm, int out_fd);

/* Feed the guest from @in_fd (watched on @loop). A terminal is put in raw
 * mode. Returns 0, or -errno; input that cannot be polled (a regular file,
 * /dev/null) is ignored with a debug message and 0. */
int serial_attach_input(struct serial *s, struct event_loop *loop, int in_fd);

/* Stop watching input, restore the terminal. */
void serial_destroy(struct serial *s);

/*
 * Snapshot state (serial_state.c), section "UART": the registers, the FIFO,
 * thr_pending, irq_level, rx_open, the console input read and not yet in
 * the FIFO, and the byte counters; not the fds, the terminal mode or a
 * half-typed console escape. irq_level is restored as the line was last
 * driven, not driven again: the line's level lives in the in-kernel
 * irqchip, whose state is restored with it. save: vCPUs parked; load:
 * before they run. Load is checked whole first: 0, or -EINVAL with why in
 * @r and nothing changed.
 */
void serial_state_save(struct serial *s, struct state_writer *w);
int serial_state_load(struct serial *s, struct state_reader *r);

#endif
