/*
 * The i8042 keyboard controller model. See i8042.h.
 */
#include "vmm/i8042.h"

#include <errno.h>
#include <string.h>

/* Controller commands (written to 0x64). */
#define CMD_READ_CTR    0x20u
#define CMD_WRITE_CTR   0x60u
#define CMD_SELF_TEST   0xaau
#define CMD_KBD_TEST    0xabu
#define CMD_KBD_DISABLE 0xadu
#define CMD_KBD_ENABLE  0xaeu
#define CMD_READ_OUTP   0xd0u
#define CMD_WRITE_OUTP  0xd1u
#define CMD_RESET_CPU   0xfeu

#define SELF_TEST_OK    0x55u
#define KBD_TEST_OK     0x00u

/* Keyboard commands (written to 0x60) and its answers. */
#define KBD_SET_LEDS    0xedu
#define KBD_ECHO        0xeeu
#define KBD_SCAN_SET    0xf0u
#define KBD_GET_ID      0xf2u
#define KBD_SET_RATE    0xf3u
#define KBD_RESET       0xffu
#define KBD_ACK         0xfau
#define KBD_BAT_OK      0xaau
#define KBD_ID_0        0xabu    /* an MF2 keyboard */
#define KBD_ID_1        0x83u
#define KBD_SCAN_SET_2  0x02u

/* A keyboard command's parameter byte is pending: the value is how it is
 * told apart from a controller command's data byte in @pending. */
#define PENDING_KBD_PARAM 0x100u

/* Set 2 make codes, Firecracker's Ctrl+Alt+Del. */
static const uint8_t ctrl_alt_del[] = { 0x14, 0x11, 0xe0, 0x71 };

void i8042_reset(struct i8042 *k)
{
	memset(k, 0, sizeof(*k));
	k->status = I8042_STS_UNLOCKED | I8042_STS_SYS;
	k->ctr = I8042_CTR_KBD_INT | I8042_CTR_SYS;
}

static void flush(struct i8042 *k)
{
	k->head = k->len = 0;
	k->status &= (uint8_t)~I8042_STS_OBF;
}

/* False when full: the byte is dropped. */
static bool push(struct i8042 *k, uint8_t v)
{
	if (k->len == I8042_BUF_SIZE)
		return false;
	k->buf[(k->head + k->len) % I8042_BUF_SIZE] = v;
	k->len++;
	k->status |= I8042_STS_OBF;
	return true;
}

/* An answer replaces whatever waited: the driver reads it next. */
static void answer(struct i8042 *k, uint8_t v)
{
	flush(k);
	push(k, v);
}

static unsigned kbd_irq(const struct i8042 *k)
{
	return (k->ctr & I8042_CTR_KBD_INT) ? I8042_IRQ : 0;
}

unsigned i8042_read(struct i8042 *k, unsigned port, uint8_t *value)
{
	if (port == I8042_PORT_STATUS) {
		*value = k->status;
		return 0;
	}
	if (!k->len) {
		*value = 0;          /* nothing waits: 0, as Firecracker answers */
		return 0;
	}
	*value = k->buf[k->head];
	k->head = (uint8_t)((k->head + 1) % I8042_BUF_SIZE);
	k->len--;
	if (!k->len) {
		k->status &= (uint8_t)~I8042_STS_OBF;
		return 0;
	}
	return kbd_irq(k);           /* one interrupt per byte: more wait */
}

static unsigned controller_command(struct i8042 *k, uint8_t cmd)
{
	k->status |= I8042_STS_CMD_DATA;
	switch (cmd) {
	case CMD_READ_CTR:    answer(k, k->ctr); break;
	case CMD_READ_OUTP:   answer(k, k->outp); break;
	case CMD_SELF_TEST:   answer(k, SELF_TEST_OK); break;
	case CMD_KBD_TEST:    answer(k, KBD_TEST_OK); break;
	case CMD_KBD_DISABLE: k->ctr |= I8042_CTR_KBD_DIS; break;
	case CMD_KBD_ENABLE:  k->ctr &= (uint8_t)~I8042_CTR_KBD_DIS; break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTP:
		flush(k);
		k->pending = cmd;
		break;
	case CMD_RESET_CPU:   return I8042_RESET;
	default:              break;   /* AUX and the rest: no such port here */
	}
	return 0;
}

