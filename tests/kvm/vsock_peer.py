#!/usr/bin/env python3
"""The host's end of a guest's vsock checks, over Firecracker's hybrid vsock
(kvmini run --vsock CID:PATH, PUT /vsock): unix sockets on the host.

  vsock_peer.py serve PATH LOG SECONDS
      listen on PATH (where kvmini connects a guest's connection to host
      port P: the vsock's uds_path + "_P"), take one connection within
      SECONDS, read a line, answer "host got: LINE\\n", write LINE to LOG
  vsock_peer.py connect PATH PORT TEXT LOG SECONDS
      until SECONDS have passed: connect to PATH (the vsock's uds_path),
      send "CONNECT PORT\\n", and once kvmini answers "OK <hostport>\\n",
      send TEXT and a newline and read the guest's line; LOG gets both
      lines. A refusal (the guest not listening yet) is retried.
  vsock_peer.py echo PATH LOG SECONDS
      listen on PATH, take one connection within SECONDS and send every
      byte back until EOF (or an error, or SECONDS without a byte: the VM
      killed under it counts as the end); LOG gets the bytes seen
  vsock_peer.py oneshot PATH PORT TEXT REPLY LOG SECONDS
      until SECONDS have passed: connect to PATH and write "CONNECT PORT\\n"
      and TEXT in one write (kvmini has to split what it reads at the
      line's end), then read until the bytes end with REPLY, EOF, or 10 s
      without a byte; done once they start with "OK ", else retried (kvmini
      closes a client the guest does not answer within 2 s). LOG gets the
      bytes of the last try.

Exit status 0 when the exchange happened, 1 otherwise.
"""
import os
import socket
import sys
import time


def read_line(sock):
    out = b""
    while not out.endswith(b"\n"):
        data = sock.recv(1)
        if not data:
            break
        out += data
    return out.decode(errors="replace").rstrip("\n")


def serve(path, log, seconds):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(seconds)
    conn, _ = srv.accept()
    conn.settimeout(30)
    line = read_line(conn)
    conn.sendall(("host got: %s\n" % line).encode())
    conn.close()
    srv.close()
    with open(log, "w") as f:
        f.write(line + "\n")
    return 0


def try_connect(path, port, text):
    """The two lines read, or None when the guest did not take the connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(("CONNECT %d\n" % port).encode())
        ok = read_line(sock)
        if not ok.startswith("OK "):
            return None
        sock.sendall((text + "\n").encode())
        return ok, read_line(sock)
    except OSError:
        return None
    finally:
        sock.close()


def connect(path, port, text, log, seconds):
    end = time.time() + seconds
    while time.time() < end:
        got = try_connect(path, port, text) if os.path.exists(path) else None
        if got:
            with open(log, "w") as f:
                f.write("\n".join(got) + "\n")
            return 0
        time.sleep(0.5)
    return 1


def echo(path, log, seconds):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(seconds)
    try:
        conn, _ = srv.accept()
    except OSError as e:
        sys.stderr.write("vsock_peer echo: no connection at %s: %s\n" % (path, e))
        return 1
    conn.settimeout(seconds)
    seen = b""
    while True:
        try:
            data = conn.recv(4096)
        except OSError:
            break
        if not data:
            break
        seen += data
        conn.sendall(data)
    conn.close()
    srv.close()
    with open(log, "wb") as f:
        f.write(seen)
    return 0


def try_oneshot(path, port, text, reply):
    """The bytes read, or None when PATH took no connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    sock.settimeout(10)
    out = b""
    try:
        sock.sendall(b"CONNECT %d\n%s" % (port, text))
        while not out.endswith(reply):
            data = sock.recv(4096)
            if not data:
                break
            out += data
    except OSError:
        pass
    sock.close()
    return out


def oneshot(path, port, text, reply, log, seconds):
    end = time.time() + seconds
    out = b""
    while time.time() < end:
        got = try_oneshot(path, port, text, reply)
        if got is None:
            time.sleep(0.1)
            continue
        out = got
        if out.startswith(b"OK "):
            break
        time.sleep(0.2)
    with open(log, "wb") as f:
        f.write(out)
    return 0 if out.startswith(b"OK ") else 1


def main(argv):
    if len(argv) == 5 and argv[1] == "serve":
        return serve(argv[2], argv[3], float(argv[4]))
    if len(argv) == 7 and argv[1] == "connect":
        return connect(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]))
    if len(argv) == 5 and argv[1] == "echo":
        return echo(argv[2], argv[3], float(argv[4]))
    if len(argv) == 8 and argv[1] == "oneshot":
        return oneshot(argv[2], int(argv[3]), argv[4].encode(), argv[5].encode(), argv[6],
                       float(argv[7]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
