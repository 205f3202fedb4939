/*
 * Parser for the user-mode backend's options (see slirp_opts.h). Everything
 * here is operator input: each value is checked and a refusal names the
 * option and what was wrong with it.
 */
#include "net/slirp_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"

/* Which of the derived addresses the operator gave explicitly. */
struct opts_seen {
	bool host, dhcp_start, dns;
	/* Forwards without a guest address get dhcpstart once it is known. */
	bool fwd_guest_set[SLIRP_OPTS_MAX_HOSTFWD];
};

static struct in_addr addr_from_host(uint32_t host_order)
{
	return (struct in_addr){ .s_addr = htonl(host_order) };
}

void slirp_opts_default(struct slirp_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->net = addr_from_host(0x0a000200);         /* 10.0.2.0 */
	opts->mask = addr_from_host(0xffffff00);        /* /24 */
	opts->host = addr_from_host(0x0a000202);        /* 10.0.2.2 */
	opts->dhcp_start = addr_from_host(0x0a00020f);  /* 10.0.2.15 */
	opts->dns = addr_from_host(0x0a000203);         /* 10.0.2.3 */
}

/* parse_ipv4 - dotted quad only (inet_pton refuses the short forms). */
static int parse_ipv4(const char *text, struct in_addr *out)
{
	return inet_pton(AF_INET, text, out) == 1 ? 0 : -EINVAL;
}

