#!/bin/bash
# A queue the guest breaks: NEEDS_RESET and a config interrupt, the driver
# resets the device and it works again; kvmini counts the broken avail index.
. "$(dirname "$0")/lib.sh"

guest poison poison "" --net loopback --counters
expect "poisoned queue: NEEDS_RESET, config interrupt, reset recovers (guest checks)" 0 \
	'poison: done \(0 failures\)'
expect "poisoned queue counted" 0 'avail_index_invalid 1'

kvm_end
