/*
 * The host side of Firecracker's hybrid vsock (its docs/vsock.md): the
 * guest's connections become unix-socket connections.
 *
 *  - Host-initiated: a host process connects to the device's socket P and
 *    writes "CONNECT <port>\n" (the command in any case); the device asks the
 *    guest for <port> and, once the guest accepts, answers "OK <hostport>\n".
 *    The line is taken up to its newline and no further: what follows is the
 *    stream's first data.
 *  - Guest-initiated: a guest connection to the host (CID 2) port N becomes a
 *    connection to the socket "P_N", where a host process listens.
 *
 * Every socket here is non-blocking and close-on-exec.
 */
#ifndef KVMINI_VSOCK_VSOCK_UDS_H
#define KVMINI_VSOCK_VSOCK_UDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

struct errbuf;

/* Longest "CONNECT <port>\n" line taken, with room for spaces. */
#define VSOCK_UDS_LINE_MAX 32u
/* Longest P that still leaves room for "_<port>" in a socket address. */
#define VSOCK_UDS_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 12)

/* Listen on @path: a stale socket file there is replaced, anything else
 * refused (-EEXIST). The listening fd, or -errno with why in @eb. */
int vsock_uds_listen(const char *path, struct errbuf *eb);

/* Connect to "@path_@port": the fd, or -errno (-ENOENT, -ECONNREFUSED:
 * nobody listens; -EAGAIN: the listener's backlog is full). */
int vsock_uds_connect(const char *path, uint32_t port);

/* "CONNECT <port>" (no newline; the command in any case, one or more
 * spaces, a decimal port that fits 32 bits): 0 with *@port, or -EINVAL. */
int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port);

/* Take the client's command line from @fd: 1 with *@port, 0 when the line
 * is not whole yet, -EINVAL for a bad or overlong line, -ECONNRESET when
 * the client went away (@hung_up: epoll said so, and a partial line will
 * never be whole). Reads the line's bytes and no more. */
int vsock_uds_read_connect(int fd, bool hung_up, uint32_t *port);

#endif
