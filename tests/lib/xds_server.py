#!/usr/bin/python3
"""An independent xDS management server for shunt's tests (Debian's python3-grpcio/protobuf).

  xds_server.py serve DESCRIPTOR_SET [GRPC_PORT [STATE_FILE]]
                                                    prints "GRPC_PORT CONTROL_PORT", serves; the
                                                    resources set are kept in STATE_FILE, so a
                                                    restarted server serves the same versions
                                                    (TLS when XDS_TLS_CERT and XDS_TLS_KEY name
                                                    PEM files)
  xds_server.py ctl CONTROL_PORT COMMAND...         sends one command, prints the answer

Message classes come from the descriptor set protoc wrote for the fetched Envoy protos
(build/xds/closure.pb), so nothing here is hand-written protobuf. Serves both
StreamAggregatedResources (state of the world) and DeltaAggregatedResources.

Control commands (one line each, answered with one JSON line):
  set TYPE VERSION JSON     the whole set of TYPE (lds rds cds eds sds) as a JSON list of
                            resources in proto3 JSON; pushed to every open stream
  requests                  every request received so far, as JSON
  raw HEX                   sends these bytes as a message on every open stream
  big N                     sends an N-byte message on every open stream
  deep N                    sends a response nested N messages deep
  unknown                   sends a response with a type URL nobody consumes
  streams                   number of open streams
  scale N M VERSION [vips]  N EDS clusters (c0..) with M endpoints each (cds and eds); with
                            "vips", also N listeners (lds), one per cluster: a tcp_proxy on a
                            service VIP 10.96.x.y:9080 not bound to a port, its cluster marked
                            for the kernel service LB, so each becomes a kernel map service
  touch TYPE NAME VERSION   gives one resource a new version (and the type that version)
"""
import json
import os
import queue
import socket
import sys
import threading
import time

TYPES = {
    "lds": "envoy.config.listener.v3.Listener",
    "rds": "envoy.config.route.v3.RouteConfiguration",
    "cds": "envoy.config.cluster.v3.Cluster",
    "eds": "envoy.config.endpoint.v3.ClusterLoadAssignment",
    "sds": "envoy.extensions.transport_sockets.tls.v3.Secret",
}
PREFIX = "type.googleapis.com/"
WILDCARD = ("lds", "cds")


def ctl(port, words):
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.sendall((" ".join(words) + "\n").encode())
    f = s.makefile()
    sys.stdout.write(f.readline())


