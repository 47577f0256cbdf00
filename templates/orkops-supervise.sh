#!/bin/sh
# orkops-supervise: runs the orkops systemd units on a host without systemd (a container, a
# minimal image). It reads a unit's Environment= lines and its ExecStart= command and keeps the
# command running, started again 2 s after it exits, as Restart=always does; the output goes
# to /var/log/orkops/UNIT.log. Installed by the orkops bootstrap only where systemd is absent.
#   orkops-supervise start|stop|restart|status UNIT
set -eu
usage="usage: orkops-supervise start|stop|restart|status UNIT"
cmd=${1:?$usage}
unit=${2:?$usage}
file=/etc/systemd/system/$unit.service
run=/run/orkops-supervise
pidfile=$run/$unit.pid
log=/var/log/orkops/$unit.log
mkdir -p "$run" /var/log/orkops

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$cmd" in
start)
  running && exit 0
  [ -f "$file" ] || { echo "orkops-supervise: no unit $file" >&2; exit 1; }
  setsid sh -c '
    unit=$1 file=$2
    for kv in $(sed -n "s/^Environment=//p" "$file"); do export "$kv"; done
    command=$(sed -n "s/^ExecStart=//p" "$file")
    child=
    trap "[ -n \"\$child\" ] && kill -TERM \$child 2>/dev/null; wait; exit 0" TERM INT
    while :; do
      echo "orkops-supervise: starting $unit at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
      $command &
      child=$!
      wait $child || true
      child=
      sleep 2
    done' "orkops-supervise-$unit" "$unit" "$file" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  ;;
stop)
  if running; then
    # the loop leads its own process group (setsid): signal the loop and the service together
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  ;;
restart)
  "$0" stop "$unit"
  "$0" start "$unit"
  ;;
status)
  if running; then echo "$unit: running (pid $(cat "$pidfile"))"; else echo "$unit: stopped"; exit 3; fi
  ;;
*)
  echo "$usage" >&2
  exit 2
  ;;
esac