/* A byte for the keyboard: what a PS/2 keyboard answers. */
static unsigned keyboard_byte(struct i8042 *k, uint8_t v, bool *param_next)
{
	*param_next = false;
	if (v == KBD_ECHO) {
		answer(k, KBD_ECHO);
		return kbd_irq(k);
	}
	answer(k, KBD_ACK);
	if (v == KBD_GET_ID) {
		push(k, KBD_ID_0);
		push(k, KBD_ID_1);
	} else if (v == KBD_RESET) {
		push(k, KBD_BAT_OK);
	} else if (v == KBD_SET_LEDS || v == KBD_SET_RATE || v == KBD_SCAN_SET) {
		*param_next = true;
	}
	return kbd_irq(k);
}

static unsigned data_write(struct i8042 *k, uint8_t v)
{
	unsigned pending = k->pending;
	bool param_next;

	k->pending = 0;
	k->status &= (uint8_t)~I8042_STS_CMD_DATA;
	if (pending == CMD_WRITE_CTR) {
		k->ctr = v;
		return 0;
	}
	if (pending == CMD_WRITE_OUTP) {
		k->outp = v;
		return 0;
	}
	if (pending & PENDING_KBD_PARAM) {
		answer(k, KBD_ACK);
		/* Scan set 0 asks which set is in use. */
		if ((pending & 0xffu) == KBD_SCAN_SET && v == 0)
			push(k, KBD_SCAN_SET_2);
		return kbd_irq(k);
	}
	unsigned effect = keyboard_byte(k, v, &param_next);
	if (param_next)
		k->pending = (uint16_t)(PENDING_KBD_PARAM | v);
	return effect;
}

unsigned i8042_write(struct i8042 *k, unsigned port, uint8_t value)
{
	if (port == I8042_PORT_STATUS)
		return controller_command(k, value);
	return data_write(k, value);
}

int i8042_ctrl_alt_del(struct i8042 *k)
{
	if (I8042_BUF_SIZE - k->len < sizeof(ctrl_alt_del)) {
		k->keys_dropped += sizeof(ctrl_alt_del);
		return -ENOSPC;
	}
	for (unsigned i = 0; i < sizeof(ctrl_alt_del); i++)
		push(k, ctrl_alt_del[i]);
	return (int)kbd_irq(k);
}

/* --- snapshot state -------------------------------------------------------- */

void i8042_state_save(const struct i8042 *k, struct state_writer *w)
{
	state_begin(w, "I8K2");
	state_put_u8(w, k->status);
	state_put_u8(w, k->ctr);
	state_put_u8(w, k->outp);
	state_put_u16(w, k->pending);
	state_put_u8(w, k->len);
	for (unsigned i = 0; i < k->len; i++)
		state_put_u8(w, k->buf[(k->head + i) % I8042_BUF_SIZE]);
	state_end(w);
}

static bool pending_valid(uint16_t p)
{
	uint8_t kbd = (uint8_t)p;

	if (!(p & PENDING_KBD_PARAM))
		return p == 0 || p == CMD_WRITE_CTR || p == CMD_WRITE_OUTP;
	return p < 0x200u && (kbd == KBD_SET_LEDS || kbd == KBD_SET_RATE || kbd == KBD_SCAN_SET);
}

int i8042_state_load(struct i8042 *k, struct state_reader *r)
{
	struct state_reader sec;
	struct i8042 n = { 0 };

	if (!state_section(r, "I8K2", &sec))
		return -EINVAL;
	n.status = state_get_u8(&sec);
	n.ctr = state_get_u8(&sec);
	n.outp = state_get_u8(&sec);
	n.pending = state_get_u16(&sec);
	n.len = state_get_u8(&sec);
	if (!sec.failed && n.len > I8042_BUF_SIZE)
		state_fail(&sec, "i8042: %u bytes in a %u-byte buffer", n.len, I8042_BUF_SIZE);
	if (!sec.failed && !pending_valid(n.pending))
		state_fail(&sec, "i8042: no command 0x%x waits for a data byte", n.pending);
	if (!sec.failed)
		state_get_bytes(&sec, n.buf, n.len);
	if (!state_section_done(r, &sec))
		return -EINVAL;
	/* The buffer's bit follows the buffer, whatever the file says. */
	n.status = (uint8_t)((n.status & ~I8042_STS_OBF) | (n.len ? I8042_STS_OBF : 0));
	n.keys_dropped = k->keys_dropped;
	*k = n;
	return 0;
}
