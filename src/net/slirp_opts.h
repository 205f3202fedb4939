/*
 * Options of the user-mode backend, "user[:OPTIONS]": parsed and checked
 * here, apart from libslirp, so that the parser can be tested on its own.
 *
 * OPTIONS is a comma-separated list; defaults follow QEMU's user networking:
 *   net=A.B.C.D/N     guest network            (10.0.2.0/24)
 *   host=A.B.C.D      the host as the guest sees it; reaches host loopback
 *                                              (net + 2)
 *   dhcpstart=A.B.C.D first DHCP lease         (net + 15)
 *   dns=A.B.C.D       DNS forwarder            (net + 3)
 *   hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
 *                     host-to-guest port forward, repeatable; HOSTADDR
 *                     defaults to 0.0.0.0, GUESTADDR to dhcpstart
 *   restrict=on|off   on: the guest reaches nothing outside (forwards still work)
 */
#ifndef KVMINI_NET_SLIRP_OPTS_H
#define KVMINI_NET_SLIRP_OPTS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

#define SLIRP_OPTS_MAX_HOSTFWD 16
/* Longest OPTIONS text accepted. */
#define SLIRP_OPTS_MAX_LEN 1024

struct slirp_hostfwd {
	bool udp;
	struct in_addr host_addr;    /* network byte order, like all addresses here */
	uint16_t host_port;          /* host byte order */
	struct in_addr guest_addr;
	uint16_t guest_port;
};

struct slirp_opts {
	struct in_addr net;
	struct in_addr mask;
	struct in_addr host;
	struct in_addr dhcp_start;
	struct in_addr dns;
	bool restrict_guest;
	unsigned nhostfwd;
	struct slirp_hostfwd hostfwd[SLIRP_OPTS_MAX_HOSTFWD];
};

/* Fill @opts with the defaults (10.0.2.0/24, host .2, DHCP from .15, DNS .3). */
void slirp_opts_default(struct slirp_opts *opts);

/*
 * Parse @text (the part after "user:"; NULL or "" means defaults) into
 * @opts and check it as a whole: every address inside the network, none of
 * them its network or broadcast address, host and dns distinct, no forward
 * given twice. Returns 0, or -EINVAL with a message in @eb.
 */
int slirp_opts_parse(struct slirp_opts *opts, const char *text, struct errbuf *eb);

#endif
