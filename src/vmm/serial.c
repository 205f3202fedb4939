/*
 * 16550A UART: register file, interrupt sources, console input. See serial.h.
 */
#include "vmm/serial.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/layout.h"

/* Register offsets. */
enum { UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3, UART_MCR = 4,
       UART_LSR = 5, UART_MSR = 6, UART_SCR = 7 };

#define IER_RDI   0x01u
#define IER_THRI  0x02u
#define IER_RLSI  0x04u
#define IER_MSI   0x08u

#define IIR_NONE     0x01u
#define IIR_MSI      0x00u
#define IIR_THRI     0x02u
#define IIR_RDI      0x04u
#define IIR_RLSI     0x06u
#define IIR_TIMEOUT  0x0cu
#define IIR_FIFO_ON  0xc0u

#define FCR_ENABLE     0x01u
#define FCR_CLEAR_RX   0x02u
#define FCR_TRIGGER(v) (((v) >> 6) & 3u)

#define LCR_DLAB  0x80u

#define MCR_DTR   0x01u
#define MCR_RTS   0x02u
#define MCR_OUT1  0x04u
#define MCR_OUT2  0x08u
#define MCR_LOOP  0x10u
#define MCR_MASK  0x1fu

#define LSR_DR    0x01u
#define LSR_OE    0x02u
#define LSR_BI    0x10u
#define LSR_THRE  0x20u
#define LSR_TEMT  0x40u
#define LSR_ERRORS 0x1eu

#define MSR_DELTAS 0x0fu
#define MSR_CTS   0x10u
#define MSR_DSR   0x20u
#define MSR_RI    0x40u
#define MSR_DCD   0x80u

#define CTRL_A 0x01

static const uint8_t rx_trigger_levels[4] = { 1, 4, 8, 14 };

/* --- interrupt state (called with @lock held) ---------------------------- */

static uint8_t compute_iir(const struct serial *s)
{
	uint8_t fifo = s->fifo_enabled ? IIR_FIFO_ON : 0;

	if ((s->ier & IER_RLSI) && (s->lsr & LSR_ERRORS))
		return fifo | IIR_RLSI;
	if ((s->ier & IER_RDI) && s->rx_count) {
		/* Below the trigger level the 16550 reports a character
		 * timeout; kvmini does not wait the four character times. */
		bool timeout = s->fifo_enabled && s->rx_count < s->rx_trigger;
		return fifo | (timeout ? IIR_TIMEOUT : IIR_RDI);
	}
	if ((s->ier & IER_THRI) && s->thr_pending)
		return fifo | IIR_THRI;
	if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
		return fifo | IIR_MSI;
	return fifo | IIR_NONE;
}

static void update_irq(struct serial *s)
{
	bool level = !(compute_iir(s) & IIR_NONE);

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (vm_set_irq_line(s->vm, s->irq, level) < 0)
		log_debug("serial: KVM_IRQ_LINE %u: %s", s->irq, strerror(errno));
}

/* --- receive FIFO --------------------------------------------------------- */

static unsigned rx_capacity(const struct serial *s)
{
	return s->fifo_enabled ? SERIAL_FIFO_SIZE : 1;
}

