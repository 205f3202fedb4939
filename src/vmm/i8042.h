/*
 * A minimal i8042 keyboard controller with a keyboard behind it, as much
 * as Linux's i8042 and atkbd drivers need to find it and as Firecracker's
 * SendCtrlAltDel needs to reach the guest. No mouse (AUX) port.
 *
 * Data port 0x60 (offset 0) and status/command port 0x64 (offset 4). The
 * controller answers, through its output buffer:
 *   0x20 read the command byte    0x60 write it (next byte on 0x60)
 *   0xd0 read the output port     0xd1 write it (next byte on 0x60)
 *   0xaa self-test -> 0x55        0xab keyboard interface test -> 0x00
 *   0xad / 0xae disable / enable the keyboard (command byte bit 4)
 *   0xfe pulse the reset line (the caller ends the VM)
 * Other commands are ignored. A byte written to 0x60 outside a command is
 * for the keyboard: it answers ACK (0xfa), and for the few commands that
 * return more, what a PS/2 keyboard returns (GET ID: 0xab 0x83, ECHO:
 * 0xee, RESET: 0xfa 0xaa). Keyboard answers and keys raise IRQ 1 when the
 * command byte enables it; controller answers are polled, as on hardware
 * Linux reads them with interrupts off.
 *
 * Keys are scan code set 2 without translation (command byte bit 6 clear),
 * Firecracker's choice: Ctrl+Alt+Del is Ctrl 0x14, Alt 0x11, Del 0xe0 0x71,
 * presses only, no releases.
 *
 * The model is pure state: no locking, no VM. legacy.c serialises the
 * calls and acts on what they return (I8042_IRQ, I8042_RESET).
 */
#ifndef KVMINI_VMM_I8042_H
#define KVMINI_VMM_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "core/state_io.h"

#define I8042_PORT_DATA   0x60u
#define I8042_PORT_STATUS 0x64u
#define I8042_IRQ_LINE    1u
#define I8042_BUF_SIZE    16u

/* Status register bits. */
#define I8042_STS_OBF      0x01u    /* a byte waits on port 0x60 */
#define I8042_STS_SYS      0x04u    /* self-test passed */
#define I8042_STS_CMD_DATA 0x08u    /* last write was to 0x64 (a command) */
#define I8042_STS_UNLOCKED 0x10u    /* keyboard not inhibited */

/* Command byte bits. */
#define I8042_CTR_KBD_INT  0x01u    /* IRQ 1 on keyboard data */
#define I8042_CTR_SYS      0x04u
#define I8042_CTR_KBD_DIS  0x10u
#define I8042_CTR_AUX_DIS  0x20u

/* What the caller must do after an access (a bit mask). */
#define I8042_IRQ   0x1u             /* pulse IRQ 1 (edge) */
#define I8042_RESET 0x2u             /* the guest asked for a reset */

struct i8042 {
	uint8_t status;
	uint8_t ctr;                 /* the command byte */
	uint8_t outp;                /* the output port */
	/* What the next byte on 0x60 is for: a controller command's data
	 * (0x60, 0xd1), a keyboard command's parameter (0x100 | the command),
	 * or 0: a keyboard command. */
	uint16_t pending;
	uint8_t buf[I8042_BUF_SIZE]; /* the output buffer, a ring */
	uint8_t head, len;
	uint64_t keys_dropped;       /* key bytes refused for a full buffer */
};

/* Power-on state: empty buffer, keyboard enabled with its interrupt. */
void i8042_reset(struct i8042 *k);

/* One byte read or written at @port (I8042_PORT_*). Return: I8042_* bits. */
unsigned i8042_read(struct i8042 *k, unsigned port, uint8_t *value);
unsigned i8042_write(struct i8042 *k, unsigned port, uint8_t value);

/* Queue Ctrl+Alt+Del (4 bytes). I8042_IRQ, 0 when the guest disabled the
 * keyboard interrupt (the bytes wait for a poll), or -ENOSPC when the
 * buffer has no room for all four (nothing queued). */
int i8042_ctrl_alt_del(struct i8042 *k);

/* Snapshot section "I8K2": registers and buffer. Load checks the lengths
 * and the pending command: 0 or -EINVAL with why in @r, @k unchanged. */
void i8042_state_save(const struct i8042 *k, struct state_writer *w);
int i8042_state_load(struct i8042 *k, struct state_reader *r);

#endif
