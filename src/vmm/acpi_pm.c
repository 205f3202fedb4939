/*
 * ACPI sleep control and status registers: S5 ends the VM (see acpi_pm.h).
 */
#include "vmm/acpi_pm.h"

#include <string.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/acpi.h"
#include "vmm/layout.h"

#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK  0x7u

static void sleep_ctl_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			     bool is_write)
{
	struct acpi_pm *pm = container_of(h, struct acpi_pm, sleep_ctl);

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	uint8_t v = *(uint8_t *)data;
	unsigned type = (v >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
	if (!(v & ACPI_PM_SLP_EN))
		return;
	if (type == ACPI_S5_SLP_TYP)
		run_state_request_stop(&pm->vm->run_state, VM_EXIT_OK, "guest powered off (ACPI S5)");
	else
		log_debug("acpi: sleep type %u requested; only S5 (power off) is offered", type);
}

static void sleep_sts_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			     bool is_write)
{
	if (!is_write)
		memset(data, ACPI_PM_WAK_STS, len);
}

int acpi_pm_init(struct acpi_pm *pm, struct vm *vm)
{
	pm->vm = vm;
	pm->sleep_ctl = (struct io_handler){ LAYOUT_PORT_ACPI_SLEEP_CTL, 1, sleep_ctl_access,
					     "acpi sleep control" };
	pm->sleep_sts = (struct io_handler){ LAYOUT_PORT_ACPI_SLEEP_STS, 1, sleep_sts_access,
					     "acpi sleep status" };
	int r = io_bus_add(&vm->pio, &pm->sleep_ctl);
	return r ? r : io_bus_add(&vm->pio, &pm->sleep_sts);
}