static void rx_push(struct serial *s, uint8_t byte)
{
	if (s->rx_count >= rx_capacity(s)) {
		s->lsr |= LSR_OE;
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = byte;
	s->rx_count++;
	s->rx_bytes++;
}

/* Bytes the FIFO may take from the host-side input buffer now: none until
 * the guest has asked for receive interrupts once (so input typed or piped
 * before its driver is up waits instead of being lost to a FIFO reset or
 * overrunning the FIFO), and none in loopback mode (the receiver listens to
 * the transmitter then). */
static unsigned fifo_room_for_input(const struct serial *s)
{
	if (!s->rx_open || (s->mcr & MCR_LOOP))
		return 0;
	return rx_capacity(s) - MIN(s->rx_count, rx_capacity(s));
}

/* The input buffer has room again while reading is paused: have the loop
 * watch the input fd again. */
static void wake_input(struct serial *s)
{
	uint64_t one = 1;

	if (!s->in_paused || s->room_fd < 0 || s->in_count >= SERIAL_INPUT_BUF)
		return;
	s->in_paused = false;
	if (write(s->room_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("serial: room eventfd: %s", strerror(errno));
}

/* Move buffered console input into the FIFO as far as it has room (any
 * thread, @lock held): a vCPU draining the FIFO refills it at once. */
static void deliver_input(struct serial *s)
{
	unsigned n = MIN(fifo_room_for_input(s), s->in_count);

	for (unsigned i = 0; i < n; i++) {
		rx_push(s, s->in_buf[s->in_head]);
		s->in_head = (s->in_head + 1) % SERIAL_INPUT_BUF;
		s->in_count--;
	}
	if (n)
		wake_input(s);
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->rx_count)
		return 0;
	uint8_t byte = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
	s->rx_count--;
	deliver_input(s);
	return byte;
}

static void rx_clear(struct serial *s)
{
	s->rx_head = s->rx_count = 0;
	deliver_input(s);
}

/* --- transmit ------------------------------------------------------------- */

/* What Linux prints right before it execs init ("Run /init as init
 * process"): --boot-timing's fallback for "userspace" when the guest's init
 * does not write the boot marker. No character of it but the first is an
 * 'R', so a mismatch restarts the match at this byte. */
static const char init_line[] = "Run /init";

static void watch_init_line(struct serial *s, uint8_t byte)
{
	if (s->init_seen)
		return;
	if (byte == (uint8_t)init_line[s->init_pos])
		s->init_pos++;
	else
		s->init_pos = byte == (uint8_t)init_line[0];
	if (s->init_pos == sizeof(init_line) - 1) {
		s->init_seen = true;
		vm_timing_mark(&s->vm->timing.kernel_runs_init);
	}
}

/* Returns true when @byte must go to the output fd (the caller writes it
 * after dropping @lock, so a slow terminal or a full pipe stalls only the
 * writing vCPU, never console input or the other vCPUs' register reads). */
static bool transmit(struct serial *s, uint8_t byte)
{
	/* The shift register empties at once: THR is free again. */
	s->thr_pending = true;
	if (s->mcr & MCR_LOOP) {
		rx_push(s, byte);
		return false;
	}
	s->tx_bytes++;
	watch_init_line(s, byte);
	return true;
}

static void output(struct serial *s, uint8_t byte)
{
	vm_timing_mark(&s->vm->timing.first_console);
	/* Blocking when stdout is a full pipe is the right back-pressure. */
	while (write(s->out_fd, &byte, 1) < 0 && errno == EINTR)
		;
}

/* --- modem lines ---------------------------------------------------------- */

/* In loopback mode the modem inputs follow the outputs (DTR->DSR, RTS->CTS,
 * OUT1->RI, OUT2->DCD); otherwise the "modem" is always connected. */
static void update_msr(struct serial *s)
{
	uint8_t lines;

	if (s->mcr & MCR_LOOP)
		lines = (uint8_t)(((s->mcr & MCR_DTR) ? MSR_DSR : 0) | ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
				  ((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0));
	else
		lines = MSR_CTS | MSR_DSR | MSR_DCD;
	uint8_t changed = (uint8_t)((s->msr ^ lines) & 0xf0u);
	uint8_t deltas = (uint8_t)(((changed & MSR_CTS) ? 0x01 : 0) | ((changed & MSR_DSR) ? 0x02 : 0) |
				   ((changed & MSR_DCD) ? 0x08 : 0) |
				   /* TERI: RI went from on to off. */
				   ((changed & MSR_RI) && !(lines & MSR_RI) ? 0x04 : 0));
	s->msr = (uint8_t)(lines | (s->msr & MSR_DELTAS) | deltas);
}

/* --- register access ------------------------------------------------------ */

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		return rx_pop(s);
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR_FCR:
		v = compute_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt it reports. */
		if ((v & 0x0fu) == IIR_THRI)
			s->thr_pending = false;
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = (uint8_t)(s->lsr | LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0));
		s->lsr &= (uint8_t)~LSR_ERRORS;
		return v;
	case UART_MSR:
		v = s->msr;
		s->msr &= (uint8_t)~MSR_DELTAS;
		return v;
	default:
		return s->scr;
	}
}

static void write_fcr(struct serial *s, uint8_t v)
{
	bool enable = v & FCR_ENABLE;
	/* Changing the FIFO mode empties the FIFOs. */
	bool clear = enable != s->fifo_enabled || (v & FCR_CLEAR_RX);

	/* The new mode first: the clear refills the FIFO from buffered input
	 * up to the new mode's capacity, not the old one's. */
	s->fifo_enabled = enable;
	s->rx_trigger = rx_trigger_levels[FCR_TRIGGER(v)];
	if (clear)
		rx_clear(s);
}

/* Returns true when @v was written to THR for the output fd. */
static bool reg_write(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return false;
		}
		return transmit(s, v);
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return false;
		}
		/* Enabling THRE interrupts while THR is empty raises one at once. */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thr_pending = true;
		s->ier = v & 0x0fu;
		if (v & IER_RDI) {
			s->rx_open = true;
			deliver_input(s);
		}
		return false;
	case UART_IIR_FCR:
		write_fcr(s, v);
		return false;
	case UART_LCR:
		s->lcr = v;
		return false;
	case UART_MCR:
		s->mcr = v & MCR_MASK;
		update_msr(s);
		deliver_input(s);
		return false;
	case UART_SCR:
		s->scr = v;
		return false;
	default:
		return false;      /* LSR and MSR are read-only */
	}
}

