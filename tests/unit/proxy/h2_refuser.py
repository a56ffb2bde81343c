#!/usr/bin/python3
"""An h2c (prior knowledge) upstream for http_proxy_test that refuses streams.

/refuse/K/N resets the first N streams whose key is K with REFUSED_STREAM, /reset/K/N with
INTERNAL_ERROR, /malformed/K/N answers them with a header name HTTP/2 forbids (upper case);
any other stream (and those after the first N) gets 200 and a body saying how
many streams key K has seen and the x-envoy-attempt-count it carried. Prints the port it
listens on (127.0.0.1) and closes its stdout, then serves until its stdin closes, so it ends
with the test.
"""
import os
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

seen = {}
lock = threading.Lock()


def handle(conn, ev):
    hdrs = dict(ev.headers)
    parts = hdrs.get(":path", "").split("/")
    kind, key, first = "", "", 0
    if len(parts) == 4 and parts[3].isdigit():
        kind, key, first = parts[1], parts[2], int(parts[3])
    with lock:
        seen[key] = seen.get(key, 0) + 1
        count = seen[key]
    if kind in ("refuse", "reset") and count <= first:
        code = (h2.errors.ErrorCodes.REFUSED_STREAM if kind == "refuse"
                else h2.errors.ErrorCodes.INTERNAL_ERROR)
        conn.reset_stream(ev.stream_id, error_code=code)
        return
    if kind == "malformed" and count <= first:
        conn.send_headers(ev.stream_id, [(":status", "200"), ("X-Upper", "1")],
                          end_stream=True)
        return
    body = ("seen=%d attempt=%s" %
            (count, hdrs.get("x-envoy-attempt-count", "-"))).encode()
    conn.send_headers(ev.stream_id, [(":status", "200"),
                                     ("content-length", str(len(body)))])
    conn.send_data(ev.stream_id, body, end_stream=True)


def serve(sock):
    # Outbound headers unchecked and as given, so that /malformed can break the rules.
    cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config=cfg)
    try:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    handle(conn, ev)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, h2.exceptions.ProtocolError) as e:
        print("h2_refuser: %s" % e, file=sys.stderr)
    sock.close()


def accept_loop(lsock):
    while True:
        s, _ = lsock.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


def main():
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    # The port, then EOF: the test reads up to it.
    sys.stdout.write("%d\n" % lsock.getsockname()[1])
    sys.stdout.flush()
    os.close(1)
    threading.Thread(target=accept_loop, args=(lsock,), daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()
