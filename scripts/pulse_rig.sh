#!/usr/bin/env bash
# Audio test rig: a PulseAudio server with a null sink whose monitor is the capture device, so tests can
# play known audio (paplay) and record it back through PortAudio's ALSA "pulse" device, with no sound card.
#
#   bash scripts/pulse_rig.sh start        start (or reuse) the server, load the sink, start the keeper
#   bash scripts/pulse_rig.sh stop         undo what start did
#   bash scripts/pulse_rig.sh status       print the state; exit 0 only if the rig is fully up
#   bash scripts/pulse_rig.sh unload-sink  unload the null sink (simulated device loss; keeper stopped)
#   bash scripts/pulse_rig.sh load-sink    load it again, reset the default source, restart the keeper
#
# No environment variables are needed by the caller or by the processes that use the rig afterwards.
# Clients (pactl, paplay, libpulse inside the ALSA "pulse" plugin) find the server exactly as the daemon
# placed it: $XDG_RUNTIME_DIR/pulse when that is set, else /tmp/pulse-XXXX linked from
# ~/.config/pulse/<machine-id>-runtime (the usual case for root on a CI machine). The only requirement is
# that start and the tests run as the same user with the same HOME/XDG_RUNTIME_DIR.
#
# Notes on the flags (PulseAudio 16, Debian 12):
#  - As root, the per-user daemon only warns "not intended to be run as root"; --system=false keeps it a
#    per-user daemon (a --system daemon would need the pulse user, group access and auth-anonymous).
#    No PULSE_RUNTIME_PATH or --disallow-exit is needed; --disallow-exit would only stop `pactl exit`.
#  - -n skips default.pa: no hardware detection, no module-suspend-on-idle, no module-always-sink (which
#    would load an "auto_null" sink and hide a device loss when the test sink is unloaded).
#  - --exit-idle-time=-1 keeps the daemon alive with no clients.
#  - libpulse never autospawns a daemon for root, so with the daemon stopped there is no server at all.
#  - The keeper is `parec --latency-msec=20` on the monitor. With no low-latency reader, the null sink
#    renders in 2 s blocks and the first PortAudio callback of a new capture arrives 0.7-1.8 s late; a
#    keeper with the default (2 s) latency does NOT help. With it the first callback comes in ~10-70 ms.
#  - If a server is already running (a developer's desktop PulseAudio or pipewire-pulse), start reuses it:
#    it loads the sink, remembers the previous default source, and stop restores it and unloads the sink
#    without killing that server.
#
# State (keeper pid, whether we own the daemon, previous default source, log) lives in $LIVE_MER_RIG_STATE,
# by default ${XDG_RUNTIME_DIR:-/tmp}/live_mer_pulse_rig-<uid>.
set -euo pipefail