class Server:
    def __init__(self, descriptor_set, state_file=None):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        fds = descriptor_pb2.FileDescriptorSet.FromString(open(descriptor_set, "rb").read())
        self.pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            self.pool.Add(f)
        factory = message_factory.MessageFactory(self.pool)

        def cls(name):
            return factory.GetPrototype(self.pool.FindMessageTypeByName(name))

        self.cls = cls
        self.Req = cls("envoy.service.discovery.v3.DiscoveryRequest")
        self.Resp = cls("envoy.service.discovery.v3.DiscoveryResponse")
        self.DReq = cls("envoy.service.discovery.v3.DeltaDiscoveryRequest")
        self.DResp = cls("envoy.service.discovery.v3.DeltaDiscoveryResponse")
        self.Any = cls("google.protobuf.Any")
        self.lock = threading.RLock()
        self.res = {t: {} for t in TYPES}  # type -> name -> (version, Any)
        self.version = {t: "" for t in TYPES}
        self.requests = []
        self.streams = []
        self.nonce = 0
        self.state_file = state_file
        self.state = {}
        if state_file:
            try:
                with open(state_file) as f:
                    self.state = json.load(f)
            except FileNotFoundError:
                pass
            for t, (version, resources, versions) in self.state.items():
                self.set(t, version, resources, save=False, versions=versions)

    # ---- resources ----
    def name_of(self, t, msg):
        return msg.cluster_name if t == "eds" else msg.name

    def pack(self, t, version, msgs):
        """Resources as set() keeps them: name -> (version, Any)."""
        new = {}
        for m in msgs:
            a = self.Any()
            a.Pack(m)
            new[self.name_of(t, m)] = (version, a)
        return new

    def set(self, t, version, resources, save=True, msgs=None, versions=None, packed=None):
        """versions: the version of each resource, when not version (a restart's state);
        packed: resources already packed by pack()."""
        from google.protobuf import json_format

        new = dict(packed or {})
        msgs = list(msgs or [])
        for r in resources:
            m = self.cls(TYPES[t])()
            json_format.ParseDict(r, m, descriptor_pool=self.pool)
            msgs.append(m)
        for m in msgs:
            a = self.Any()
            a.Pack(m)
            name = self.name_of(t, m)
            new[name] = ((versions or {}).get(name, version), a)
        with self.lock:
            old = self.res[t]
            for name, (v, a) in new.items():
                if name in old and old[name][1].value == a.value:
                    new[name] = old[name]  # unchanged: keeps its version for delta
            self.res[t] = new
            self.version[t] = version
            if save and self.state_file:
                self.state[t] = [version, resources, {n: v for n, (v, _) in new.items()}]
                with open(self.state_file, "w") as f:
                    json.dump(self.state, f)
            for s in list(self.streams):
                s.push(t)

    def next_nonce(self):
        with self.lock:
            self.nonce += 1
            return str(self.nonce)

    def record(self, kind, req):
        from google.protobuf import json_format

        t = next((k for k, v in TYPES.items() if PREFIX + v == req.type_url), req.type_url)
        entry = {"kind": kind, "type": t, "nonce": req.response_nonce,
                 "node": "%s/%s/%s" % (req.node.id, req.node.user_agent_name,
                                       req.node.locality.zone) if req.HasField("node") else None,
                 "node_cluster": req.node.cluster if req.HasField("node") else None,
                 "node_metadata": json_format.MessageToDict(req.node.metadata)
                 if req.HasField("node") else None,
                 "error": req.error_detail.message if req.HasField("error_detail") else None}
        if kind == "sotw":
            entry["version"] = req.version_info
            entry["names"] = list(req.resource_names)
        else:
            entry["subscribe"] = list(req.resource_names_subscribe)
            entry["unsubscribe"] = list(req.resource_names_unsubscribe)
            entry["initial"] = dict(req.initial_resource_versions)
        with self.lock:
            self.requests.append(entry)
        return t

    # ---- control ----
    def control(self, lst):
        while True:
            c, _ = lst.accept()
            threading.Thread(target=self.control_one, args=(c,), daemon=True).start()

    def control_one(self, c):
        f = c.makefile("rw")
        line = f.readline().strip()
        verb, _, rest = line.partition(" ")
        try:
            out = self.command(verb, rest)
        except Exception as e:  # the test sees the reason
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        f.write(json.dumps(out) + "\n")
        f.flush()
        c.close()

    def command(self, verb, rest):
        if verb == "set":
            t, version, body = rest.split(" ", 2)
            self.set(t, version, json.loads(body))
            return {"ok": True}
        if verb == "scale":
            n, m, version, *vips = rest.split(" ")
            if vips not in ([], ["vips"]):
                raise ValueError("scale N M VERSION [vips]")
            return {"ok": True, "pushed_at": self.scale(int(n), int(m), version, bool(vips))}
        if verb == "touch":
            t, name, version = rest.split(" ")
            with self.lock:
                self.res[t][name] = (version, self.res[t][name][1])
                self.version[t] = version
                for s in list(self.streams):
                    s.push(t)
            return {"ok": True}
        if verb == "requests":
            with self.lock:
                return self.requests
        if verb == "streams":
            with self.lock:
                return len(self.streams)
        if verb in ("raw", "big", "deep", "unknown"):
            if verb == "raw":
                data = bytes.fromhex(rest)
            elif verb == "big":
                data = b"\x0a" + b"\xff" * 3 + b"\x7f" + b"x" * (int(rest) - 5)
            elif verb == "deep":
                data = b""
                for _ in range(int(rest)):
                    data = b"\x1a" + self.varint(len(data)) + data  # field 3, bytes
            else:
                r = self.Resp(version_info="1", type_url=PREFIX + "test.Nobody",
                              nonce=self.next_nonce())
                data = r.SerializeToString()
            with self.lock:
                for s in self.streams:
                    s.out.put(data)
            return {"ok": True}
        raise ValueError("unknown command %r" % verb)

    def scale(self, n, m, version, vips=False):
        Cluster = self.cls(TYPES["cds"])
        Cla = self.cls(TYPES["eds"])
        Listener = self.cls(TYPES["lds"])
        TcpProxy = self.cls("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")
        clusters, assignments, listeners = [], [], []
        for i in range(n):
            c = Cluster(name="c%d" % i, type=3)  # EDS
            c.eds_cluster_config.eds_config.ads.SetInParent()
            if vips:
                c.metadata.filter_metadata["shunt"].fields["kernel_lb"].bool_value = True
            clusters.append(c)
            a = Cla(cluster_name="c%d" % i)
            le = a.endpoints.add()
            for j in range(m):
                sa = le.lb_endpoints.add().endpoint.address.socket_address
                sa.address = "10.%d.%d.%d" % (i >> 8 & 255, i & 255, j & 255)
                sa.port_value = 8000 + j
            assignments.append(a)
            if vips:
                # Istio's per-service listener: named VIP_PORT, not bound, plain tcp_proxy.
                vip = "10.%d.%d.%d" % (96 + (i >> 16), i >> 8 & 255, i & 255)
                ls = Listener(name="%s_9080" % vip)
                ls.address.socket_address.address = vip
                ls.address.socket_address.port_value = 9080
                ls.bind_to_port.value = False
                f = ls.filter_chains.add().filters.add(name="envoy.filters.network.tcp_proxy")
                f.typed_config.Pack(TcpProxy(stat_prefix="c%d" % i, cluster="c%d" % i))
                listeners.append(ls)
        # Everything packed first, so that the push times the sending, not this script.
        eds, cds = self.pack("eds", version, assignments), self.pack("cds", version, clusters)
        lds = self.pack("lds", version, listeners)
        self.set("eds", version, [], save=False, packed=eds)
        self.set("cds", version, [], save=False, packed=cds)
        pushed = time.time()  # the CDS push is queued on every stream: what shuntd waits on
        if vips:
            self.set("lds", version, [], save=False, packed=lds)
        return pushed

    @staticmethod
    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    # ---- streams ----
    def handler(self, delta):
        def run(requests, context):
            s = (DeltaStream if delta else SotwStream)(self)
            with self.lock:
                self.streams.append(s)

            def reader():
                try:
                    for raw in requests:
                        s.on_request(raw)
                except Exception:
                    pass
                s.out.put(None)

            threading.Thread(target=reader, daemon=True).start()
            try:
                while True:
                    m = s.out.get()
                    if m is None:
                        return
                    yield m
            finally:
                with self.lock:
                    if s in self.streams:
                        self.streams.remove(s)
        return run


