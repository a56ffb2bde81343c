#!/bin/sh
# tools/mesh-certs.sh DIR: the certificates of deploy/examples/demo-mtls.yaml, as istio-agent
# would provide them: a mesh CA (ca.crt) and one workload certificate with the SPIFFE identity
# spiffe://cluster.local/ns/default/sa/demo (workload.crt, workload.key); and, for tests, a
# certificate with the same identity from another CA (stranger.crt, stranger.key). EC P-256,
# valid one day. Files are world-readable: shuntd reads them as root, the demo apps never do.
set -eu
d=$1
mkdir -p "$d"
for ca in ca otherca; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj "/O=$ca" -keyout "$d/$ca.key" -out "$d/$ca.crt" 2>/dev/null
done
printf 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/demo\n' >"$d/san.ext"
for pair in workload:ca stranger:otherca; do
	n=${pair%:*} ca=${pair#*:}
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/O=$n" \
		-keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
	openssl x509 -req -in "$d/$n.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
		-days 1 -extfile "$d/san.ext" -out "$d/$n.crt" 2>/dev/null
done
chmod 755 "$d"
chmod 644 "$d"/*
