# Shared helpers of the scripts in scripts/ (sourced, not run):
# installing what a fresh Debian machine lacks, a private influxd on a free
# loopback port, bounded waits, and stopping processes we started.
#
# Every function that waits takes a limit and fails with a message naming
# what it waited for. Only 127.0.0.1 is ever used.

# The script's name, for messages.
lib_name="${lib_name:-$(basename "$0")}"
# Decimal points in printf and awk whatever the locale.
export LC_NUMERIC=C

die() {
    echo "$lib_name: $*" >&2
    exit 1
}

say() {
    echo "$lib_name: $*" >&2
}

# ensure_packages PKG...: apt-get installs the packages that are missing
# (as root, or through sudo).
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing packages ${missing[*]}; run as root to install them"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y "${missing[@]}"
}

# The packages every script needs: InfluxDB 1.x (the tests and demos start
# their own influxd), the C toolchain and OpenSSL headers librdkafka builds
# with, and curl/jq for talking to the servers.
BASE_PACKAGES=(influxdb libssl-dev pkg-config build-essential curl jq openssl)

# ensure_java_maven: a JDK (17 or later) and Maven for scripts/kafka, which
# runs Apache Kafka from jars fetched from Maven Central; Debian's packages
# are installed only when one is missing or the java is older than 17.
ensure_java_maven() {
    local major=0
    if command -v java >/dev/null; then
        major="$(java_major java)"
    fi
    if [[ "${major:-0}" -lt 17 ]] || ! command -v mvn >/dev/null; then
        ensure_packages default-jdk-headless maven
    fi
}

# java_bin: the java to run a server with: $JAVA_HOME's, else the one on PATH.
java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null; then
        command -v java
    else
        die "java not found: install a JDK 17 or later (apt-get install -y default-jdk-headless; scripts/test does this)"
    fi
}

# java_major JAVA: the major version of that java (17, 21, ...).
java_major() {
    "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

# ensure_cargo: puts cargo on PATH or explains how to get it.
ensure_cargo() {
    command -v cargo >/dev/null && return 0
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
        return 0
    fi
    die "cargo not found; install Rust (https://rustup.rs) first"
}

# port_in_use PORT: true when something listens on 127.0.0.1:PORT.
port_in_use() {
    (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

# free_port: prints a port on 127.0.0.1 that nothing listens on.
free_port() {
    local port i
    for i in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 50 ms until it
# succeeds; fails naming WHAT after SECONDS.
wait_until() {
    local limit="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what"
        sleep 0.05
    done
}

# influxd_start DIR: starts a private influxd with its data, config and log
# in DIR on a free port of 127.0.0.1; sets INFLUX_PORT and INFLUX_PID.
influxd_start() {
    local dir="$1" attempt port bin
    bin="$(command -v influxd || true)"
    [[ -n "$bin" ]] || die "influxd not found: install InfluxDB 1.x (apt-get install -y influxdb)"
    mkdir -p "$dir"
    INFLUX_PID=""
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$(free_port)"
[meta]
  dir = "$dir/meta"
  logging-enabled = false
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
[logging]
  level = "warn"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
        "$bin" -config "$dir/influxdb.conf" >>"$dir/influxd.log" 2>&1 </dev/null &
        INFLUX_PID=$!
        local i
        for i in $(seq 1 400); do
            if curl -sf "http://127.0.0.1:$port/ping" >/dev/null; then
                INFLUX_PORT="$port"
                return 0
            fi
            kill -0 "$INFLUX_PID" 2>/dev/null || break
            sleep 0.05
        done
        stop_process "$INFLUX_PID" 10
        INFLUX_PID=""
        say "influxd did not start on port $port (attempt $attempt):"
        tail -5 "$dir/influxd.log" >&2
    done
    die "influxd did not start; see $dir/influxd.log"
}

# influx_query PORT DB QUERY: prints InfluxDB's JSON answer (times in ms).
influx_query() {
    curl -sf --max-time 30 -XPOST "http://127.0.0.1:$1/query" \
        --data-urlencode "db=$2" --data-urlencode "epoch=ms" --data-urlencode "q=$3"
}

# influx_point_count PORT DB: prints how many points a load generator's run
# left in DB (metric values plus alarm transitions; 0 when unreachable).
influx_point_count() {
    influx_query "$1" "$2" \
        'SELECT count(value) FROM /.*/; SELECT count(new_state) FROM alarm_state_history' 2>/dev/null |
        jq '[.results[].series[]?.values[][1]] | add // 0' 2>/dev/null || echo 0
}

# stop_process PID SECONDS: SIGTERM, wait up to SECONDS for the exit, then
# SIGKILL. Sets STOP_STATUS to the exit status (PID must be a child of this
# shell; 0 when it was already reaped).
stop_process() {
    local pid="$1" limit="$2"
    STOP_STATUS=0
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + limit))
    while kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]; do
        if ((SECONDS >= deadline)); then
            say "pid $pid did not exit ${limit}s after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
    return 0
}

# read_line_with PREFIX FILE SECONDS PID: waits for a line starting with
# PREFIX in FILE (written by process PID) and prints the rest of it.
read_line_with() {
    local prefix="$1" file="$2" limit="$3" pid="$4"
    local deadline=$((SECONDS + limit)) line
    while :; do
        line="$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            echo "${line#"$prefix"}"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "process $pid exited before printing '$prefix'"
        ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for '$prefix' from pid $pid"
        sleep 0.05
    done
}
