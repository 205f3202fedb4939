/*
 * Unit tests of the i8042 model (vmm/i8042.h): the probe Linux's i8042
 * and atkbd drivers run, Ctrl+Alt+Del's bytes and interrupts, the buffer's
 * bounds, and its snapshot section; then the same controller behind the
 * legacy ports (the reset line, a wide access, an old snapshot).
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/state_io.h"
#include "vmm/i8042.h"
#include "vmm/legacy.h"
#include "vmm/run_state.h"
#include "vmm/vm.h"

#define DATA I8042_PORT_DATA
#define STS  I8042_PORT_STATUS

static uint8_t rd(struct i8042 *k, unsigned port, unsigned *effects)
{
	uint8_t v = 0x5a;
	unsigned e = i8042_read(k, port, &v);

	if (effects)
		*effects = e;
	return v;
}

/* What Linux's i8042_command does: command, optional data, polled answer. */
static uint8_t command(struct i8042 *k, uint8_t cmd)
{
	CHECK_EQ(i8042_write(k, STS, cmd), 0u);
	CHECK(rd(k, STS, NULL) & I8042_STS_OBF);
	return rd(k, DATA, NULL);
}

static void test_controller_probe(void)
{
	struct i8042 k;

	i8042_reset(&k);
	CHECK_EQ(rd(&k, STS, NULL) & I8042_STS_OBF, 0);
	CHECK_EQ(rd(&k, DATA, NULL), 0);            /* empty: 0, no interrupt */
	CHECK_EQ(command(&k, 0xaa), 0x55);          /* self-test */
	CHECK_EQ(command(&k, 0xab), 0x00);          /* keyboard interface test */
	CHECK_EQ(command(&k, 0x20), I8042_CTR_KBD_INT | I8042_CTR_SYS);
	CHECK_EQ(i8042_write(&k, STS, 0x60), 0u);
	CHECK(rd(&k, STS, NULL) & I8042_STS_CMD_DATA);
	CHECK_EQ(i8042_write(&k, DATA, 0x74), 0u);  /* data, not a keyboard byte: no ACK */
	CHECK_EQ(rd(&k, STS, NULL) & (I8042_STS_OBF | I8042_STS_CMD_DATA), 0);
	CHECK_EQ(command(&k, 0x20), 0x74);
	CHECK_EQ(i8042_write(&k, STS, 0xd1), 0u);
	CHECK_EQ(i8042_write(&k, DATA, 0xdf), 0u);
	CHECK_EQ(command(&k, 0xd0), 0xdf);
	CHECK_EQ(i8042_write(&k, STS, 0xae), 0u);   /* enable keyboard: bit 4 clear */
	CHECK_EQ(command(&k, 0x20), 0x64);
	CHECK_EQ(i8042_write(&k, STS, 0xad), 0u);
	CHECK_EQ(command(&k, 0x20), 0x74);
	CHECK_EQ(i8042_write(&k, STS, 0xfe), (unsigned)I8042_RESET);
	CHECK_EQ(i8042_write(&k, STS, 0xa9), 0u);   /* AUX test: no such port, no answer */
	CHECK_EQ(rd(&k, STS, NULL) & I8042_STS_OBF, 0);
}

/* Each keyboard byte answered through IRQ 1, one interrupt per byte. */
static void expect_bytes(struct i8042 *k, unsigned first_effects, const uint8_t *want,
			 unsigned n)
{
	unsigned e;

	CHECK_EQ(first_effects, (unsigned)I8042_IRQ);
	for (unsigned i = 0; i < n; i++) {
		CHECK(rd(k, STS, NULL) & I8042_STS_OBF);
		CHECK_EQ(rd(k, DATA, &e), want[i]);
		CHECK_EQ(e, i + 1 < n ? (unsigned)I8042_IRQ : 0u);
	}
	CHECK_EQ(rd(k, STS, NULL) & I8042_STS_OBF, 0);
}

static void test_keyboard_probe(void)
{
	static const uint8_t ack[] = { 0xfa }, id[] = { 0xfa, 0xab, 0x83 };
	static const uint8_t bat[] = { 0xfa, 0xaa }, echo[] = { 0xee }, set[] = { 0xfa, 0x02 };
	struct i8042 k;

	i8042_reset(&k);
	expect_bytes(&k, i8042_write(&k, DATA, 0xf2), id, 3);     /* GET ID */
	expect_bytes(&k, i8042_write(&k, DATA, 0xed), ack, 1);    /* SET LEDS ... */
	expect_bytes(&k, i8042_write(&k, DATA, 0xff), ack, 1);    /* ... its parameter */
	expect_bytes(&k, i8042_write(&k, DATA, 0xff), bat, 2);    /* RESET */
	expect_bytes(&k, i8042_write(&k, DATA, 0xee), echo, 1);
	expect_bytes(&k, i8042_write(&k, DATA, 0xf0), ack, 1);    /* scan set: which? */
	expect_bytes(&k, i8042_write(&k, DATA, 0x00), set, 2);
	expect_bytes(&k, i8042_write(&k, DATA, 0xf4), ack, 1);    /* ENABLE */
	/* The guest masks the keyboard interrupt: the ACK waits for a poll. */
	i8042_write(&k, STS, 0x60);
	i8042_write(&k, DATA, 0x00);
	CHECK_EQ(i8042_write(&k, DATA, 0xf4), 0u);
	CHECK_EQ(rd(&k, DATA, NULL), 0xfa);
}

