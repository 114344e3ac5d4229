#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, combined broker+controller, no Docker).
#
#   kafka.sh start          start in the background (idempotent), wait until it answers
#   kafka.sh stop           SIGTERM, up to 30 s, then SIGKILL (harmless if not running)
#   kafka.sh status         "running"/"not running" + bootstrap address (exit 0 / 1)
#   kafka.sh probe          exit 0 iff a broker at $KAFKA_BOOTSTRAP answers a Metadata request
#   kafka.sh wait [SECS]    poll probe until it succeeds (default 90 s) or fail
#   kafka.sh logs [-f] [N]  last N (100) lines of the broker log; -f follows
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_CACHE_DIR ($ROOT/.cache/kafka),
#      KAFKA_DATA_DIR ($ROOT/.local/kafka), KAFKA_BOOTSTRAP (127.0.0.1:$KAFKA_PORT, probe/wait),
#      KAFKA_START_TIMEOUT (90), KAFKA_STOP_TIMEOUT (30), KAFKA_HEAP_OPTS (-Xms512m -Xmx512m),
#      KAFKA_JVM_OPTS (extra JVM flags), JAVA_HOME, PYTHON (python3).
#      Secured listeners, only when KAFKA_TLS_DIR is set (material made by tls.sh):
#      KAFKA_TLS_DIR, KAFKA_SASL_SSL_PORT (SASL_SSL, SCRAM-SHA-256/512), KAFKA_SSL_PORT (SSL with
#      a required client certificate), KAFKA_SCRAM_USER / KAFKA_SCRAM_PASSWORD (a SCRAM user,
#      created when the storage is formatted). The PLAINTEXT listener stays as it is.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
CACHE_DIR="${KAFKA_CACHE_DIR:-$ROOT/.cache/kafka}"
DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.local/kafka}"
KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
EXTRA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
PYTHON="${PYTHON:-python3}"
TLS_DIR="${KAFKA_TLS_DIR:-}"
SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
SSL_PORT="${KAFKA_SSL_PORT:-}"
SCRAM_USER="${KAFKA_SCRAM_USER:-}"
SCRAM_PASSWORD="${KAFKA_SCRAM_PASSWORD:-}"

LIBS="$CACHE_DIR/libs"
PROPS="$DATA_DIR/server.properties"   # rendered from $SCRIPT_DIR/server.properties
LOG_DIRS="$DATA_DIR/data"             # KRaft metadata log + topic partitions
LOGS_DIR="$DATA_DIR/logs"             # log4j output (server.log)
PIDFILE="$DATA_DIR/kafka.pid"
CONSOLE_LOG="$DATA_DIR/kafka.log"     # JVM stdout/stderr (WARN+ and crashes)
SERVER_LOG="$LOGS_DIR/server.log"
MAIN_CLASS="kafka.Kafka"

say() { printf 'kafka: %s\n' "$*"; }
err() { printf 'kafka: error: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

JAVA=""
need_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found (need Java 17+; e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
  fi
  local ver major
  ver="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')" || true
  major="${ver%%.*}"
  [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"   # 1.8.0_x -> 8
  major="${major%%[!0-9]*}"                                   # 17-ea -> 17
  [[ -n "$major" ]] || die "cannot determine the Java version of $JAVA"
  (( major >= 17 )) || die "Java 17+ required, $JAVA is version $ver (set JAVA_HOME to a JDK 17+)"
}

need_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for the readiness probe)"
}

check_port_value() { # NAME VALUE
  [[ "$2" =~ ^[0-9]+$ ]] && (( $2 >= 1 && $2 <= 65535 )) || die "$1 must be a TCP port number, got '$2'"
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
  else
    bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
  fi
}

port_owner() { # best effort: "users:(("java",pid=1,fd=2))"
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -n1 || true
}

require_port_free() { # NAME PORT
  if port_in_use "$2"; then
    local owner; owner="$(port_owner "$2")"
    die "port $2 ($1) on 127.0.0.1 is already in use by something that is not this broker${owner:+ ($owner)}; stop it or set $1 to another port"
  fi
}

# ---------------------------------------------------------------- process tracking

# Is PID a JVM running our broker (kafka.Kafka with our rendered properties)?
is_our_broker() {
  local pid="$1" cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *" $MAIN_CLASS $PROPS"* ]]
}

