#!/bin/bash
# The virtio-mmio register rules, as the guest checks them on a virtio-net
# device.
. "$(dirname "$0")/lib.sh"

guest features features "" --net loopback
expect "virtio-mmio register rules (guest checks)" 0 'features: done \(0 failures\)'

kvm_end
