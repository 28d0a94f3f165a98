#!/usr/bin/env bash
# maxconn.sh: the "as many idle connections as one process may open" row of
# issue 5 (make bench-maxconn). One broker process pinned to CPU 1 holds
# CONNS connections, each subscribed to a topic of its own, opened by one
# flockmq-bench process pinned to CPU 0; after the hold the tool publishes
# one message to each of PROBE random connections and checks that each
# arrives exactly once. The tool reports the broker's VmRSS before and after
# the connections, per connection, and extrapolated to 1,000,000.
#
#   bench/scripts/maxconn.sh [flockmq|mosquitto] [more flockmq-bench flags]
#
# Environment: BIN (bin), CONNS (max), PROBE (1000), HOLD (10s), PORT
# (18883), MOSQUITTO (/usr/sbin/mosquitto). CONNS=max is the most the broker
# can hold, less the probe publisher: for mosquitto its open-file limit less
# the descriptors it has open when idle and one to spare; for FlockMQ its
# connection cap, the open-file limit less 64 it keeps for everything else
# (eventloop.FDReserve; past the cap a connection is closed on accept). And
# no more than the tool can open under its own limit (it runs with
# --dialers 2 to need few descriptors besides the connections).
set -euo pipefail

broker=${1:-flockmq}
shift || true
bin=${BIN:-bin}
conns=${CONNS:-max}
probe=${PROBE:-1000}
hold=${HOLD:-10s}
port=${PORT:-18883}
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}

dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# listening: whether a socket listens on 127.0.0.1:port (no connection made,
# so the broker's descriptors can be counted afterwards).
listening() { awk -v a="$(printf '0100007F:%04X' "$port")" '$2 == a && $4 == "0A" {f = 1} END {exit !f}' /proc/net/tcp; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
vmrss() { awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$1/status"; }

if listening; then
	echo "maxconn: 127.0.0.1:$port is in use; set PORT" >&2
	exit 1
fi
case $broker in
flockmq)
	GOMAXPROCS=1 taskset -c 1 "$bin/flockmq" -store memory -sys-interval 0 -log-level warn -loops 1 \
		-listen "127.0.0.1:$port" >"$dir/broker.log" 2>&1 &
	;;
mosquitto)
	# Tuned for this capacity test, like the flockmq line above: no limits,
	# no persistence, no $SYS, errors and warnings only. (bench-compare runs
	# Mosquitto with Debian's configuration instead.)
	printf '%s\n' "listener $port 127.0.0.1" 'allow_anonymous true' 'max_connections -1' \
		'max_inflight_messages 0' 'max_queued_messages 0' 'set_tcp_nodelay true' 'persistence false' \
		'sys_interval 0' 'log_dest stderr' 'log_type error' 'log_type warning' >"$dir/mosquitto.conf"
	taskset -c 1 "$mosquitto" -c "$dir/mosquitto.conf" >"$dir/broker.log" 2>&1 &
	;;
*)
	echo "maxconn: unknown broker $broker (flockmq or mosquitto)" >&2
	exit 2
	;;
esac
pid=$! # taskset execs the broker in place

# Poll until the broker listens and its descriptor count has settled
# (the event loops start after the listener), 15 s at most.
deadline=$((SECONDS + 15))
last=-1 same=0
while [ "$same" -lt 4 ]; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
		echo "maxconn: $broker did not start:" >&2
		cat "$dir/broker.log" >&2
		exit 1
	fi
	sleep 0.05
	if listening; then
		n=$(fds "$pid")
		if [ "$n" -eq "$last" ]; then same=$((same + 1)); else same=0 last=$n; fi
	fi
done
limit=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
room=$((limit - 1 - last))
if [ "$conns" = max ]; then
	# The tool needs the same: one descriptor per connection, the probe
	# publisher's, and about 14 of its own (stdio, the Go and gnet pollers,
	# two dialers, inherited ones).
	conns=$((room - 1))
	if [ "$broker" = flockmq ]; then
		cap=$((limit - 64)) # eventloop.FDReserve
		if [ "$limit" -le 128 ]; then cap=$((limit / 2)); fi
		if [ "$((cap - 1))" -lt "$conns" ]; then conns=$((cap - 1)); fi
	fi
	tool=$(($(ulimit -n) - 1 - 14))
	if [ "$tool" -lt "$conns" ]; then conns=$tool; fi
fi
echo "maxconn: $broker pid $pid on CPU 1: open-file limit $limit, $last open when idle, room for $room connections; VmRSS idle $(vmrss "$pid")"
echo "maxconn: flockmq-bench on CPU 0 (open-file limit $(ulimit -n)): conn -c $conns --probe $probe --duration $hold"

taskset -c 0 "$bin/flockmq-bench" conn --host "127.0.0.1:$port" -c "$conns" --probe "$probe" --pid "$pid" \
	--duration "$hold" --dialers 2 "$@" &
tool=$!
# The broker's descriptors in use, sampled while the tool runs.
peak=0
while kill -0 "$tool" 2>/dev/null; do
	n=$(fds "$pid")
	if [ "$n" -gt "$peak" ]; then peak=$n; fi
	sleep 0.5
done
rc=0
wait "$tool" || rc=$?

if kill -0 "$pid" 2>/dev/null; then
	echo "maxconn: $broker peak open descriptors $peak of $limit; VmRSS after the run $(vmrss "$pid")"
else
	echo "maxconn: $broker exited during the run:" >&2
	rc=1
fi
if [ -s "$dir/broker.log" ]; then
	echo "maxconn: $broker log (last lines):"
	tail -n 5 "$dir/broker.log"
fi
exit "$rc"
