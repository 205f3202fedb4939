/*
 * kvmini-vsock: the stock-kernel guest's end of the vsock checks
 * (guest/init, kvmini.vsock=). busybox has no AF_VSOCK, so this small
 * static program is put in the initramfs beside it.
 *
 *   kvmini-vsock cid                     print the guest's own CID
 *   kvmini-vsock listen PORT SECONDS     accept one connection on PORT
 *                                        within SECONDS, read a line, answer
 *                                        "guest got: LINE\n", print LINE
 *   kvmini-vsock connect CID PORT TEXT   connect to CID:PORT, send TEXT and
 *                                        a newline, print the answer's line
 *
 * Exit status 0 when the exchange happened, 1 otherwise (with why on
 * stderr), so the init script can judge each step.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>

#define LINE_MAX_LEN 256
#define IO_TIMEOUT_MS 20000

static int die(const char *what)
{
	fprintf(stderr, "kvmini-vsock: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Wait for @fd to be readable; 0 when it is, -1 (errno set) otherwise. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);

	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0 ? 0 : -1;
}

/* Read up to a newline (dropped) or EOF into @buf; its length, or -1. */
static int read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		if (wait_readable(fd, IO_TIMEOUT_MS) < 0)
			return -1;
		ssize_t n = read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0 || buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return (int)len;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmd_cid(void)
{
	unsigned int cid;
	int fd = open("/dev/vsock", O_RDONLY);

	if (fd < 0)
		return die("/dev/vsock");
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		return die("IOCTL_VM_SOCKETS_GET_LOCAL_CID");
	printf("%u\n", cid);
	close(fd);
	return 0;
}

static int cmd_listen(unsigned port, int seconds)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				    .svm_port = port };
	char line[LINE_MAX_LEN], answer[LINE_MAX_LEN + 16];
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0)
		return die("socket(AF_VSOCK)");
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(s, 1) < 0)
		return die("bind/listen");
	if (wait_readable(s, seconds * 1000) < 0)
		return die("waiting for the host's connection");
	int c = accept(s, NULL, NULL);
	if (c < 0)
		return die("accept");
	if (read_line(c, line, sizeof(line)) < 0)
		return die("reading the host's line");
	int n = snprintf(answer, sizeof(answer), "guest got: %s\n", line);
	if (write_all(c, answer, (size_t)n) < 0)
		return die("answering");
	printf("%s\n", line);
	close(c);
	close(s);
	return 0;
}

static int cmd_connect(unsigned cid, unsigned port, const char *text)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	char line[LINE_MAX_LEN];
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (s < 0)
		return die("socket(AF_VSOCK)");
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return die("connect");
	if (write_all(s, text, strlen(text)) < 0 || write_all(s, "\n", 1) < 0)
		return die("sending");
	if (read_line(s, line, sizeof(line)) <= 0)
		return die("reading the answer");
	printf("%s\n", line);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "cid"))
		return cmd_cid();
	if (argc == 4 && !strcmp(argv[1], "listen"))
		return cmd_listen((unsigned)strtoul(argv[2], NULL, 10), atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "connect"))
		return cmd_connect((unsigned)strtoul(argv[2], NULL, 10),
				   (unsigned)strtoul(argv[3], NULL, 10), argv[4]);
	fputs("usage: kvmini-vsock cid | listen PORT SECONDS | connect CID PORT TEXT\n", stderr);
	return 2;
}
