#!/usr/bin/python3
"""An independent gRPC peer for shunt's tests (Debian's python3-grpcio).

Serves /test.Echo/Stream, a bidirectional stream of raw bytes. Each request says what to do:
  echo:X         answer X
  many:N         answer N messages m0..m{N-1}
  big:N          answer one message of N bytes
  sleep:S        sleep S seconds, then answer "slept"
  abort:CODE:MSG end the stream with that status
When the client half-closes, the stream ends with OK. Prints the port, then serves forever.
"""
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


def main():
    limit = 64 << 20
    # Ping enforcement as permissive as istiod's, so that the tests' short keepalive passes.
    server = grpc.server(ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_send_message_length", limit),
                                  ("grpc.max_receive_message_length", limit),
                                  ("grpc.http2.min_ping_interval_without_data_ms", 50),
                                  ("grpc.http2.max_ping_strikes", 0)])
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(stream)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:%s" % (sys.argv[1] if len(sys.argv) > 1 else "0"))
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