/* parse_uint - a plain decimal in [min, max], no sign, no spaces. */
static int parse_uint(const char *text, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* parse_net - "A.B.C.D/N"; the host bits of A.B.C.D must be zero. */
static int parse_net(struct slirp_opts *opts, char *val, struct errbuf *eb)
{
	char *slash = strchr(val, '/');
	unsigned long bits;

	if (!slash) {
		errbuf_set(eb, "net=%s: give the prefix length, e.g. net=10.0.2.0/24", val);
		return -EINVAL;
	}
	*slash = '\0';
	/* /31 and /32 leave no room for the host, DNS and a guest. */
	if (parse_ipv4(val, &opts->net) || parse_uint(slash + 1, 1, 30, &bits)) {
		errbuf_set(eb, "net=%s/%s: expected A.B.C.D/N with N from 1 to 30",
			   val, slash + 1);
		return -EINVAL;
	}
	uint32_t mask = 0xffffffffu << (32 - bits);
	opts->mask = addr_from_host(mask);
	if (ntohl(opts->net.s_addr) & ~mask) {
		errbuf_set(eb, "net=%s/%lu: host bits are set (did you mean the network address?)",
			   val, bits);
		return -EINVAL;
	}
	return 0;
}

/* parse_port - a port number, 1 to 65535. */
static int parse_port(const char *text, uint16_t *port)
{
	unsigned long v;

	if (parse_uint(text, 1, 65535, &v))
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* parse_endpoint - "[ADDR]:PORT"; an empty ADDR leaves *@addr_set false. */
static int parse_endpoint(char *text, struct in_addr *addr, bool *addr_set, uint16_t *port)
{
	char *colon = strrchr(text, ':');

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	*addr_set = *text != '\0';
	if (*addr_set && parse_ipv4(text, addr))
		return -EINVAL;
	return parse_port(colon + 1, port);
}

/* parse_hostfwd - "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT". */
static int parse_hostfwd(struct slirp_opts *opts, struct opts_seen *seen, const char *val,
			 struct errbuf *eb)
{
	char buf[128];
	struct slirp_hostfwd fwd = { .host_addr.s_addr = htonl(INADDR_ANY) };
	bool host_set;

	if (opts->nhostfwd == SLIRP_OPTS_MAX_HOSTFWD) {
		errbuf_set(eb, "hostfwd: at most %d forwards", SLIRP_OPTS_MAX_HOSTFWD);
		return -EINVAL;
	}
	if (strlen(val) >= sizeof(buf))
		goto bad;
	strcpy(buf, val);
	char *colon = strchr(buf, ':');
	char *dash = strchr(buf, '-');
	if (!colon || !dash || dash < colon)
		goto bad;
	*colon = '\0';
	*dash = '\0';
	if (!strcmp(buf, "udp"))
		fwd.udp = true;
	else if (strcmp(buf, "tcp") && buf[0])
		goto bad;
	if (parse_endpoint(colon + 1, &fwd.host_addr, &host_set, &fwd.host_port) ||
	    parse_endpoint(dash + 1, &fwd.guest_addr, &seen->fwd_guest_set[opts->nhostfwd],
			   &fwd.guest_port))
		goto bad;
	opts->hostfwd[opts->nhostfwd++] = fwd;
	return 0;
bad:
	errbuf_set(eb,
		   "hostfwd=%s: expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
		   "with ports 1-65535, e.g. hostfwd=tcp:127.0.0.1:2222-:22", val);
	return -EINVAL;
}

/* parse_addr_opt - one of host=, dhcpstart=, dns=. */
static int parse_addr_opt(const char *key, const char *val, struct in_addr *addr,
			  bool *seen, struct errbuf *eb)
{
	if (parse_ipv4(val, addr)) {
		errbuf_set(eb, "%s=%s: expected an IPv4 address A.B.C.D", key, val);
		return -EINVAL;
	}
	*seen = true;
	return 0;
}

/* parse_one - dispatch one KEY=VALUE item. */
static int parse_one(struct slirp_opts *opts, struct opts_seen *seen, char *item, struct errbuf *eb)
{
	char *eq = strchr(item, '=');

	if (!eq || eq == item || !eq[1]) {
		errbuf_set(eb, "user option \"%s\": expected KEY=VALUE", item);
		return -EINVAL;
	}
	*eq = '\0';
	char *val = eq + 1;
	if (!strcmp(item, "net"))
		return parse_net(opts, val, eb);
	if (!strcmp(item, "host"))
		return parse_addr_opt(item, val, &opts->host, &seen->host, eb);
	if (!strcmp(item, "dhcpstart"))
		return parse_addr_opt(item, val, &opts->dhcp_start, &seen->dhcp_start, eb);
	if (!strcmp(item, "dns"))
		return parse_addr_opt(item, val, &opts->dns, &seen->dns, eb);
	if (!strcmp(item, "hostfwd"))
		return parse_hostfwd(opts, seen, val, eb);
	if (!strcmp(item, "restrict")) {
		if (strcmp(val, "on") && strcmp(val, "off")) {
			errbuf_set(eb, "restrict=%s: expected on or off", val);
			return -EINVAL;
		}
		opts->restrict_guest = !strcmp(val, "on");
		return 0;
	}
	errbuf_set(eb, "unknown user option \"%s\" (known: net, host, dhcpstart, dns, hostfwd, "
		   "restrict)", item);
	return -EINVAL;
}

/* check_in_net - @addr is a usable address of the guest network. */
static int check_in_net(const struct slirp_opts *opts, const char *what, struct in_addr addr,
			struct errbuf *eb)
{
	uint32_t a = ntohl(addr.s_addr), net = ntohl(opts->net.s_addr);
	uint32_t mask = ntohl(opts->mask.s_addr);
	char text[INET_ADDRSTRLEN], ntext[INET_ADDRSTRLEN];

	if ((a & mask) == net && a != net && a != (net | ~mask))
		return 0;
	inet_ntop(AF_INET, &addr, text, sizeof(text));
	inet_ntop(AF_INET, &opts->net, ntext, sizeof(ntext));
	errbuf_set(eb, "%s %s is not a usable address of the guest network %s/%d",
		   what, text, ntext, __builtin_popcount(mask));
	return -EINVAL;
}

/* derive_offset - the address at @offset inside the network, if it fits. */
static int derive_offset(const struct slirp_opts *opts, const char *what, uint32_t offset,
			 struct in_addr *out, struct errbuf *eb)
{
	uint32_t mask = ntohl(opts->mask.s_addr);

	if (offset >= ~mask) {
		errbuf_set(eb, "net is too small for the default %s: give %s= explicitly",
			   what, what);
		return -EINVAL;
	}
	*out = addr_from_host(ntohl(opts->net.s_addr) + offset);
	return 0;
}

/* finish - derive unset addresses from net, then check the whole set. */
static int finish(struct slirp_opts *opts, const struct opts_seen *seen, struct errbuf *eb)
{
	if ((!seen->host && derive_offset(opts, "host", 2, &opts->host, eb)) ||
	    (!seen->dns && derive_offset(opts, "dns", 3, &opts->dns, eb)) ||
	    (!seen->dhcp_start &&
	     derive_offset(opts, "dhcpstart", 15, &opts->dhcp_start, eb)))
		return -EINVAL;
	if (check_in_net(opts, "host", opts->host, eb) ||
	    check_in_net(opts, "dns", opts->dns, eb) ||
	    check_in_net(opts, "dhcpstart", opts->dhcp_start, eb))
		return -EINVAL;
	if (opts->host.s_addr == opts->dns.s_addr) {
		errbuf_set(eb, "host and dns must be different addresses");
		return -EINVAL;
	}
	for (unsigned i = 0; i < opts->nhostfwd; i++) {
		struct slirp_hostfwd *f = &opts->hostfwd[i];
		if (!seen->fwd_guest_set[i])
			f->guest_addr = opts->dhcp_start;
		if (check_in_net(opts, "hostfwd guest address", f->guest_addr, eb))
			return -EINVAL;
		for (unsigned j = 0; j < i; j++) {
			const struct slirp_hostfwd *g = &opts->hostfwd[j];
			if (g->udp == f->udp && g->host_port == f->host_port &&
			    g->host_addr.s_addr == f->host_addr.s_addr) {
				errbuf_set(eb, "hostfwd: %s host port %u is forwarded twice",
					   f->udp ? "udp" : "tcp", f->host_port);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int slirp_opts_parse(struct slirp_opts *opts, const char *text, struct errbuf *eb)
{
	char buf[SLIRP_OPTS_MAX_LEN + 1];
	struct opts_seen seen = { 0 };
	char *save = NULL;

	slirp_opts_default(opts);
	if (!text || !*text)
		return 0;
	if (strlen(text) > SLIRP_OPTS_MAX_LEN) {
		errbuf_set(eb, "user options are longer than %d characters", SLIRP_OPTS_MAX_LEN);
		return -EINVAL;
	}
	strcpy(buf, text);
	/* strtok_r would silently skip empty items; a stray comma is a typo. */
	if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) {
		errbuf_set(eb, "user options \"%s\": empty item", text);
		return -EINVAL;
	}
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (parse_one(opts, &seen, item, eb))
			return -EINVAL;
	}
	return finish(opts, &seen, eb);
}
