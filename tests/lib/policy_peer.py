#!/usr/bin/python3
"""Backends for tests/integration/l7_policy.t, each on its own 127.0.0.1 ephemeral port, all in
one process:  policy_peer.py DIR NAME:MODE...
  ok        answers 200 with its name and a newline
  fail      answers 503 "fail"
  slow:S    waits S seconds, then answers 200 with its name
  hole      a listener whose accept queue is full, so that the kernel drops every SYN sent to
            it: a connect there neither succeeds nor fails until the client gives up
When every one listens, writes "NAME PORT" lines to DIR/ports. Every request appends
"NAME PATH" to DIR/hits at once (before any wait), so the test can count what each backend saw,
and the slow ones keep DIR/NAME.peak: the most connections they had open at the same time.
"""
import http.server
import os
import socket
import sys
import threading
import time

DIR = sys.argv[1]
hits_lock = threading.Lock()
hits = open(os.path.join(DIR, "hits"), "a", buffering=1)


def make_handler(name, mode, delay):
    state = {"open": 0, "peak": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            # Head and body go in two writes: without this, Nagle holds the body back until
            # the proxy's delayed ACK, 40 ms a request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with lock:
                state["open"] += 1
                if state["open"] > state["peak"]:
                    state["peak"] = state["open"]
                    with open(os.path.join(DIR, name + ".peak"), "w") as f:
                        f.write("%d\n" % state["peak"])

        def finish(self):
            with lock:
                state["open"] -= 1
            super().finish()

        def do_GET(self):
            with hits_lock:
                hits.write("%s %s\n" % (name, self.path))
            if delay:
                time.sleep(delay)
            status, body = (503, b"fail\n") if mode == "fail" else (200, (name + "\n").encode())
            try:
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the proxy gave up on this attempt (a timeout) and closed

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    ports = []
    keep = []
    for spec in sys.argv[2:]:
        name, _, mode = spec.partition(":")
        delay = 0.0
        if mode.startswith("slow"):
            delay = float(mode.split(":")[1])
        if mode == "hole":
            lsn = socket.socket()
            lsn.bind(("127.0.0.1", 0))
            lsn.listen(0)
            # One connection nobody accepts fills a backlog of 0; later SYNs are dropped.
            filler = socket.create_connection(lsn.getsockname())
            keep += [lsn, filler]
            ports.append((name, lsn.getsockname()[1]))
            continue
        srv = Server(("127.0.0.1", 0), make_handler(name, mode, delay))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        keep.append(srv)
        ports.append((name, srv.server_address[1]))
    tmp = os.path.join(DIR, "ports.tmp")
    with open(tmp, "w") as f:
        for name, port in ports:
            f.write("%s %d\n" % (name, port))
    os.rename(tmp, os.path.join(DIR, "ports"))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