# PIDs of our broker: the pid file, plus any orphan whose command line names our properties.
our_pids() {
  local pid found=()
  if [[ -f "$PIDFILE" ]]; then
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    is_our_broker "$pid" && found+=("$pid")
  fi
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    [[ " ${found[*]-} " == *" $pid "* ]] && continue
    is_our_broker "$pid" && found+=("$pid")
  done
  (( ${#found[@]} )) && printf '%s\n' "${found[@]}"
  return 0
}

# ---------------------------------------------------------------- readiness probe

# probe_once BOOTSTRAP [TIMEOUT_S]: Kafka Metadata v4 request (all topics) over a raw socket,
# python3 stdlib only. Exit 0 iff some bootstrap server returns a well-formed response that
# lists at least one (unfenced) broker. Prints a one-line summary on success.
probe_once() {
  "$PYTHON" - "$1" "${2:-5}" <<'PY'
import socket, struct, sys

def parse_hostport(s):
    s = s.strip()
    if s.startswith("["):                      # [::1]:9092
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf

def metadata(host, port, timeout):
    client_id = b"kafka.sh-probe"
    # Request header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id.
    # Body v4: topics=null (all), allow_auto_topic_creation=false. (Kafka 4 dropped v0-v3.)
    req = struct.pack(">hhih", 3, 4, 0x4B50, len(client_id)) + client_id
    req += struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(req)) + req)
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        if not 0 < size < 64 * 1024 * 1024:
            raise ValueError("bad response size %d" % size)
        data = recv_exact(s, size)
    pos = 0
    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals
    def string():
        nonlocal pos
        n = take(">h")
        if n < 0:
            return None
        v = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return v
    if take(">i") != 0x4B50:
        raise ValueError("correlation id mismatch")
    take(">i")                                  # throttle_time_ms
    brokers = []
    for _ in range(take(">i")):
        node_id = take(">i"); bhost = string(); bport = take(">i"); string()  # rack
        brokers.append("%d@%s:%d" % (node_id, bhost, bport))
    cluster_id = string()
    controller_id = take(">i")
    n_topics = take(">i")
    return brokers, cluster_id, controller_id, n_topics

bootstrap, timeout = sys.argv[1], float(sys.argv[2])
last = "empty bootstrap"
for entry in filter(None, (e.strip() for e in bootstrap.split(","))):
    try:
        host, port = parse_hostport(entry)
        brokers, cluster_id, controller_id, n_topics = metadata(host, port, timeout)
        if not brokers:
            last = "%s: metadata lists no live brokers yet" % entry
            continue
        print("broker answers at %s: cluster_id=%s brokers=%s topics=%d"
              % (entry, cluster_id, ",".join(brokers), n_topics))
        sys.exit(0)
    except Exception as e:                      # noqa: BLE001 - any failure = not ready
        last = "%s: %s" % (entry, e)
print(last, file=sys.stderr)
sys.exit(1)
PY
}

show_log_tails() {
  local f
  for f in "$CONSOLE_LOG" "$SERVER_LOG"; do
    [[ -s "$f" ]] || continue
    printf '\n----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# wait_ready PID: poll until our broker answers; fail if PID dies or START_TIMEOUT passes.
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT)) out
  while :; do
    if out="$(probe_once "127.0.0.1:$KAFKA_PORT" 3 2>/dev/null)"; then
      say "$out"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      err "broker process $pid exited during startup"
      show_log_tails
      return 1
    fi
    if (( SECONDS >= deadline )); then
      err "broker (pid $pid) did not answer a metadata request at 127.0.0.1:$KAFKA_PORT within ${START_TIMEOUT}s"
      show_log_tails
      return 2
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- setup steps

# Mark a generated directory as git-ignored (it lives inside the repo by default).
self_ignore() { [[ -e "$1/.gitignore" ]] || printf '*\n' >"$1/.gitignore"; }

