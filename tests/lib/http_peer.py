#!/usr/bin/python3
"""A small HTTP/1.1 server for shunt's tests, for what static file servers do not do:
  POST /hash        reads the body (content-length or chunked) and answers "SIZE SHA256"
  GET /chunked/N    answers N bytes (byte i is i % 251) with transfer-encoding: chunked,
                    in chunks of 16,384 bytes, and a trailer x-sum: SHA256 of the body
usage: http_peer.py PORT [ADDRESS]
"""
import hashlib
import http.server
import socketserver
import sys


def body_bytes(n):
    pattern = bytes(i % 251 for i in range(251))
    return (pattern * (n // 251 + 1))[:n]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def do_POST(self):
        body = self.read_body()
        text = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
        self.send_response(200)
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_GET(self):
        if not self.path.startswith("/chunked/"):
            self.send_error(404)
            return
        data = body_bytes(int(self.path.split("/")[2]))
        self.send_response(200)
        self.send_header("transfer-encoding", "chunked")
        self.send_header("trailer", "x-sum")
        self.end_headers()
        for i in range(0, len(data), 16384):
            part = data[i:i + 16384]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\nx-sum: %s\r\n\r\n" % hashlib.sha256(data).hexdigest().encode())


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server((sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0", int(sys.argv[1])),
           Handler).serve_forever()
