#!/usr/bin/python3
"""A gRPC client (Debian's python3-grpcio) for the methods of tests/lib/grpc_peer.py; prints one
line per call so that a test can compare it exactly.

usage: grpc_caller.py TARGET unary TEXT | server N | client N SIZE | bidi N | abort CODE MSG
"""
import hashlib
import sys

import grpc


def ident(x):
    return x


def main():
    target, verb, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    ch = grpc.insecure_channel(target)
    grpc.channel_ready_future(ch).result(timeout=10)
    call = {"unary": ch.unary_unary, "server": ch.unary_stream, "client": ch.stream_unary,
            "bidi": ch.stream_stream}
    try:
        if verb in ("unary", "abort"):
            m = call["unary"]("/test.Echo/Unary", ident, ident)
            req = args[0].encode() if verb == "unary" else ("abort:%s:%s" % tuple(args)).encode()
            resp, c = m.with_call(req, timeout=20)
            trailers = ",".join("%s=%s" % (k, v) for k, v in c.trailing_metadata())
            print("%s %s %s" % (resp.decode(), c.code().name, trailers))
        elif verb == "server":
            m = call["server"]("/test.Echo/ServerStream", ident, ident)
            got = list(m(args[0].encode(), timeout=20))
            print("%d %s" % (len(got), b",".join(got[:3]).decode()))
        elif verb == "client":
            n, size = int(args[0]), int(args[1])
            msgs = [bytes([i % 251]) * size for i in range(n)]
            m = call["client"]("/test.Echo/ClientStream", ident, ident)
            resp = m(iter(msgs), timeout=20)
            h = hashlib.sha256(b"".join(msgs)).hexdigest()
            print("%s %s" % (resp.decode(), "match" if resp.decode().endswith(h) else "differ"))
        elif verb == "bidi":
            m = call["bidi"]("/test.Echo/Stream", ident, ident)
            got = [r.decode() for r in m(iter([b"echo:%d" % i for i in range(int(args[0]))]),
                                          timeout=20)]
            print("%d %s" % (len(got), got[-1] if got else "-"))
        else:
            print("unknown verb", verb, file=sys.stderr)
            return 2
    except grpc.RpcError as e:
        print("%s %s" % (e.code().name, e.details()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