class SotwStream:
    def __init__(self, srv):
        self.srv = srv
        self.out = queue.Queue()
        self.names = {}  # type -> list of names (subscribed types only)
        self.sent_version = {}

    def on_request(self, raw):
        req = self.srv.Req.FromString(raw)
        t = self.srv.record("sotw", req)
        if t not in TYPES or req.HasField("error_detail"):
            return
        with self.srv.lock:
            names = list(req.resource_names)
            changed = self.names.get(t) != names
            self.names[t] = names
            if changed or req.version_info != self.srv.version[t]:
                self.push(t, force=True)

    def push(self, t, force=False):
        srv = self.srv
        if t not in self.names:
            return
        names = self.names[t]
        res = srv.res[t]
        if t in WILDCARD:
            chosen = [res[n][1] for n in sorted(res)]
        else:
            chosen = [res[n][1] for n in names if n in res]
        r = srv.Resp(version_info=srv.version[t], type_url=PREFIX + TYPES[t],
                     nonce=srv.next_nonce())
        r.resources.extend(chosen)
        self.out.put(r.SerializeToString())


class DeltaStream:
    def __init__(self, srv):
        self.srv = srv
        self.out = queue.Queue()
        self.subs = {}  # type -> set of names, or None for wildcard
        self.sent = {}  # type -> name -> version the client has

    def on_request(self, raw):
        req = self.srv.DReq.FromString(raw)
        t = self.srv.record("delta", req)
        if t not in TYPES:
            return
        if (req.HasField("error_detail") or req.response_nonce) and \
                not req.resource_names_subscribe and not req.resource_names_unsubscribe:
            return
        with self.srv.lock:
            first = t not in self.subs
            if first:
                self.subs[t] = None if t in WILDCARD else set()
                self.sent[t] = dict(req.initial_resource_versions)
            if self.subs[t] is not None:
                self.subs[t] |= set(req.resource_names_subscribe)
                self.subs[t] -= set(req.resource_names_unsubscribe)
                for n in req.resource_names_unsubscribe:
                    self.sent[t].pop(n, None)
            self.push(t, force=first)

    def push(self, t, force=False):
        srv = self.srv
        if t not in self.subs:
            return
        subs, sent, res = self.subs[t], self.sent[t], srv.res[t]
        r = srv.DResp(system_version_info=srv.version[t], type_url=PREFIX + TYPES[t],
                      nonce=srv.next_nonce())
        for name in sorted(res):
            if subs is not None and name not in subs:
                continue
            v, a = res[name]
            if sent.get(name) != v:
                e = r.resources.add(name=name, version=v)
                e.resource.CopyFrom(a)
                sent[name] = v
        for name in sorted(sent):
            if name not in res:
                r.removed_resources.append(name)
                del sent[name]
        if r.resources or r.removed_resources or force:
            self.out.put(r.SerializeToString())


def serve(descriptor_set, port, state_file):
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    srv = Server(descriptor_set, state_file)
    limit = 256 << 20
    server = grpc.server(ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.max_send_message_length", limit),
                                  ("grpc.max_receive_message_length", limit),
                                  ("grpc.so_reuseport", 1)])
    handler = grpc.method_handlers_generic_handler(
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        {"StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(srv.handler(False)),
         "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(srv.handler(True))})
    server.add_generic_rpc_handlers((handler,))
    cert, key = os.environ.get("XDS_TLS_CERT"), os.environ.get("XDS_TLS_KEY")
    if cert:
        # gRPC's own TLS (ALPN h2): what shuntd's control-plane client must verify.
        creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(cert, "rb").read())])
        port = server.add_secure_port("127.0.0.1:%s" % port, creds)
    else:
        port = server.add_insecure_port("127.0.0.1:%s" % port)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    server.start()
    threading.Thread(target=srv.control, args=(lst,), daemon=True).start()
    print(port, lst.getsockname()[1], flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "0",
              sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        ctl(sys.argv[2], sys.argv[3:])
