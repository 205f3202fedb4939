/*
 * virtio-vsock snapshot state, section "VSCK" (see virtio_vsock.h): the
 * guest's CID, the socket path the device listened on, the next host port
 * of a host-initiated connection and whether a transport reset waited for
 * the driver, as Firecracker persists its vsock device. The connections
 * are host sockets and stay behind: the restored device starts with none
 * and tells the guest so (TRANSPORT_RESET) at its first resume. Loop
 * thread, the device paused or never activated.
 */
#include <string.h>

#include "core/compiler.h"
#include "core/state_io.h"
#include "vsock/virtio_vsock.h"

#define VSCK_TAG "VSCK"

static struct virtio_vsock *to_vsock(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_vsock, vdev);
}

int virtio_vsock_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb)
{
	struct virtio_vsock *vs = to_vsock(vdev);

	state_begin(w, VSCK_TAG);
	state_put_u64(w, vs->guest_cid);
	state_put_str(w, vs->uds_path);
	state_put_u32(w, vs->next_local_port);
	state_put_bool(w, vs->event_ack_pending);
	state_end(w);
	return 0;
}

struct vsock_state {
	uint64_t cid;
	char uds_path[sizeof(((struct virtio_vsock *)0)->uds_path)];
	uint32_t next_local_port;
	bool event_ack_pending;
};

/* The guest's driver read its CID at probe and keeps it: the device built
 * here must have it. The path may differ (vsock_override). */
static bool parse_body(struct state_reader *sec, const struct virtio_vsock *vs,
		       struct vsock_state *s)
{
	s->cid = state_get_u64(sec);
	state_get_str(sec, s->uds_path, sizeof(s->uds_path));
	s->next_local_port = state_get_u32(sec);
	s->event_ack_pending = state_get_bool(sec);
	if (sec->failed)
		return false;
	if (s->cid != vs->guest_cid)
		return state_fail(sec, "the snapshot's guest CID is %llu, this vsock device's %llu",
				  (unsigned long long)s->cid, (unsigned long long)vs->guest_cid);
	if (s->next_local_port < VSOCK_LOCAL_PORT_FIRST)
		return state_fail(sec, "next host port %u (from %u up)", s->next_local_port,
				  VSOCK_LOCAL_PORT_FIRST);
	return true;
}

bool virtio_vsock_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			     struct state_reader *r)
{
	struct virtio_vsock *vs = to_vsock(vdev);
	struct state_reader sec;
	struct vsock_state s;

	memset(&s, 0, sizeof(s));
	if (!state_section(r, VSCK_TAG, &sec))
		return false;
	parse_body(&sec, vs, &s);
	if (!state_section_done(r, &sec))
		return false;
	/* Ports go on from where they were: a guest may still hold state of
	 * a host port it saw before (Firecracker keeps local_port_last). */
	vs->next_local_port = s.next_local_port;
	vs->event_ack_pending = s.event_ack_pending;
	vs->reset_on_resume = true;
	return true;
}
