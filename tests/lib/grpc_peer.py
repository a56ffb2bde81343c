#!/usr/bin/python3
"""An independent gRPC peer for shunt's tests (Debian's python3-grpcio).

Serves /test.Echo/Stream, a bidirectional stream of raw bytes. Each request says what to do:
  echo:X         answer X
  many:N         answer N messages m0..m{N-1}
  big:N          answer one message of N bytes
  sleep:S        sleep S seconds, then answer "slept"
  abort:CODE:MSG end the stream with that status
When the client half-closes, the stream ends with OK. Also, for the other call shapes:
  /test.Echo/Unary         answers the request reversed, with trailing metadata x-trailer: t1;
                           a request "abort:CODE:MSG" ends with that status instead
  /test.Echo/ServerStream  the request is a count N: answers N messages s0..s{N-1}
  /test.Echo/ClientStream  answers "COUNT SHA256" of the concatenated requests
usage: grpc_peer.py [PORT [ADDRESS]] (default 0 and 127.0.0.1). Prints the port, then serves.
"""
import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc


def stream(requests, context):
    for req in requests:
        verb, _, arg = req.partition(b":")
        if verb == b"echo":
            yield arg
        elif verb == b"many":
            for i in range(int(arg)):
                yield b"m%d" % i
        elif verb == b"big":
            yield b"x" * int(arg)
        elif verb == b"sleep":
            time.sleep(float(arg))
            yield b"slept"
        elif verb == b"abort":
            code, _, msg = arg.partition(b":")
            status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
            context.abort(status, msg.decode())
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown request")


def unary(req, context):
    if req.startswith(b"abort:"):
        code, _, msg = req[6:].partition(b":")
        status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
        context.abort(status, msg.decode())
    context.set_trailing_metadata((("x-trailer", "t1"),))
    return req[::-1]


def server_stream(req, context):
    for i in range(int(req)):
        yield b"s%d" % i


def client_stream(requests, context):
    h, n = hashlib.sha256(), 0
    for req in requests:
        h.update(req)
        n += 1
    return b"%d %s" % (n, h.hexdigest().encode())


def main():
    limit = 64 << 20
    # Ping enforcement as permissive as istiod's, so that the tests' short keepalive passes.
    server = grpc.server(ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_send_message_length", limit),
                                  ("grpc.max_receive_message_length", limit),
                                  ("grpc.http2.min_ping_interval_without_data_ms", 50),
                                  ("grpc.http2.max_ping_strikes", 0)])
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(stream),
                      "Unary": grpc.unary_unary_rpc_method_handler(unary),
                      "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
                      "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("%s:%s" % (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1",
                                               sys.argv[1] if len(sys.argv) > 1 else "0"))
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
