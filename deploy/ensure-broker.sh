#!/usr/bin/env bash
# Print the bootstrap address of a reachable Kafka broker, starting the local one when needed.
#
# STREAM_APP_BROKER unset, or pointing at an unreachable local address -> start deploy/kafka.
# STREAM_APP_BROKER pointing at a reachable broker -> use it as it is.
# STREAM_APP_BROKER pointing at an unreachable remote address -> fail: we never guess.
# STREAM_APP_SECURITY_PROTOCOL other than PLAINTEXT -> `stream-app check` decides, with the
# configured credentials; nothing local is started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kafka="$here/kafka/kafka.sh"

configured="${STREAM_APP_BROKER:-}"
protocol="$(echo "${STREAM_APP_SECURITY_PROTOCOL:-PLAINTEXT}" | tr '[:lower:]' '[:upper:]')"
if [[ -n "$configured" && "$protocol" != PLAINTEXT ]]; then
  # The raw probe speaks PLAINTEXT only: a secured broker is checked by the worker's own
  # client, with the configured security, and its answer is shown when it fails.
  bootstrap="$(echo "$configured" | sed -E 's#[a-zA-Z]+://##g')"
  check="$here/../.venv/bin/stream-app"
  [[ -x "$check" ]] || { echo "ensure-broker: $check not found (make install)" >&2; exit 1; }
  if ! out="$("$check" check 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "ensure-broker: STREAM_APP_BROKER=$configured ($protocol) did not pass stream-app check" >&2
    exit 1
  fi
  echo "$bootstrap"
  exit 0
fi
if [[ -n "$configured" ]]; then
  bootstrap="$(echo "$configured" | sed -E 's#[a-zA-Z]+://##g')"
  if KAFKA_BOOTSTRAP="$bootstrap" bash "$kafka" probe >/dev/null 2>&1; then
    echo "$bootstrap"
    exit 0
  fi
  host="${bootstrap%%,*}"
  host="${host%:*}"
  case "$host" in
    localhost|127.0.0.1|::1|"[::1]") ;;
    *) echo "ensure-broker: STREAM_APP_BROKER=$configured is not reachable" >&2; exit 1 ;;
  esac
  echo "ensure-broker: $configured is not reachable; starting the local broker" >&2
fi
bash "$kafka" start >&2
echo "127.0.0.1:${KAFKA_PORT:-9092}"
