#!/usr/bin/python3
"""The HTTP/1.1 keep-alive backend of the drain tests: /sleep/MS answers "slept MS" after MS
milliseconds, anything else "slept 0" at once. Arguments: PORT [ADDRESS, default 127.0.0.1]."""
import http.server
import sys
import time


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        ms = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/sleep/") else 0
        time.sleep(ms / 1000)
        body = b"slept %d" % ms
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


addr = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
http.server.ThreadingHTTPServer((addr, int(sys.argv[1])), H).serve_forever()