ensure_jars() {
  local want have=""
  want="$(sha256sum "$SCRIPT_DIR/pom.xml" | cut -c1-64)"
  [[ -f "$LIBS/.pom.sha256" ]] && have="$(cat "$LIBS/.pom.sha256")"
  [[ "$have" == "$want" ]] && return 0

  command -v mvn >/dev/null 2>&1 \
    || die "mvn not found: Maven is needed once to download the Kafka jars into $LIBS (e.g. apt-get install maven)"
  mkdir -p "$CACHE_DIR"; self_ignore "$CACHE_DIR"
  local tmp="$CACHE_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  say "fetching Kafka jars with Maven into $LIBS (first run only) ..."
  local mvnlog="$CACHE_DIR/mvn.log"
  if ! mvn -q -B -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$mvnlog" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$mvnlog" >&2
    die "Maven failed to fetch the Kafka jars (full output: $mvnlog; is Maven Central reachable?)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "Maven did not produce kafka_2.13 in $tmp"; }
  printf '%s\n' "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

render_config() {
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@LOG_DIRS@|$(sed_escape "$LOG_DIRS")|g" \
      "$SCRIPT_DIR/server.properties" >"$PROPS.tmp"
  [[ -z "$TLS_DIR" ]] || add_secured_listeners "$PROPS.tmp"
  mv "$PROPS.tmp" "$PROPS"
}

# The SASL_SSL and SSL listeners, next to (never instead of) the PLAINTEXT one.
add_secured_listeners() { # FILE
  local tls; tls="$(cd "$TLS_DIR" && pwd -P)"
  [[ -f "$tls/broker.pem" && -f "$tls/ca.pem" ]] \
    || die "KAFKA_TLS_DIR=$TLS_DIR has no broker.pem/ca.pem (make them with deploy/kafka/tls.sh)"
  check_port_value KAFKA_SASL_SSL_PORT "$SASL_SSL_PORT"
  check_port_value KAFKA_SSL_PORT "$SSL_PORT"
  local extra="SASL_SSL://127.0.0.1:$SASL_SSL_PORT,SSL://127.0.0.1:$SSL_PORT"
  sed -i -e "s|^listeners=PLAINTEXT://\([^,]*\),|listeners=PLAINTEXT://\1,$extra,|" \
         -e "s|^advertised.listeners=.*|&,$extra|" \
         -e "s|^listener.security.protocol.map=.*|&,SASL_SSL:SASL_SSL,SSL:SSL|" "$1"
  cat >>"$1" <<PROPERTIES

############################# Secured listeners (KAFKA_TLS_DIR) #############################
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
PROPERTIES
}

common_jvm_opts() {
  printf '%s\n' "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2.properties" \
                "-Dkafka.logs.dir=$LOGS_DIR" "-Djava.awt.headless=true"
}

format_storage() {
  [[ -f "$LOG_DIRS/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$("$PYTHON" -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s); break')"
  say "formatting storage in $LOG_DIRS (cluster id $cluster_id)"
  local opts; mapfile -t opts < <(common_jvm_opts)
  local -a scram=()
  if [[ -n "$SCRAM_USER" ]]; then
    [[ -n "$SCRAM_PASSWORD" ]] || die "KAFKA_SCRAM_USER needs KAFKA_SCRAM_PASSWORD"
    local mechanism
    for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
      scram+=(--add-scram "$mechanism=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
    done
  fi
  if ! "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${opts[@]}" -cp "$LIBS/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" -g ${scram[@]+"${scram[@]}"} \
        >>"$CONSOLE_LOG" 2>&1; then
    err "kafka.tools.StorageTool format failed"
    show_log_tails
    exit 1
  fi
}

# Serialize start/stop (e.g. parallel make targets). fd 9 is closed for the broker JVM.
take_lock() {
  mkdir -p "$DATA_DIR"; self_ignore "$DATA_DIR"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$DATA_DIR/.lock"
  flock -w $((START_TIMEOUT + 300)) 9 || die "timed out waiting for another kafka.sh start/stop ($DATA_DIR/.lock)"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  check_port_value KAFKA_PORT "$KAFKA_PORT"
  check_port_value KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  need_java
  need_python
  take_lock

  local pids pid
  pids="$(our_pids)"
  if [[ -n "$pids" ]]; then
    pid="$(head -n1 <<<"$pids")"
    echo "$pid" >"$PIDFILE"
    if probe_once "127.0.0.1:$KAFKA_PORT" 3 >/dev/null 2>&1; then
      say "already running (pid $pid) at 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    say "broker process $pid exists but is not answering yet; waiting up to ${START_TIMEOUT}s"
    wait_ready "$pid" || die "broker pid $pid is alive but unresponsive; try: $0 stop && $0 start"
    return 0
  fi
  rm -f "$PIDFILE"

  require_port_free KAFKA_PORT "$KAFKA_PORT"
  require_port_free KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  if [[ -n "$TLS_DIR" ]]; then
    require_port_free KAFKA_SASL_SSL_PORT "$SASL_SSL_PORT"
    require_port_free KAFKA_SSL_PORT "$SSL_PORT"
  fi

  ensure_jars
  mkdir -p "$LOG_DIRS" "$LOGS_DIR"
  render_config
  format_storage

  local opts; mapfile -t opts < <(common_jvm_opts)
  local -a heap extra
  read -r -a heap <<<"$HEAP_OPTS"
  read -r -a extra <<<"$EXTRA_JVM_OPTS"
  {
    printf '\n===== %s starting kafka.Kafka (client port %s, controller port %s) =====\n' \
      "$(date '+%F %T')" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  } >>"$CONSOLE_LOG"
  # New session (setsid) + SIGHUP ignored (nohup): survives the calling shell/terminal.
  # The inner bash writes its own pid, then execs java, so the pid file is the JVM's pid.
  rm -f "$PIDFILE"
  ( cd "$DATA_DIR" && exec nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
      "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent "${opts[@]}" ${extra[@]+"${extra[@]}"} \
      -cp "$LIBS/*" "$MAIN_CLASS" "$PROPS" \
      >>"$CONSOLE_LOG" 2>&1 </dev/null 9>&- ) &
  local i
  for i in $(seq 1 50); do
    [[ -s "$PIDFILE" ]] && break
    sleep 0.1
  done
  pid="$(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || { show_log_tails; die "failed to launch the broker JVM"; }
  say "started broker pid $pid (data $DATA_DIR); waiting for a metadata round trip (up to ${START_TIMEOUT}s) ..."

  local rc=0
  wait_ready "$pid" || rc=$?
  if (( rc != 0 )); then
    if kill -0 "$pid" 2>/dev/null; then
      err "killing broker pid $pid"
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 1 10); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    exit 1
  fi
  say "running at 127.0.0.1:$KAFKA_PORT"
}

cmd_stop() {
  local pids
  [[ -d "$DATA_DIR" ]] && take_lock
  pids="$(our_pids)"
  if [[ -z "$pids" ]]; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  local -a list; mapfile -t list <<<"$pids"
  say "stopping broker pid ${list[*]} (SIGTERM, up to ${STOP_TIMEOUT}s)"
  kill -TERM "${list[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT)) killed=0 p
  local -a alive
  while :; do
    alive=()
    for p in "${list[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    (( ${#alive[@]} == 0 )) && break
    if (( SECONDS >= deadline )); then
      (( killed )) && die "broker pid ${alive[*]} survived SIGKILL"
      err "broker pid ${alive[*]} still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      killed=1
      deadline=$((SECONDS + 10))
    fi
    sleep 0.5
  done
  rm -f "$PIDFILE"
  say "stopped"
}

cmd_status() {
  local pids pid
  pids="$(our_pids)"
  if [[ -n "$pids" ]]; then
    pid="$(head -n1 <<<"$pids")"
    if probe_once "127.0.0.1:$KAFKA_PORT" 3 >/dev/null 2>&1; then
      echo "running (pid $pid) bootstrap=127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    echo "not running: pid $pid is alive but not answering at 127.0.0.1:$KAFKA_PORT (starting or hung)"
    return 1
  fi
  echo "not running (bootstrap=127.0.0.1:$KAFKA_PORT, data=$DATA_DIR)"
  return 1
}

cmd_probe() {
  need_python
  probe_once "$KAFKA_BOOTSTRAP" "${KAFKA_PROBE_TIMEOUT:-5}"
}

cmd_wait() {
  need_python
  local secs="${1:-$START_TIMEOUT}" out
  [[ "$secs" =~ ^[0-9]+$ ]] || die "usage: $0 wait [SECONDS]"
  local deadline=$((SECONDS + secs))
  while :; do
    if out="$(probe_once "$KAFKA_BOOTSTRAP" 3 2>&1)"; then echo "$out"; return 0; fi
    (( SECONDS >= deadline )) && { err "no broker answered at $KAFKA_BOOTSTRAP within ${secs}s ($out)"; return 1; }
    sleep 1
  done
}

cmd_logs() {
  local follow=0 n=100
  while (( $# )); do
    case "$1" in
      -f|--follow) follow=1 ;;
      [0-9]*) n="$1" ;;
      *) die "usage: $0 logs [-f] [LINES]" ;;
    esac
    shift
  done
  local f="$SERVER_LOG"
  [[ -f "$f" ]] || f="$CONSOLE_LOG"
  [[ -f "$f" ]] || die "no log yet ($SERVER_LOG)"
  if (( follow )); then exec tail -n "$n" -F "$f"; else tail -n "$n" "$f"; fi
}

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  start)  shift; cmd_start "$@" ;;
  stop)   shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  probe)  shift; cmd_probe "$@" ;;
  wait)   shift; cmd_wait "$@" ;;
  logs)   shift; cmd_logs "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
