# tests/integration/tls-certs.sh - sourced after lib.sh by the tests that run
# cairn over HTTPS (120-tls, 130-restic).
#
#   tls_certs DIR   makes DIR/ca.pem (a test CA) and DIR/srv.pem + DIR/srv.key
#                   (EC P-256, SAN IP:127.0.0.1 and DNS:localhost, 2 days),
#                   signed by it; returns non-zero (openssl's output shown)
#                   when openssl cannot.

tls_certs() {
	local d=$1
	mkdir -p "$d"
	cat >"$d/srv.ext" <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
	if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=cairn test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >"$d/openssl.log" 2>&1 ||
		! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/srv.key" -out "$d/srv.csr" -subj "/CN=localhost" \
			>>"$d/openssl.log" 2>&1 ||
		! openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
			-CAcreateserial -out "$d/srv.pem" -days 2 -extfile "$d/srv.ext" \
			>>"$d/openssl.log" 2>&1; then
		sed 's/^/    | /' "$d/openssl.log"
		return 1
	fi
	chmod 600 "$d/srv.key" "$d/ca.key"
}
