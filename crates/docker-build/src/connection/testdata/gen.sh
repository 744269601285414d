#!/bin/sh
# Makes the TLS fixtures of the connection tests (run in this directory; valid for 100 years).
# ca/: the CA the daemon's and the client's certificates chain to; other-ca.pem: an unrelated CA;
# server: 127.0.0.1 and localhost; client: a client certificate; wrong-key.pem: not client's key.
set -eu
days=36500
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ec ca-key.pem
openssl req -x509 -new -key ca-key.pem -days $days -subj /CN=docker-build-test-ca -out ca.pem
ec other-ca-key.pem
openssl req -x509 -new -key other-ca-key.pem -days $days -subj /CN=docker-build-other-ca -out other-ca.pem
ec server-key.pem
openssl req -new -key server-key.pem -subj /CN=localhost -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days $days -extfile server.ext -out server-cert.pem
ec key.pem
openssl req -new -key key.pem -subj /CN=client -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days $days -extfile client.ext -out cert.pem
ec wrong-key.pem
rm -f ca-key.pem server.csr client.csr server.ext client.ext ca.srl other-ca-key.pem
