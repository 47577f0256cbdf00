# shellcheck shell=bash disable=SC2034
# Shared by ./up, ./down and ./status (sourced, not run).
# The local cloud: moto's server on 127.0.0.1:4566, state under .state/.

LC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LC_HOST=127.0.0.1
LC_PORT="${ORKOPS_LOCALCLOUD_PORT:-4566}"
LC_URL="http://${LC_HOST}:${LC_PORT}"
LC_VENV="${LC_DIR}/.venv"
LC_STATE="${LC_DIR}/.state"
LC_PIDFILE="${LC_STATE}/moto.pid"
LC_LOG="${LC_STATE}/moto.log"
LC_PY="${LC_VENV}/bin/python"

# True when the port answers like moto: /moto-api/config is a moto-only
# endpoint that returns a JSON object (HTTP 201).
lc_is_moto() {
    local body
    body="$(curl -s -m 3 "${LC_URL}/moto-api/config" 2>/dev/null)" || return 1
    case "${body}" in
        '{'*'}') return 0 ;;
        *) return 1 ;;
    esac
}

# True when something accepts TCP connections on the port.
lc_port_busy() {
    (exec 3<>"/dev/tcp/${LC_HOST}/${LC_PORT}") 2>/dev/null
}

# "pid/name" of the process(es) listening on the port, or "unknown".
lc_port_owner() {
    local out
    out="$(ss -Hltnp "sport = :${LC_PORT}" 2>/dev/null \
        | grep -o 'users:(([^)]*))' | sed -E 's/users:\(\("([^"]*)",pid=([0-9]+).*/pid \2 (\1)/' \
        | sort -u | paste -sd ',' -)"
    if [ -z "${out}" ] && command -v lsof >/dev/null 2>&1; then
        out="$(lsof -nP -iTCP:"${LC_PORT}" -sTCP:LISTEN -Fpc 2>/dev/null \
            | paste -sd ' ' - | sed -E 's/p([0-9]+) c([^ ]*)/pid \1 (\2)/g')"
    fi
    echo "${out:-unknown process}"
}

# PIDs listening on the port (one per line).
lc_port_pids() {
    ss -Hltnp "sport = :${LC_PORT}" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# True when pid $1 runs our moto server (its command line is moto's server
# started from this directory's venv).
lc_pid_is_our_moto() {
    local pid="$1" cmd
    [ -n "${pid}" ] && [ -r "/proc/${pid}/cmdline" ] || return 1
    cmd="$(tr '\0' ' ' <"/proc/${pid}/cmdline")"
    case "${cmd}" in
        *"${LC_VENV}/bin/"*moto*) return 0 ;;
        *) return 1 ;;
    esac
}

# Prints the pid of our moto (pidfile first, else the port's listener if it
# is this directory's moto); fails when there is none.
lc_our_pid() {
    local p
    p="$(cat "${LC_PIDFILE}" 2>/dev/null || true)"
    if [ -n "${p}" ] && lc_pid_is_our_moto "${p}"; then echo "${p}"; return 0; fi
    for p in $(lc_port_pids); do
        if lc_pid_is_our_moto "${p}"; then echo "${p}"; return 0; fi
    done
    return 1
}

lc_usage_hint() {
    cat <<EOF
Use it with:
  export AWS_ENDPOINT_URL=${LC_URL} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
Reset all state (keeps the seeded Debian images):  curl -X POST ${LC_URL}/moto-api/reset
Stop it:  ${LC_DIR}/down
EOF
}

# --- the bodies daemon (localstack/bodies, owner "localcloud", state in .state/) ---------------
LC_BODIES_OWNER=localcloud
LC_BODIES_PIDFILE="${LC_STATE}/bodies.pid"
LC_BODIES_LOG="${LC_STATE}/bodies.log"
LC_BODIES_STATUS="${LC_STATE}/bodies.json"

lc_bodies_enabled() {
    [ "${ORKOPS_LOCALCLOUD_BODIES:-1}" != 0 ]
}

# True when pid $1 runs this directory's bodies daemon for owner localcloud.
lc_pid_is_our_bodies() {
    local pid="$1" cmd
    [ -n "${pid}" ] && [ -r "/proc/${pid}/cmdline" ] || return 1
    cmd="$(tr '\0' ' ' <"/proc/${pid}/cmdline")"
    case "${cmd}" in
        *"${LC_DIR}/bodies "*"--owner ${LC_BODIES_OWNER} "*) return 0 ;;
        *) return 1 ;;
    esac
}

# PIDs of our bodies daemon: the pidfile's, else any process that is this directory's daemon.
lc_bodies_pids() {
    local p
    p="$(cat "${LC_BODIES_PIDFILE}" 2>/dev/null || true)"
    if [ -n "${p}" ] && lc_pid_is_our_bodies "${p}"; then echo "${p}"; return 0; fi
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        lc_pid_is_our_bodies "${p}" && echo "${p}"
    done
    return 0
}

# "PID STATE_DIR" of a live bodies daemon of owner localcloud for this endpoint that another
# checkout's ./up started (its owner record names it); fails when there is none. Two daemons
# cannot share an owner, so ./up and ./status use that one rather than start their own.
lc_bodies_elsewhere() {
    local rec="${ORKOPS_LOCALCLOUD_RUN_DIR:-/run/orkops-localcloud}/owners/${LC_BODIES_OWNER}.json" found pid
    [ -r "${rec}" ] && [ -x "${LC_PY}" ] || return 1
    found="$("${LC_PY}" - "${rec}" "${LC_URL}" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("endpoint") == sys.argv[2]:
    print(r.get("pid", ""), r.get("state_dir", ""))
PY
)" || return 1
    pid="${found%% *}"
    [ -n "${pid}" ] && [ -r "/proc/${pid}/cmdline" ] || return 1
    case "$(tr '\0' ' ' <"/proc/${pid}/cmdline")" in
        *"/bodies "*"--owner ${LC_BODIES_OWNER} "*) echo "${found}" ;;
        *) return 1 ;;
    esac
}
