/*
 * A transport for tests, fuzzers and benches that only counts what the
 * device asks of it: used-buffer interrupts per queue and config changes.
 */
#ifndef KVMINI_TESTS_COUNT_TRANSPORT_H
#define KVMINI_TESTS_COUNT_TRANSPORT_H

#include <stdint.h>

#include "virtio/device.h"

#define COUNT_TRANSPORT_MAX_QUEUES 16

struct count_transport {
	struct virtio_transport t;
	uint64_t used[COUNT_TRANSPORT_MAX_QUEUES];
	uint64_t used_out_of_range;   /* interrupts for a queue the device lacks */
	uint64_t config;
	unsigned num_queues;
};

/* Zero the counts and attach to @dev (dev->transport). */
void count_transport_attach(struct count_transport *ct, struct virtio_device *dev);

#endif
