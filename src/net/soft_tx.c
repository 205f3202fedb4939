/* Offloads finished in software for backends of plain frames (soft_tx.h). */
#include "net/soft_tx.h"

#include <errno.h>
#include <stdlib.h>

#include "core/compiler.h"
#include "core/guest_mem.h"

int net_soft_tx_init(struct net_soft_tx *s)
{
	s->frame = malloc(NET_OFFLOAD_FRAME_MAX);
	s->seg = malloc(NET_OFFLOAD_FRAME_MAX);
	s->next = 0;
	if (s->frame && s->seg)
		return 0;
	net_soft_tx_destroy(s);
	return -ENOMEM;
}

void net_soft_tx_destroy(struct net_soft_tx *s)
{
	free(s->frame);
	free(s->seg);
	s->frame = s->seg = NULL;
}

/* One plain frame to the backend; a kept one would point into our buffer. */
static int send_plain(struct net_backend *be, uint8_t *buf, size_t len)
{
	struct iovec v = { buf, len };
	int r = be->ops->send(be, &v, 1, NET_TOKEN_COPY);

	return r == NET_SEND_KEPT ? -EINVAL : r;
}

int net_soft_tx_send(struct net_soft_tx *s, struct net_backend *be,
		     const struct virtio_net_hdr_v1 *h, const struct iovec *iov,
		     unsigned iovcnt, size_t len)
{
	struct virtio_net_hdr_v1 checked;

	if (len > NET_OFFLOAD_FRAME_MAX || iov_to_buf(iov, iovcnt, 0, s->frame, len) != len)
		return -EINVAL;
	/* Checked again on the copy: the guest may have changed its buffer
	 * since the device's check, and the segments are built from this. */
	if (net_tx_hdr_check(h, ~0ull, s->frame, MIN(len, (size_t)NET_OFFLOAD_HEAD_MAX), len,
			     &checked) != NET_HDR_OK)
		return -EINVAL;
	h = &checked;
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		net_csum_complete(s->frame, len, h);
		int r = send_plain(be, s->frame, len);
		return r < 0 ? r : 1;
	}
	unsigned n = net_gso_segments(len, h), sent = 0;
	if (n > NET_SOFT_SEGMENTS_MAX)
		return -EMSGSIZE;
	for (; s->next < n; s->next++, sent++) {
		size_t seg_len = net_gso_segment(s->frame, len, h, s->next, s->seg);
		int r = seg_len ? send_plain(be, s->seg, seg_len) : -EINVAL;
		if (r == -EAGAIN)
			return -EAGAIN;
		if (r < 0) {
			s->next = 0;
			return r;
		}
	}
	s->next = 0;
	return (int)sent;
}