static void test_ctrl_alt_del(void)
{
	static const uint8_t cad[] = { 0x14, 0x11, 0xe0, 0x71 };
	struct i8042 k;

	i8042_reset(&k);
	CHECK_EQ(i8042_ctrl_alt_del(&k), (int)I8042_IRQ);
	expect_bytes(&k, I8042_IRQ, cad, 4);
	for (unsigned i = 0; i < I8042_BUF_SIZE / 4; i++)
		CHECK_EQ(i8042_ctrl_alt_del(&k), (int)I8042_IRQ);
	CHECK_EQ(i8042_ctrl_alt_del(&k), -ENOSPC);     /* full: nothing queued */
	CHECK_EQ(k.len, I8042_BUF_SIZE);
	CHECK_EQ(k.keys_dropped, 4u);
	rd(&k, DATA, NULL);
	CHECK_EQ(i8042_ctrl_alt_del(&k), -ENOSPC);     /* 3 free of 4 still refused */
	/* A controller command's answer flushes the keys: the driver asked. */
	CHECK_EQ(command(&k, 0x20), I8042_CTR_KBD_INT | I8042_CTR_SYS);
	CHECK_EQ(k.len, 0);
	i8042_write(&k, STS, 0x60);
	i8042_write(&k, DATA, 0x00);                   /* interrupts off */
	CHECK_EQ(i8042_ctrl_alt_del(&k), 0);
	CHECK_EQ(rd(&k, DATA, NULL), 0x14);
}

static void test_state(void)
{
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	struct i8042 k, back;

	i8042_reset(&k);
	i8042_write(&k, STS, 0x60);            /* the command byte's data pending */
	i8042_ctrl_alt_del(&k);
	rd(&k, DATA, NULL);                    /* the ring's head moved */
	state_writer_init(&w);
	i8042_state_save(&k, &w);
	i8042_reset(&back);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(i8042_state_load(&back, &r), 0);
	CHECK_EQ(back.len, 3);
	CHECK_EQ(back.pending, 0x60);
	CHECK_EQ(rd(&back, DATA, NULL), 0x11);
	CHECK_EQ(i8042_write(&back, DATA, 0x01), 0u);   /* still the command byte */
	CHECK_EQ(back.ctr, 0x01);
	/* Refusals: a pending command that takes no data, a length past the ring. */
	w.buf[w.len - 1 - 3 - 1 - 1] = 0xd0;   /* pending's low byte (little endian) */
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(i8042_state_load(&back, &r), -EINVAL);
	CHECK(strstr(eb.msg, "0xd0") != NULL);
	w.buf[w.len - 1 - 3 - 1 - 1] = 0x60;
	w.buf[w.len - 1 - 3] = 17;
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(i8042_state_load(&back, &r), -EINVAL);
	CHECK(strstr(eb.msg, "17 bytes") != NULL);
	CHECK_EQ(back.ctr, 0x01);              /* unchanged by a refused load */
	state_writer_free(&w);
}

/* Through the port bus: wide accesses, the reset line, old snapshots. */
static void test_legacy_ports(void)
{
	static struct vm vm;
	struct legacy_devices l;
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	uint32_t wide = 0;
	uint8_t b = 0xaa;

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = -1;             /* IRQ line changes fail quietly */
	CHECK_EQ(run_state_init(&vm.run_state), 0);
	CHECK_EQ(legacy_init(&l, &vm), 0);
	struct io_handler *cmd = io_bus_find(&vm.pio, STS, 1);
	struct io_handler *data = io_bus_find(&vm.pio, DATA, 1);
	CHECK(cmd && data);
	cmd->access(cmd, 0, &b, 1, true);
	data->access(data, 0, &wide, 4, false);
	CHECK_EQ(wide, 0xffffffffu);           /* wide: all ones, the 0x55 stays */
	data->access(data, 0, &b, 1, false);
	CHECK_EQ(b, 0x55);
	CHECK_EQ(legacy_ctrl_alt_del(&l), 0);
	/* A snapshot without "I8K2" (before the controller) loads as power-on. */
	state_writer_init(&w);
	legacy_state_save(&l, &w);
	size_t cmos_only = 8 + 1 + 128;        /* tag, length, index, RAM */
	state_reader_init(&r, w.buf, cmos_only, &eb);
	CHECK_EQ(legacy_state_load(&l, &r), 0);
	CHECK_EQ(l.kbd.len, 0);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(legacy_state_load(&l, &r), 0);
	CHECK_EQ(l.kbd.len, 4);
	state_writer_free(&w);
	b = 0xfe;
	cmd->access(cmd, 0, &b, 1, true);
	CHECK(run_state_stop_requested(&vm.run_state));
	legacy_destroy(&l);
	run_state_destroy(&vm.run_state);
}

int main(void)
{
	log_threshold = LOG_ERROR;
	RUN_TEST(test_controller_probe);
	RUN_TEST(test_keyboard_probe);
	RUN_TEST(test_ctrl_alt_del);
	RUN_TEST(test_state);
	RUN_TEST(test_legacy_ports);
	return CHECK_DONE();
}
