/* The descriptor tables of the VM's own counters (vm_counters.h). */
#include "vmm/vm_counters.h"

#define X(name, doc) COUNTER_DESC(struct vm_console_counters, name, doc)
const struct counter_set vm_console_counter_set = COUNTER_SET("console", VM_CONSOLE_COUNTERS(X));
#undef X

#define X(name, doc) COUNTER_DESC(struct vm_legacy_counters, name, doc)
const struct counter_set vm_legacy_counter_set = COUNTER_SET("legacy", VM_LEGACY_COUNTERS(X));
#undef X

#define X(name, doc) COUNTER_DESC(struct vm_compat_counters, name, doc)
const struct counter_set vm_compat_counter_set = COUNTER_SET("compat", VM_COMPAT_COUNTERS(X));
#undef X

#define X(name, doc) COUNTER_DESC(struct vm_relay_counters, name, doc)
const struct counter_set vm_relay_counter_set = COUNTER_SET("relay", VM_RELAY_COUNTERS(X));
#undef X
