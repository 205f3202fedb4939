/*
 * 16550A UART snapshot state, section "UART" (see serial.h). The FIFO and
 * the input buffer are saved in order from their heads, and come back with
 * heads at 0.
 */
#include <errno.h>
#include <string.h>

#include "vmm/serial.h"

#define UART_TAG "UART"
#define IER_BITS 0x0fu
#define MCR_BITS 0x1fu

/* The registers and flags, as saved. */
struct uart_state {
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool fifo_enabled, thr_pending, irq_level, rx_open;
	uint8_t rx_trigger;
	uint8_t rx[SERIAL_FIFO_SIZE];
	unsigned rx_count;
	uint8_t in_buf[SERIAL_INPUT_BUF];
	unsigned in_count;
	uint64_t tx_bytes, rx_bytes, in_bytes;
};

/* @count bytes of a ring of @size from @head, in order. */
static void put_ring(struct state_writer *w, const uint8_t *ring, unsigned size, unsigned head,
		     unsigned count)
{
	state_put_u32(w, count);
	for (unsigned i = 0; i < count; i++)
		state_put_u8(w, ring[(head + i) % size]);
}

void serial_state_save(struct serial *s, struct state_writer *w)
{
	const uint8_t regs[] = { s->ier, s->lcr, s->mcr, s->lsr, s->msr, s->scr, s->dll, s->dlm };

	pthread_mutex_lock(&s->lock);
	state_begin(w, UART_TAG);
	state_put_bytes(w, regs, sizeof(regs));
	state_put_bool(w, s->fifo_enabled);
	state_put_u8(w, s->rx_trigger);
	state_put_bool(w, s->thr_pending);
	state_put_bool(w, s->irq_level);
	state_put_bool(w, s->rx_open);
	put_ring(w, s->rx, SERIAL_FIFO_SIZE, s->rx_head, s->rx_count);
	put_ring(w, s->in_buf, SERIAL_INPUT_BUF, s->in_head, s->in_count);
	state_put_u64(w, s->tx_bytes);
	state_put_u64(w, s->rx_bytes);
	state_put_u64(w, s->in_bytes);
	state_end(w);
	pthread_mutex_unlock(&s->lock);
}

/* A count of at most @max, then that many bytes. */
static unsigned get_ring(struct state_reader *sec, const char *what, uint8_t *out, unsigned max)
{
	uint32_t n = state_get_u32(sec);

	if (n > max) {
		state_fail(sec, "%s: %u bytes, it holds %u", what, n, max);
		return 0;
	}
	state_get_bytes(sec, out, n);
	return n;
}

static bool check(struct state_reader *sec, const struct uart_state *u)
{
	unsigned cap = u->fifo_enabled ? SERIAL_FIFO_SIZE : 1;

	if (u->ier & ~IER_BITS)
		return state_fail(sec, "IER 0x%x has reserved bits", u->ier);
	if (u->mcr & ~MCR_BITS)
		return state_fail(sec, "MCR 0x%x has reserved bits", u->mcr);
	if (u->rx_trigger != 1 && u->rx_trigger != 4 && u->rx_trigger != 8 && u->rx_trigger != 14)
		return state_fail(sec, "FIFO trigger level %u (1, 4, 8 or 14)", u->rx_trigger);
	if (u->rx_count > cap)
		return state_fail(sec, "%u bytes in a receive FIFO of %u", u->rx_count, cap);
	return true;
}

static bool parse_body(struct state_reader *sec, struct uart_state *u)
{
	uint8_t regs[8];

	state_get_bytes(sec, regs, sizeof(regs));
	u->ier = regs[0];
	u->lcr = regs[1];
	u->mcr = regs[2];
	u->lsr = regs[3];
	u->msr = regs[4];
	u->scr = regs[5];
	u->dll = regs[6];
	u->dlm = regs[7];
	u->fifo_enabled = state_get_bool(sec);
	u->rx_trigger = state_get_u8(sec);
	u->thr_pending = state_get_bool(sec);
	u->irq_level = state_get_bool(sec);
	u->rx_open = state_get_bool(sec);
	u->rx_count = get_ring(sec, "receive FIFO", u->rx, SERIAL_FIFO_SIZE);
	u->in_count = get_ring(sec, "console input buffer", u->in_buf, SERIAL_INPUT_BUF);
	u->tx_bytes = state_get_u64(sec);
	u->rx_bytes = state_get_u64(sec);
	u->in_bytes = state_get_u64(sec);
	return !sec->failed && check(sec, u);
}

static void apply(struct serial *s, const struct uart_state *u)
{
	pthread_mutex_lock(&s->lock);
	s->ier = u->ier;
	s->lcr = u->lcr;
	s->mcr = u->mcr;
	s->lsr = u->lsr;
	s->msr = u->msr;
	s->scr = u->scr;
	s->dll = u->dll;
	s->dlm = u->dlm;
	s->fifo_enabled = u->fifo_enabled;
	s->rx_trigger = u->rx_trigger;
	s->thr_pending = u->thr_pending;
	s->irq_level = u->irq_level;
	s->rx_open = u->rx_open;
	memcpy(s->rx, u->rx, sizeof(s->rx));
	s->rx_head = 0;
	s->rx_count = u->rx_count;
	memcpy(s->in_buf, u->in_buf, u->in_count);
	s->in_head = 0;
	s->in_count = u->in_count;
	s->tx_bytes = u->tx_bytes;
	s->rx_bytes = u->rx_bytes;
	s->in_bytes = u->in_bytes;
	pthread_mutex_unlock(&s->lock);
}

int serial_state_load(struct serial *s, struct state_reader *r)
{
	struct state_reader sec;
	struct uart_state u;

	memset(&u, 0, sizeof(u));
	if (!state_section(r, UART_TAG, &sec))
		return -EINVAL;
	parse_body(&sec, &u);
	if (!state_section_done(r, &sec))
		return -EINVAL;
	apply(s, &u);
	return 0;
}
