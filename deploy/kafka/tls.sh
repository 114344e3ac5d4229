#!/usr/bin/env bash
# Generate throw-away TLS material for the local broker's secured listeners (openssl only).
#
#   tls.sh DIR    writes into DIR (created if needed):
#     ca.pem                 the test CA's certificate (clients' and the broker's trust store)
#     broker.pem             the broker's PKCS#8 key and certificate (CN=localhost,
#                            SAN localhost and 127.0.0.1), the form of Kafka's PEM key store
#     client.pem, client.key a client certificate (CN=stream-app-client) and its key
#
# Valid for two days: for tests and local trials, never for a real deployment.
set -euo pipefail
dir="${1:?usage: tls.sh DIR}"
command -v openssl >/dev/null 2>&1 || { echo "tls.sh: openssl not found" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
work="$(mktemp -d "$dir/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

quiet() { "$@" >/dev/null 2>&1 || { echo "tls.sh: failed: $*" >&2; "$@"; exit 1; }; }

quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stream-app test CA" \
  -keyout "$work/ca.key" -out ca.pem

sign() { # NAME SUBJECT EXTENSIONS
  quiet openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$work/$1.key" -out "$work/$1.csr"
  printf '%s\n' "$3" >"$work/$1.ext"
  quiet openssl x509 -req -in "$work/$1.csr" -CA ca.pem -CAkey "$work/ca.key" \
    -CAserial "$work/ca.srl" -CAcreateserial -days 2 -extfile "$work/$1.ext" -out "$work/$1.crt"
  quiet openssl pkcs8 -topk8 -nocrypt -in "$work/$1.key" -out "$work/$1.pk8"
}

sign broker "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
cat "$work/broker.pk8" "$work/broker.crt" >broker.pem

sign client "/CN=stream-app-client" "extendedKeyUsage=clientAuth"
cp "$work/client.crt" client.pem
cp "$work/client.pk8" client.key
chmod 600 broker.pem client.key
echo "tls.sh: CA, broker and client material in $dir"