SINK=live_mer_test
SOURCE=$SINK.monitor
RATE=48000
SINK_ARGS="sink_name=$SINK format=float32le rate=$RATE channels=2"
TIMEOUT=${LIVE_MER_RIG_TIMEOUT:-15}
STATE=${LIVE_MER_RIG_STATE:-${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/live_mer_pulse_rig-$(id -u)}
LOG=$STATE/pulseaudio.log

say() { echo "pulse_rig: $*"; }
die() { echo "pulse_rig: ERROR: $*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

server_up() { timeout 5 pactl info >/dev/null 2>&1; }

sink_loaded() { timeout 5 pactl list short sinks 2>/dev/null | awk -v s="$SINK" '$2 == s {f=1} END {exit !f}'; }
server_down() { ! server_up; }
daemon_gone() { server_down && ! pulseaudio --check 2>/dev/null; }
sink_gone() { ! sink_loaded; }
pid_alive() {  # not a zombie (an orphan's zombie lingers until PID 1 reaps it, slowly in some containers)
  local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$st" ] && [ "$st" != Z ]
}
pid_gone() { ! pid_alive "$1"; }

pid_is() {  # pid_is PID NAME: PID is alive and its command is NAME
  [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && pid_alive "$1"
}

wait_until() {  # wait_until SECONDS CMD...: poll CMD every 0.1 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

lock() {
  mkdir -p "$STATE"; chmod 700 "$STATE"
  exec 9>"$STATE/lock"
  if have flock; then flock -w 60 9 || die "another pulse_rig.sh holds $STATE/lock"; fi
}

start_daemon() {
  have pulseaudio || die "no PulseAudio server is running and 'pulseaudio' is not installed.
  Debian/Ubuntu: apt-get install pulseaudio pulseaudio-utils libasound2-plugins
  (tests that need audio will skip themselves)"
  : >"$LOG"
  # pulseaudio -D daemonizes and returns once the daemon has started (or failed to).
  if ! pulseaudio -D -n --exit-idle-time=-1 --system=false \
      --log-target="file:$LOG" \
      -L module-native-protocol-unix \
      -L "module-null-sink $SINK_ARGS" </dev/null >/dev/null 2>>"$LOG" 9>&-; then
    tail -n 20 "$LOG" >&2 || true
    die "pulseaudio failed to start (log: $LOG)"
  fi
  echo 1 >"$STATE/owned"
  if ! wait_until "$TIMEOUT" server_up; then
    tail -n 20 "$LOG" >&2 || true
    die "pulseaudio started but 'pactl info' did not answer within ${TIMEOUT}s (log: $LOG).
  If XDG_RUNTIME_DIR points at a directory this user does not own (e.g. under sudo), unset it."
  fi
}

server_string() { timeout 5 pactl info 2>/dev/null | sed -n 's/^Server String: //p'; }

default_source() { timeout 5 pactl get-default-source 2>/dev/null || true; }

load_sink() {
  if ! sink_loaded; then
    timeout 10 pactl load-module module-null-sink $SINK_ARGS >/dev/null || die "could not load module-null-sink"
  fi
  wait_until "$TIMEOUT" sink_loaded || die "sink $SINK did not appear within ${TIMEOUT}s"
  timeout 5 pactl set-default-source "$SOURCE" || die "could not set the default source to $SOURCE"
}

unload_sink() {
  local idx
  for idx in $(timeout 5 pactl list short modules 2>/dev/null |
               awk -v a="sink_name=$SINK" '$2 == "module-null-sink" && index($0, a) {print $1}'); do
    timeout 10 pactl unload-module "$idx" || die "could not unload module $idx"
  done
  wait_until "$TIMEOUT" sink_gone || die "sink $SINK still present after unload"
}

keeper_alive() { pid_is "$(cat "$STATE/keeper.pid" 2>/dev/null)" parec; }

start_keeper() {
  keeper_alive && return 0
  parec --device="$SOURCE" --latency-msec=20 --client-name=live_mer_rig_keeper --raw \
    </dev/null >/dev/null 2>>"$STATE/keeper.log" 9>&- &
  echo $! >"$STATE/keeper.pid"
  disown || true
  sleep 0.2
  keeper_alive || die "the parec keeper exited at once (see $STATE/keeper.log)"
}

stop_keeper() {
  local pid; pid=$(cat "$STATE/keeper.pid" 2>/dev/null || true)
  if pid_is "$pid" parec; then
    kill "$pid" 2>/dev/null || true
    wait_until 5 pid_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/keeper.pid"
}

cmd_start() {
  have pactl || die "'pactl' is not installed (Debian/Ubuntu: apt-get install pulseaudio-utils);
  tests that need audio will skip themselves"
  have parec || die "'parec' is not installed (pulseaudio-utils)"
  lock
  if server_up; then
    if [ ! -f "$STATE/owned" ] && [ ! -f "$STATE/prev_source" ]; then
      # Someone else's server (desktop session): remember what to restore.
      say "reusing the running PulseAudio server at $(server_string)"
      default_source >"$STATE/prev_source"
    fi
  else
    rm -f "$STATE/owned" "$STATE/prev_source"
    stop_keeper
    start_daemon
  fi
  load_sink
  start_keeper
  say "ready: server $(server_string), sink $SINK, default source $SOURCE, keeper pid $(cat "$STATE/keeper.pid")"
  say "no environment variables needed (same user/HOME as this shell)"
}

cmd_stop() {
  lock
  stop_keeper
  if [ -f "$STATE/owned" ]; then
    # -k signals the pid in the daemon's runtime dir, found the same way as the clients find the socket.
    have pulseaudio && { pulseaudio -k 2>/dev/null || true; }
    wait_until "$TIMEOUT" daemon_gone || die "the PulseAudio daemon is still running ${TIMEOUT}s after 'pulseaudio -k'"
    say "stopped"
  elif server_up; then
    unload_sink
    local prev; prev=$(cat "$STATE/prev_source" 2>/dev/null || true)
    if [ -n "$prev" ] && [ "$prev" != "$SOURCE" ]; then
      timeout 5 pactl set-default-source "$prev" 2>/dev/null || true
    fi
    say "unloaded $SINK from the shared server (left it running)"
  else
    say "not running"
  fi
  rm -f "$STATE/owned" "$STATE/prev_source"
}

cmd_status() {
  local ok=0
  if server_up; then
    say "server: $(server_string)$([ -f "$STATE/owned" ] && echo ' (started by the rig)')"
    if sink_loaded; then say "sink: $SINK loaded"; else say "sink: $SINK MISSING"; ok=1; fi
    say "default source: $(default_source)"
  else
    say "server: not reachable"; ok=1
  fi
  if keeper_alive; then say "keeper: pid $(cat "$STATE/keeper.pid")"; else say "keeper: not running"; ok=1; fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  unload-sink) lock; stop_keeper; server_up || die "no PulseAudio server"; unload_sink; say "unloaded $SINK" ;;
  load-sink) lock; server_up || die "no PulseAudio server"; load_sink; start_keeper; say "loaded $SINK" ;;
  *) echo "usage: $0 {start|stop|status|unload-sink|load-sink}" >&2; exit 2 ;;
esac