static void serial_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			  bool is_write)
{
	struct serial *s = container_of(h, struct serial, io);
	uint8_t *byte = data;

	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	bool out = false;

	pthread_mutex_lock(&s->lock);
	if (is_write)
		out = reg_write(s, (unsigned)offset, *byte);
	else
		*byte = reg_read(s, (unsigned)offset);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (out)
		output(s, *byte);
}

/* --- console input (event-loop thread) ------------------------------------- */

static void pause_input(struct serial *s)
{
	event_loop_modify(s->loop, &s->in_src, 0);
}

/* Ctrl-A x ends the VM; Ctrl-A Ctrl-A is a literal Ctrl-A. Returns false
 * when @c is consumed. */
static bool console_escape(struct serial *s, uint8_t c)
{
	if (!s->tty_raw)
		return true;
	if (s->escape) {
		s->escape = false;
		if (c == 'x' || c == 'X') {
			run_state_request_stop(&s->vm->run_state, VM_EXIT_OK, "console: Ctrl-A x");
			return false;
		}
		return c == CTRL_A;
	}
	if (c == CTRL_A) {
		s->escape = true;
		return false;
	}
	return true;
}

/* Console input is readable: read as much as the host-side buffer has room
 * for, handle the console escape, and pass what the FIFO can take (loop
 * thread). With the buffer full, stop watching the fd until a vCPU drains. */
static void on_input(struct event_source *src, uint32_t events)
{
	struct serial *s = container_of(src, struct serial, in_src);
	uint8_t buf[512];

	pthread_mutex_lock(&s->lock);
	unsigned room = SERIAL_INPUT_BUF - s->in_count;
	if (!room)
		s->in_paused = true;
	pthread_mutex_unlock(&s->lock);
	if (!room) {
		pause_input(s);
		return;
	}
	/* Only this thread adds to the buffer, so the room can only grow now. */
	ssize_t n = read(s->in_fd, buf, MIN(room, (unsigned)sizeof(buf)));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			log_debug("serial: console input ended");
			event_loop_unwatch(s->loop, &s->in_src);
		}
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->in_bytes += (uint64_t)n;
	for (ssize_t i = 0; i < n; i++) {
		if (!console_escape(s, buf[i]))
			continue;
		s->in_buf[(s->in_head + s->in_count) % SERIAL_INPUT_BUF] = buf[i];
		s->in_count++;
	}
	deliver_input(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

/* A vCPU drained the FIFO: watch the input again (loop thread). */
static void on_room(struct event_source *src, uint32_t events)
{
	struct serial *s = container_of(src, struct serial, room_src);
	uint64_t v;

	if (read(s->room_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (s->in_src.registered)
		event_loop_modify(s->loop, &s->in_src, EPOLLIN);
}

static void make_raw(struct serial *s)
{
	struct termios raw;

	if (!isatty(s->in_fd) || tcgetattr(s->in_fd, &s->saved_tty) < 0)
		return;
	raw = s->saved_tty;
	cfmakeraw(&raw);
	/* Keep output post-processing so kvmini's own messages stay readable. */
	raw.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(s->in_fd, TCSANOW, &raw) == 0)
		s->tty_raw = true;
}

int serial_attach_input(struct serial *s, struct event_loop *loop, int in_fd)
{
	s->loop = loop;
	s->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->room_fd < 0)
		return -errno;
	int r = event_loop_watch(loop, &s->room_src, s->room_fd, EPOLLIN, on_room, "serial room");
	if (r < 0)
		return r;
	s->in_fd = in_fd;
	r = event_loop_watch(loop, &s->in_src, in_fd, EPOLLIN, on_input, "console input");
	if (r < 0)
		s->in_fd = -1;
	if (r == -EPERM) {
		log_debug("serial: console input cannot be polled; the guest gets none");
		return 0;
	}
	if (r < 0)
		return r;
	make_raw(s);
	return 0;
}

int serial_init(struct serial *s, struct vm *vm, int out_fd)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	s->irq = LAYOUT_IRQ_SERIAL;
	s->out_fd = out_fd;
	s->in_fd = s->room_fd = -1;
	s->rx_trigger = 1;
	s->lsr = LSR_THRE | LSR_TEMT;
	update_msr(s);
	s->msr &= (uint8_t)~MSR_DELTAS;
	int r = -pthread_mutex_init(&s->lock, NULL);
	if (r < 0)
		return r;
	s->io = (struct io_handler){ .base = LAYOUT_PORT_SERIAL, .len = 8, .access = serial_access,
				     .name = "serial" };
	return io_bus_add(&vm->pio, &s->io);
}

void serial_destroy(struct serial *s)
{
	if (s->loop) {
		event_loop_unwatch(s->loop, &s->in_src);
		event_loop_unwatch(s->loop, &s->room_src);
	}
	if (s->tty_raw)
		tcsetattr(s->in_fd, TCSANOW, &s->saved_tty);
	s->tty_raw = false;
	if (s->room_fd >= 0)
		close(s->room_fd);
	s->room_fd = -1;
	pthread_mutex_destroy(&s->lock);
}
