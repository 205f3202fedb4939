/*
 * vhost-user requests: the table of rules (sizes, fds, queue index, reply,
 * protocol feature) and the checks every message passes before its handler.
 */
#include "transport/vhost_user_internal.h"

/* ---- request table and validation ---------------------------------- */

static const struct vhost_user_req_rule req_rules[VHOST_USER_REQUEST_LIMIT] = {
#define VU_RULE(n, id, mn, mx, f, q, rep, pfbit) \
	[id] = { .name = #n, .min_size = (mn), .max_size = (mx), .fds = (f), \
		 .queue = (q), .reply = (rep), .pf = (pfbit) },
	VHOST_USER_REQUESTS(VU_RULE)
#undef VU_RULE
};

const struct vhost_user_req_rule *vhost_user_req_rule(uint32_t request)
{
	if (request >= ARRAY_SIZE(req_rules) || !req_rules[request].name)
		return NULL;
	return &req_rules[request];
}

const char *vhost_user_req_name(uint32_t request)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(request);
	return rule ? rule->name : "unknown";
}

int vhost_user_check_header(const struct vhost_user_hdr *hdr)
{
	if ((hdr->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return -EPROTO;
	if (hdr->flags & ~VHOST_USER_FLAGS_KNOWN || hdr->flags & VHOST_USER_FLAG_REPLY)
		return -EPROTO;
	if (hdr->size > VHOST_USER_PAYLOAD_MAX)
		return -EPROTO;
	return 0;
}

uint64_t vu_offered_pf(const struct vhost_user_server *s)
{
	return s->opts.protocol_features & VHOST_USER_PROTOCOL_FEATURES_SUPPORTED;
}

bool vu_has_pf(const struct vhost_user_server *s, unsigned bit)
{
	return (s->protocol_features >> bit) & 1;
}

/* [a, a + len) wraps past 2^64 (len 0 never wraps). */
static bool range_wraps(uint64_t a, uint64_t len)
{
	return len && a + (len - 1) < a;
}

static int vu_check_queue(const struct vhost_user_server *s, const struct vhost_user_req_rule *rule,
			  const union vhost_user_payload *p, const char **why)
{
	uint64_t idx;

	switch (rule->queue) {
	case VU_Q_NONE:
		return 0;
	case VU_Q_STATE:   /* vhost_vring_addr.index sits where state.index does */
		idx = p->state.index;
		break;
	case VU_Q_U64:
		if (p->u64 & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) {
			*why = "undefined bits set in the ring index word";
			return -EINVAL;
		}
		idx = p->u64 & VHOST_USER_VRING_IDX_MASK;
		break;
	default:
		return -EINVAL;
	}
	if (idx >= vu_ring_count(s)) {
		*why = "ring index out of range";
		return -EINVAL;
	}
	return 0;
}

static unsigned vu_expected_fds(const struct vhost_user_req_rule *rule,
				const union vhost_user_payload *p)
{
	switch (rule->fds) {
	case VU_FDS_ONE:
		return 1;
	case VU_FDS_UNLESS_NOFD:
		return (p->u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
	case VU_FDS_PER_REGION:
		return p->memory.nregions;
	case VU_FDS_NONE:
	default:
		return 0;
	}
}

/* SET_MEM_TABLE: UML sends room for two regions with one in use (72 bytes),
 * QEMU exactly as many as it uses, so the payload must cover the count, not
 * equal it. */
static int vu_check_mem_table(const struct vhost_user_hdr *hdr, const struct vhost_user_memory *m,
			      const char **why)
{
	if (m->nregions > VHOST_USER_MAX_REGIONS) {
		*why = "more than 8 memory regions";
		return -EINVAL;
	}
	if (hdr->size < VHOST_USER_MEM_HDR_SIZE + m->nregions * sizeof(m->regions[0])) {
		*why = "payload shorter than its memory regions";
		return -EINVAL;
	}
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct vhost_user_mem_region *r = &m->regions[i];
		if (r->size == 0 || range_wraps(r->gpa, r->size) || range_wraps(r->uva, r->size) ||
		    range_wraps(r->mmap_offset, r->size)) {
			*why = "empty or wrapping memory region";
			return -EINVAL;
		}
	}
	return 0;
}

static int vu_check_config(const struct vhost_user_hdr *hdr, const struct vhost_user_config *c,
			   const char **why)
{
	if (c->size > VHOST_USER_CONFIG_MAX || hdr->size != VHOST_USER_CONFIG_HDR_SIZE + c->size) {
		*why = "config size does not match the payload";
		return -EINVAL;
	}
	if (hdr->request == VHOST_USER_SET_CONFIG && c->flags > VHOST_USER_CONFIG_F_MIGRATION) {
		*why = "undefined SET_CONFIG flags";
		return -EINVAL;
	}
	return 0;
}

static bool is_pow2(uint32_t n)
{
	return n && !(n & (n - 1));
}

/* The values handlers rely on, per request. */
static int vu_check_values(const struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			   const union vhost_user_payload *p, const char **why)
{
	switch (hdr->request) {
	case VHOST_USER_SET_MEM_TABLE:
		return vu_check_mem_table(hdr, &p->memory, why);
	case VHOST_USER_SET_VRING_NUM:
		if (!is_pow2(p->state.num) || p->state.num > VHOST_USER_VRING_MAX) {
			*why = "ring size not a power of two up to 32768";
			return -EINVAL;
		}
		return 0;
	case VHOST_USER_SET_VRING_BASE:
		if (p->state.num > UINT16_MAX) {
			*why = "ring base above 65535 (packed rings are not served)";
			return -EINVAL;
		}
		return 0;
	case VHOST_USER_SET_VRING_ENABLE:
		if (p->state.num > 1) {
			*why = "ring enable not 0 or 1";
			return -EINVAL;
		}
		return 0;
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		return vu_check_config(hdr, &p->config, why);
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (p->u64 & ~vu_offered_pf(s)) {
			*why = "protocol features not offered";
			return -EINVAL;
		}
		return 0;
	default:
		return 0;
	}
}

int vhost_user_validate(const struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			const union vhost_user_payload *p, unsigned nfds, const char **why)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(hdr->request);
	int r;

	if (!rule) {
		*why = "request not served";
		return -EOPNOTSUPP;
	}
	if (hdr->size < rule->min_size || hdr->size > rule->max_size) {
		*why = "wrong payload size";
		return -EINVAL;
	}
	if (rule->pf != VU_PF_NONE && !vu_has_pf(s, (unsigned)rule->pf)) {
		*why = "its protocol feature was not negotiated";
		return -EPERM;
	}
	r = vu_check_queue(s, rule, p, why);
	if (r < 0)
		return r;
	r = vu_check_values(s, hdr, p, why);
	if (r < 0)
		return r;
	if (nfds != vu_expected_fds(rule, p)) {
		*why = "wrong number of file descriptors";
		return -EINVAL;
	}
	return 0;
}
