#include "count_transport.h"

#include <string.h>

#include "core/compiler.h"

static void count_signal_used(struct virtio_transport *t, unsigned q)
{
	struct count_transport *ct = container_of(t, struct count_transport, t);

	if (q < ct->num_queues && q < COUNT_TRANSPORT_MAX_QUEUES)
		ct->used[q]++;
	else
		ct->used_out_of_range++;
}

static void count_signal_config(struct virtio_transport *t)
{
	container_of(t, struct count_transport, t)->config++;
}

static const struct virtio_transport_ops count_ops = {
	.signal_used = count_signal_used,
	.signal_config = count_signal_config,
};

void count_transport_attach(struct count_transport *ct, struct virtio_device *dev)
{
	memset(ct, 0, sizeof(*ct));
	ct->t.ops = &count_ops;
	ct->num_queues = dev->num_queues;
	dev->transport = &ct->t;
}
