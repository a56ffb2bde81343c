#!/usr/bin/python3
"""Peers for shunt's tunnel tests (upgrades and CONNECT), with the standard library only.
  tunnel_peer.py ws-server PORT [ADDR] a WebSocket echo server (RFC 6455 handshake, frames of
                                      any size echoed with the same opcode)
  tunnel_peer.py echo-server PORT     a TCP echo server; echoes until the client's FIN, then
                                      closes its side
  tunnel_peer.py connect-server PORT  an upstream HTTP proxy stand-in: answers a CONNECT head
                                      with 200 (anything else with 405), then echoes as above
  tunnel_peer.py half-server PORT FILE
                                      says "bye" and ends its side at once, then reads until
                                      the client's FIN and writes "SIZE SHA256" of it to FILE
  tunnel_peer.py ws-client HOST PORT AUTHORITY N SIZE [path=P] [tls=SNI:CAFILE]
                                      upgrades GET / (or P) to websocket, over TLS if asked,
                                      sends N text messages and one binary message of SIZE random
                                      bytes, checks every echo; prints "101", then "text N/N",
                                      then "binary SIZE ok"
  tunnel_peer.py connect HOST PORT TARGET SIZE
                                      CONNECT TARGET through the proxy at HOST:PORT, sends SIZE
                                      random bytes and half-closes, reads the echo to EOF;
                                      prints the status, then "echo SIZE ok" when the SHA-256 of
                                      what came back matches
  tunnel_peer.py idle HOST PORT TARGET
                                      CONNECT TARGET, then waits without sending; prints the
                                      seconds until the proxy closed the tunnel
  tunnel_peer.py h2-connect HOST PORT TARGET SIZE
                                      the same as connect over HTTP/2 (h2c, prior knowledge):
                                      DATA both ways within the flow-control windows,
                                      END_STREAM as the half-close
  tunnel_peer.py h2-ws HOST PORT AUTHORITY N SIZE
                                      an RFC 8441 extended CONNECT (:protocol websocket), then
                                      the ws-client exchange inside the stream's DATA; prints
                                      "enable_connect_protocol V" first (the server's setting)
  tunnel_peer.py h2-stall HOST PORT TARGET SIZE
                                      h2-connect with a client that stops granting window for
                                      3 s while it sends: prints "stalled N", the bytes it could
                                      send meanwhile (bounded when flow control is honest end to
                                      end), then grants again and prints "echo SIZE ok"
  tunnel_peer.py h2-half HOST PORT TARGET SIZE
                                      HTTP/2 CONNECT to a half-server: waits for "bye" and the
                                      stream's END_STREAM, then sends SIZE bytes and its own
                                      END_STREAM; prints "bye ended" and "sent SIZE SHA256"
  tunnel_peer.py h2-idle HOST PORT TARGET
                                      CONNECT TARGET over HTTP/2, then waits; prints how the
                                      stream ended and after how many seconds
Every socket has a timeout, so nothing waits forever.
"""
import base64
import hashlib
import os
import select
import socket
import ssl
import socketserver
import struct
import sys
import threading
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B3E"
TIMEOUT = 10


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed before the head ended")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, rest


class Reader:
    """Reads exact byte counts from a socket, starting with bytes already received."""

    def __init__(self, sock, pre=b""):
        self.sock = sock
        self.buf = bytearray(pre)

    def exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed mid-frame")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def frame(opcode, payload):
    """A server's (unmasked) frame."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def unmask(payload, key):
    # XOR with the repeated key, a word at a time: a megabyte in pure Python bytes is slow.
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def read_frame(r):
    b0, b1 = r.exact(2)
    opcode = b0 & 0x0F
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", r.exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", r.exact(8))[0]
    key = r.exact(4) if b1 & 0x80 else None
    payload = r.exact(n)
    if key and n:
        payload = unmask(payload, key)
    return opcode, payload


def frame_fast(opcode, payload):
    """A masked client frame; the mask is applied with big-integer XOR (see unmask)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + (unmask(payload, key) if n else b"")


class WsHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(TIMEOUT)
        try:
            _, h, rest = read_head(s)
            if h.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in h:
                s.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                return
            accept = base64.b64encode(
                hashlib.sha1(h["sec-websocket-key"].encode() + WS_GUID).digest())
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            r = Reader(s, rest)
            while True:
                opcode, payload = read_frame(r)
                if opcode == 8:
                    s.sendall(frame(8, payload[:2]))
                    return
                s.sendall(frame(opcode, payload))
        except (EOFError, OSError):
            return


def echo(s, pre=b""):
    if pre:
        s.sendall(pre)
    while True:
        b = s.recv(65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(30)
        try:
            echo(s)
        except OSError:
            return


class ConnectHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(30)
        try:
            line, _, rest = read_head(s)
            if not line.startswith("CONNECT "):
                s.sendall(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                return
            s.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            echo(s, rest)
        except (EOFError, OSError):
            return


class HalfHandler(socketserver.BaseRequestHandler):
    out = None

    def handle(self):
        s = self.request
        s.settimeout(30)
        try:
            s.sendall(b"bye\n")
            s.shutdown(socket.SHUT_WR)
            h, n = hashlib.sha256(), 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                h.update(b)
                n += len(b)
            with open(HalfHandler.out, "w") as f:
                f.write("%d %s\n" % (n, h.hexdigest()))
        except OSError:
            return


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    address_family = socket.AF_INET


def ws_client(host, port, authority, n, size, *opts):
    o = dict(x.split("=", 1) for x in opts)
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    if "tls" in o:
        sni, ca = o["tls"].split(":", 1)
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(s, server_hostname=sni)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + o.get("path", "/").encode() + b" HTTP/1.1\r\nHost: " +
              authority.encode() +
              b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13"
              b"\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    status, h, rest = read_head(s)
    print(status.split(" ")[1], flush=True)
    want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    if h.get("sec-websocket-accept") != want or h.get("upgrade", "").lower() != "websocket" \
            or "upgrade" not in h.get("connection", "").lower():
        print("bad handshake: %r" % h)
        return 1
    r = Reader(s, rest)
    ok = 0
    for i in range(int(n)):
        msg = ("message %d " % i + "x" * i).encode()
        s.sendall(frame_fast(1, msg))
        opcode, payload = read_frame(r)
        ok += opcode == 1 and payload == msg
    print("text %d/%s" % (ok, n), flush=True)
    data = os.urandom(int(size))
    send_while_reading(s, r, frame_fast(2, data))
    opcode, payload = read_frame(r)
    good = opcode == 2 and hashlib.sha256(payload).digest() == hashlib.sha256(data).digest()
    print("binary %d %s" % (len(payload), "ok" if good else "BAD"), flush=True)
    s.sendall(frame_fast(8, struct.pack("!H", 1000)))
    opcode, _ = read_frame(r)
    print("close %d" % opcode, flush=True)
    return 0


def send_while_reading(s, r, data):
    """Sends data whole while what the peer echoes meanwhile goes into r, in this one thread:
    an SSL socket must not be written by one thread while another reads it."""
    again = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
    view = memoryview(data)
    s.setblocking(False)
    try:
        while view:
            if not any(select.select([s], [s], [], TIMEOUT)[:2]):
                raise TimeoutError("peer neither reads nor writes")
            try:
                view = view[s.send(view[:65536]):]
            except again:
                pass
            try:
                while True:  # all of it: TLS may hold decrypted bytes select cannot see
                    chunk = s.recv(65536)
                    if not chunk:
                        raise EOFError("connection closed mid-frame")
                    r.buf += chunk
            except again:
                pass
    finally:
        s.settimeout(TIMEOUT)


def connect(host, port, target):
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.sendall(b"CONNECT " + target.encode() + b" HTTP/1.1\r\nHost: " + target.encode() +
              b"\r\n\r\n")
    status, _, rest = read_head(s)
    print(status.split(" ")[1], flush=True)
    return s, rest


def connect_echo(host, port, target, size):
    s, rest = connect(host, port, target)
    data = os.urandom(int(size))

    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray(rest)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    sender.join()
    good = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    print("echo %d %s" % (len(got), "ok" if good else "BAD"), flush=True)
    return 0 if good else 1


def connect_idle(host, port, target):
    s, _ = connect(host, port, target)
    s.settimeout(30)
    t = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    print("closed after %.1f" % (time.monotonic() - t), flush=True)
    return 0


def try_frame(buf):
    """A frame from the front of buf: (opcode, payload, length) or None when incomplete."""
    if len(buf) < 2:
        return None
    opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack("!H", bytes(buf[2:4]))[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack("!Q", bytes(buf[2:10]))[0], 10
    if len(buf) < at + n:
        return None
    return opcode, bytes(buf[at:at + n]), at + n


class H2Stream:
    """One client stream on a prior-knowledge h2c connection, driven by hand: bytes go out
    within the flow-control windows, bytes that come in are acknowledged as they arrive."""

    def __init__(self, host, port, headers):
        import h2.config
        import h2.connection
        import h2.events
        self.ev = h2.events
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False))
        self.conn.initiate_connection()
        self.flush()
        self.settings = {}
        self.status = None
        self.ended = self.reset = False
        self.got = bytearray()
        self.out = bytearray()
        self.out_end = False
        self.ack = True  # grant window for DATA as it arrives
        self.unacked = 0
        # Extended CONNECT needs the server's SETTINGS_ENABLE_CONNECT_PROTOCOL first.
        while 8 not in self.settings and not self.reset:
            self.step(2)
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, headers)
        self.flush()
        while self.status is None and not self.reset and not self.ended:
            self.step(TIMEOUT)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def push(self):
        while self.out:
            room = min(self.conn.local_flow_control_window(self.sid),
                       self.conn.max_outbound_frame_size, len(self.out))
            if room <= 0:
                break
            self.conn.send_data(self.sid, bytes(self.out[:room]))
            del self.out[:room]
        if not self.out and self.out_end:
            self.conn.end_stream(self.sid)
            self.out_end = False
        self.flush()

    def step(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            self.reset = True
            return True
        for e in self.conn.receive_data(data):
            if isinstance(e, self.ev.RemoteSettingsChanged):
                for k, v in e.changed_settings.items():
                    self.settings[int(k)] = v.new_value
                self.settings.setdefault(8, 0)
            elif isinstance(e, self.ev.ResponseReceived):
                self.status = dict(e.headers).get(b":status", b"?").decode()
            elif isinstance(e, self.ev.DataReceived):
                self.got += e.data
                if self.ack:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                else:
                    self.unacked += e.flow_controlled_length
            elif isinstance(e, self.ev.StreamEnded):
                self.ended = True
            elif isinstance(e, (self.ev.StreamReset, self.ev.ConnectionTerminated)):
                self.reset = True
        self.push()
        return True

    def send(self, data, end=False):
        self.out += data
        self.out_end = end
        self.push()


def h2_connect(host, port, target, size):
    st = H2Stream(host, port, [(":method", "CONNECT"), (":authority", target)])
    print(st.status, flush=True)
    data = os.urandom(int(size))
    st.send(data, end=True)
    deadline = time.monotonic() + TIMEOUT
    while not st.ended and not st.reset and time.monotonic() < deadline:
        st.step(1)
    good = st.ended and hashlib.sha256(st.got).digest() == hashlib.sha256(data).digest()
    print("echo %d %s" % (len(st.got), "ok" if good else "BAD"), flush=True)
    return 0 if good else 1


def h2_stall(host, port, target, size):
    st = H2Stream(host, port, [(":method", "CONNECT"), (":authority", target)])
    print(st.status, flush=True)
    data = os.urandom(int(size))
    st.ack = False
    st.send(data, end=True)
    t = time.monotonic()
    while time.monotonic() - t < 3 and not st.reset:
        st.step(0.2)
    print("stalled %d" % (len(data) - len(st.out)), flush=True)
    st.ack = True
    if st.unacked:
        st.conn.acknowledge_received_data(st.unacked, st.sid)
        st.push()
    deadline = time.monotonic() + 60
    while not st.ended and not st.reset and time.monotonic() < deadline:
        st.step(1)
    good = st.ended and hashlib.sha256(st.got).digest() == hashlib.sha256(data).digest()
    print("echo %d %s" % (len(st.got), "ok" if good else "BAD"), flush=True)
    return 0 if good else 1


def h2_ws(host, port, authority, n, size):
    st = H2Stream(host, port, [(":method", "CONNECT"), (":protocol", "websocket"),
                               (":scheme", "http"), (":path", "/"), (":authority", authority),
                               ("sec-websocket-version", "13")])
    print("enable_connect_protocol %d" % st.settings.get(8, 0), flush=True)
    print(st.status if st.status else "reset" if st.reset else "none", flush=True)
    if st.status != "200":
        return 1

    def frame_in():
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            f = try_frame(st.got)
            if f:
                del st.got[:f[2]]
                return f[0], f[1]
            if st.reset or st.ended:
                break
            st.step(1)
        return None, b""

    ok = 0
    for i in range(int(n)):
        msg = ("message %d " % i + "x" * i).encode()
        st.send(frame_fast(1, msg))
        opcode, payload = frame_in()
        ok += opcode == 1 and payload == msg
    print("text %d/%s" % (ok, n), flush=True)
    data = os.urandom(int(size))
    st.send(frame_fast(2, data))
    opcode, payload = frame_in()
    good = opcode == 2 and hashlib.sha256(payload).digest() == hashlib.sha256(data).digest()
    print("binary %d %s" % (len(payload), "ok" if good else "BAD"), flush=True)
    return 0


def h2_half(host, port, target, size):
    st = H2Stream(host, port, [(":method", "CONNECT"), (":authority", target)])
    deadline = time.monotonic() + TIMEOUT
    while not st.ended and not st.reset and time.monotonic() < deadline:
        st.step(1)
    print("%s %s" % (bytes(st.got).decode(errors="replace").strip(),
                     "ended" if st.ended and not st.reset else "not-ended"), flush=True)
    data = os.urandom(int(size))
    st.send(data, end=True)
    deadline = time.monotonic() + TIMEOUT
    while (st.out or st.out_end) and not st.reset and time.monotonic() < deadline:
        st.step(1)
    print("sent %d %s" % (len(data), hashlib.sha256(data).hexdigest()), flush=True)
    time.sleep(0.5)  # let the server see the FIN before the connection goes
    return 0


def h2_idle(host, port, target):
    st = H2Stream(host, port, [(":method", "CONNECT"), (":authority", target)])
    print(st.status, flush=True)
    t = time.monotonic()
    while not st.ended and not st.reset and time.monotonic() - t < 30:
        st.step(1)
    print("%s after %.1f" % ("reset" if st.reset else "ended" if st.ended else "open",
                             time.monotonic() - t), flush=True)
    return 0


def main():
    a = sys.argv[1:]
    if a[:1] == ["ws-server"] and len(a) in (2, 3):
        Server((a[2] if len(a) == 3 else "0.0.0.0", int(a[1])), WsHandler).serve_forever()
    elif a[:1] == ["echo-server"]:
        Server(("0.0.0.0", int(a[1])), EchoHandler).serve_forever()
    elif a[:1] == ["half-server"] and len(a) == 3:
        HalfHandler.out = a[2]
        Server(("0.0.0.0", int(a[1])), HalfHandler).serve_forever()
    elif a[:1] == ["connect-server"]:
        Server(("0.0.0.0", int(a[1])), ConnectHandler).serve_forever()
    elif a[:1] == ["ws-client"] and 6 <= len(a) <= 8:
        return ws_client(*a[1:])
    elif a[:1] == ["connect"] and len(a) == 5:
        return connect_echo(*a[1:])
    elif a[:1] == ["idle"] and len(a) == 4:
        return connect_idle(*a[1:])
    elif a[:1] == ["h2-connect"] and len(a) == 5:
        return h2_connect(*a[1:])
    elif a[:1] == ["h2-ws"] and len(a) == 6:
        return h2_ws(*a[1:])
    elif a[:1] == ["h2-stall"] and len(a) == 5:
        return h2_stall(*a[1:])
    elif a[:1] == ["h2-half"] and len(a) == 5:
        return h2_half(*a[1:])
    elif a[:1] == ["h2-idle"] and len(a) == 4:
        return h2_idle(*a[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
