# shellcheck shell=bash
# Test certificates made with the openssl tool: EC P-256, valid one day, each as DIR/NAME.key
# and DIR/NAME.crt. Sourced by the integration tests that need a CA and leaf certificates.

# pki_ca DIR NAME: a self-signed CA named NAME.
pki_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj "/CN=$2" -keyout "$1/$2.key" -out "$1/$2.crt" 2>/dev/null
}

# pki_leaves DIR CA: a certificate signed by CA for each "NAME SAN" line of standard input
# (SAN as openssl's subjectAltName: DNS:a.test,URI:spiffe://...). Fails at the first failure.
pki_leaves() {
	while read -r n san; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$n" \
			-keyout "$1/$n.key" -out "$1/$n.csr" 2>/dev/null &&
			echo "subjectAltName=$san" >"$1/$n.ext" &&
			openssl x509 -req -in "$1/$n.csr" -CA "$1/$2.crt" -CAkey "$1/$2.key" \
				-CAcreateserial -days 1 -extfile "$1/$n.ext" -out "$1/$n.crt" \
				2>/dev/null || return 1
	done
}
