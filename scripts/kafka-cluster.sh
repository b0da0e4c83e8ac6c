# shellcheck shell=bash
# scripts/kafka-cluster.sh - the multi-broker mode of scripts/kafka (sourced by it, never
# run alone): one KRaft controller plus N brokers, each its own JVM, on this machine.
#
# Layout for N brokers on base port PORT (TIDINGS_KAFKA_PORT):
#   node 0      controller only   127.0.0.1:CPORT   (TIDINGS_KAFKA_CONTROLLER_PORT, default PORT+100)
#   node i      broker only       127.0.0.1:PORT+i-1, for i = 1..N
#   run dir     /tmp/tidings-kafka-cluster-PORT (TIDINGS_KAFKA_RUN), one sub-folder node<i> each
# The single-node mode puts its controller on PORT+1, which here is broker 2: a cluster and a
# single node need base ports at least 101 apart. Keep every port below the kernel's
# ephemeral range (ip_local_port_range, usually from 32768), where an outgoing connection
# may hold it: the tests use base 29092.
#
# Why a dedicated controller rather than three combined broker+controller nodes: the tests
# kill brokers (one, then two at once); with combined nodes two dead nodes would also lose
# the controller quorum, and the cluster could no longer shrink ISRs or elect leaders, which
# is a different failure from "below min.insync.replicas". The controller is never killed.
#
# Failure detection is tuned for tests: a broker missing heartbeats for 4 s is fenced (Kafka's
# default is 9 s), which is when its partitions get new leaders. Internal topics use
# replication 3 / min ISR 2 (offsets, transactions), as a production cluster would; the broker
# defaults for other topics are left at Kafka's own (default.replication.factor=1,
# min.insync.replicas=1), so a topic is only replicated when whoever creates it says so.

readonly NBROKERS=$BROKERS
readonly CRUN="${TIDINGS_KAFKA_RUN:-/tmp/tidings-kafka-cluster-$PORT}"
readonly CCPORT="${TIDINGS_KAFKA_CONTROLLER_PORT:-$((PORT + 100))}"
[[ $CCPORT =~ ^[0-9]+$ ]] || { echo "kafka: TIDINGS_KAFKA_CONTROLLER_PORT must be a number, got '$CCPORT'" >&2; exit 2; }
readonly BROKER_HEAP="${TIDINGS_KAFKA_BROKER_HEAP:-320m}"

node_dir() { echo "$CRUN/node$1"; }
node_port() { if (($1 == 0)); then echo "$CCPORT"; else echo $((PORT + $1 - 1)); fi; }
node_props() { echo "$(node_dir "$1")/server.properties"; }
node_pidfile() { echo "$(node_dir "$1")/kafka.pid"; }
node_log() { echo "$(node_dir "$1")/broker.log"; }
node_name() { if (($1 == 0)); then echo "controller"; else echo "broker $1"; fi; }

node_pid() {
    local f pid
    f=$(node_pidfile "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

# Is $2 a live JVM of node $1 (started on that node's server.properties)?
node_alive() {
    local node=$1 pid=$2 state cmdline
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmdline == *kafka.Kafka* && $cmdline == *"$(node_props "$node")"* ]]
}

node_running() { local pid; pid=$(node_pid "$1") && node_alive "$1" "$pid"; }

check_node() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= NBROKERS)) ||
        die "NODE must be a broker number 1..$NBROKERS (node 0, the controller, is not killed), got '${1:-}'"
}

lock_cluster() {
    mkdir -p "$CRUN"
    exec 8>"$CRUN/.lock"
    have_flock || return 0
    flock -w "$((START_TIMEOUT + 60))" 8 || die "could not lock $CRUN/.lock (another start/stop still running?)"
}

write_node_configs() {
    local node=$1 dir props level="${TIDINGS_KAFKA_LOG_LEVEL:-WARN}" extra="" roles listeners
    dir=$(node_dir "$node")
    props=$(node_props "$node")
    mkdir -p "$dir/data" "$dir/logs"
    write_file "$dir/log4j2.properties" "# Written by scripts/kafka.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $level
rootLogger.appenderRef.out.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.signal.name = org.apache.kafka.common.utils.LoggingSignalHandler
logger.signal.level = INFO"
    if [[ -n ${TIDINGS_KAFKA_PROPS:-} ]]; then
        extra=$'\n# From TIDINGS_KAFKA_PROPS (later keys win):\n'$(tr -s '[:space:]' '\n' <<<"$TIDINGS_KAFKA_PROPS")
    fi
    if ((node == 0)); then
        roles=controller
        listeners="CONTROLLER://$HOST:$CCPORT"
    else
        roles=broker
        listeners="PLAINTEXT://$HOST:$(node_port "$node")"
    fi
    write_file "$props" "# Written by scripts/kafka: node $node of a throwaway $NBROKERS-broker KRaft cluster.
process.roles=$roles
node.id=$node
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.voters=0@$HOST:$CCPORT
log.dirs=$dir/data

# A broker missing heartbeats for 4 s is fenced and loses its leaderships (default 9 s).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000

# Internal topics as a production cluster has them: 3 replicas, 2 in sync to write.
offsets.topic.replication.factor=$((NBROKERS < 3 ? NBROKERS : 3))
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$((NBROKERS < 3 ? NBROKERS : 3))
transaction.state.log.min.isr=$((NBROKERS < 3 ? 1 : 2))
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$((NBROKERS < 3 ? NBROKERS : 3))
share.coordinator.state.topic.min.isr=$((NBROKERS < 3 ? 1 : 2))
share.coordinator.state.topic.num.partitions=1
# Other topics: Kafka's own defaults, so replication is whatever their creator asks for.
default.replication.factor=1
min.insync.replicas=1

group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1$extra"
}

# Launch node $1 detached (see cmd_start in scripts/kafka for the why of each part).
launch_node() {
    local node=$1 dir props pidfile logfile heap pid i
    dir=$(node_dir "$node")
    props=$(node_props "$node")
    pidfile=$(node_pidfile "$node")
    logfile=$(node_log "$node")
    heap=$BROKER_HEAP
    ((node == 0)) && heap=192m
    rm -f "$pidfile"
    echo "----- start $(date -u +%FT%TZ) -----" >>"$logfile"
    # shellcheck disable=SC2086 # TIDINGS_KAFKA_JVM_OPTS is a list of words
    # shellcheck disable=SC2016 # $$ and $@ are for the inner bash
    (
        cd "$dir"
        exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
            java -Xms64m -Xmx"$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
            -Dkafka.logs.dir="$dir/logs" \
            -Dlog4j2.configurationFile="$dir/log4j2.properties" \
            ${TIDINGS_KAFKA_JVM_OPTS:-} \
            -cp "$LIB/*" kafka.Kafka "$props" \
            </dev/null >>"$logfile" 2>&1 8>&- 9>&-
    ) &
    for ((i = 0; i < 100; i++)); do
        pid=$(node_pid "$node") && break
        sleep 0.05
    done
    [[ -n ${pid:-} ]] || die "launcher of node $node did not write $pidfile"
}

# Wait until node $1 logged "Kafka Server started" (after launch offset $2) and its port opens.
wait_node() {
    local node=$1 from=$2 deadline=$((SECONDS + START_TIMEOUT)) pid port logfile
    port=$(node_port "$node")
    logfile=$(node_log "$node")
    while :; do
        pid=$(node_pid "$node") || pid=0
        if ! node_alive "$node" "$pid"; then
            tail -n 40 "$logfile" >&2
            die "$(node_name "$node") (node $node) exited during startup; full log: $logfile"
        fi
        if port_open "$port" && tail -c +"$from" "$logfile" | grep -q 'Kafka Server started'; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$logfile" >&2
            die "$(node_name "$node") (node $node) not ready within ${START_TIMEOUT}s; full log: $logfile"
        fi
        sleep 0.2
    done
}

log_size() { local f; f=$(node_log "$1"); if [[ -f $f ]]; then echo $(($(stat -c %s "$f") + 1)); else echo 1; fi; }

# Start node $1 on its existing data and wait for it.
start_node() {
    local node=$1 from
    from=$(log_size "$node")
    launch_node "$node"
    wait_node "$node" "$from"
}

terminate_node() {
    local node=$1 signal=$2 pid deadline
    pid=$(node_pid "$node") && node_alive "$node" "$pid" || return 0
    kill "-$signal" "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + STOP_TIMEOUT))
    while node_alive "$node" "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if node_alive "$node" "$pid"; then
        info "node $node (pid $pid) still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while node_alive "$node" "$pid"; do sleep 0.1; done
    fi
    rm -f "$(node_pidfile "$node")"
}

cluster_start() {
    local t0 node cluster_id running=0 from pids=()
    t0=$(now)
    need_java
    lock_cluster
    for ((node = 0; node <= NBROKERS; node++)); do node_running "$node" && running=$((running + 1)); done
    if ((running == NBROKERS + 1)); then
        echo "kafka: $NBROKERS-broker cluster already running on $HOST:$PORT-$((PORT + NBROKERS - 1)); nothing to do"
        return 0
    fi
    if ((running > 0)); then
        # Some nodes died or were killed: start the missing ones on their data.
        for ((node = 0; node <= NBROKERS; node++)); do
            node_running "$node" || { info "starting $(node_name "$node") again (it was down)"; start_node "$node"; }
        done
        echo "kafka: $NBROKERS-broker cluster ready on $HOST:$PORT-$((PORT + NBROKERS - 1)) after $(elapsed "$t0")s"
        return 0
    fi
    for ((node = 0; node <= NBROKERS; node++)); do
        port_open "$(node_port "$node")" && die "$HOST:$(node_port "$node") (for $(node_name "$node")) is already in use; pick another TIDINGS_KAFKA_PORT"
    done
    ensure_lib
    write_tools_log_cfg
    rm -rf "$CRUN"/node*
    cluster_id=$(gen_cluster_id)
    echo "$cluster_id" >"$CRUN/cluster.id"
    echo "$NBROKERS" >"$CRUN/brokers"
    # Format every node's storage with the one cluster id, in parallel (a JVM start each).
    for ((node = 0; node <= NBROKERS; node++)); do
        write_node_configs "$node"
        java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$TOOLS_LOG_CFG" -cp "$LIB/*" \
            kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$(node_props "$node")" \
            >"$(node_dir "$node")/format.log" 2>&1 &
        pids+=($!)
    done
    for node in "${!pids[@]}"; do
        wait "${pids[$node]}" || { cat "$(node_dir "$node")/format.log" >&2; die "formatting node $node failed"; }
    done
    for ((node = 0; node <= NBROKERS; node++)); do : >"$(node_log "$node")"; done
    # A node that fails to start must not leave the others running without it.
    trap 'abort_start' EXIT
    launch_node 0
    for ((node = 1; node <= NBROKERS; node++)); do launch_node "$node"; done
    for ((node = 0; node <= NBROKERS; node++)); do wait_node "$node" 1; done
    trap - EXIT
    echo "kafka: $NBROKERS-broker cluster ready on $HOST:$PORT-$((PORT + NBROKERS - 1)) (controller $HOST:$CCPORT, run dir $CRUN) after $(elapsed "$t0")s"
}

abort_start() {
    local node
    info "stopping the nodes started so far"
    for ((node = NBROKERS; node >= 0; node--)); do terminate_node "$node" KILL; done
}

cluster_stop() {
    local t0 node
    t0=$(now)
    lock_cluster
    for ((node = NBROKERS; node >= 1; node--)); do terminate_node "$node" TERM & done
    wait
    terminate_node 0 TERM
    rm -rf "$CRUN"/node*/data "$CRUN"/node*/logs "$CRUN/brokers"
    echo "kafka: stopped the cluster of $CRUN in $(elapsed "$t0")s"
}

cluster_status() {
    local node pid rc=0
    for ((node = 0; node <= NBROKERS; node++)); do
        if pid=$(node_pid "$node") && node_alive "$node" "$pid"; then
            if port_open "$(node_port "$node")"; then
                echo "node $node $(node_name "$node"): running $HOST:$(node_port "$node") (pid $pid)"
            else
                echo "node $node $(node_name "$node"): starting $HOST:$(node_port "$node") (pid $pid)"
                rc=3
            fi
        else
            echo "node $node $(node_name "$node"): stopped $HOST:$(node_port "$node")"
            rc=3
        fi
    done
    return "$rc"
}

cluster_kill() {
    local node=${1:-} t0
    check_node "$node"
    t0=$(now)
    lock_cluster
    node_running "$node" || { echo "kafka: broker $node is not running"; return 0; }
    terminate_node "$node" KILL
    echo "kafka: killed broker $node ($HOST:$(node_port "$node")) with SIGKILL in $(elapsed "$t0")s"
}

cluster_restart_node() {
    local node=${1:-} t0
    check_node "$node"
    t0=$(now)
    need_java
    lock_cluster
    [[ -d $(node_dir "$node")/data ]] || die "broker $node has no data in $(node_dir "$node"); start the cluster first"
    node_running "$node" && terminate_node "$node" TERM
    start_node "$node"
    echo "kafka: broker $node ready on $HOST:$(node_port "$node") (same data) after $(elapsed "$t0")s"
}

cluster_main() {
    local cmd=$1
    shift
    case $cmd in
        start) cluster_start ;;
        stop) cluster_stop ;;
        restart)
            if (($# > 0)); then cluster_restart_node "$1"; else cluster_stop && cluster_start; fi
            ;;
        kill) cluster_kill "${1:-}" ;;
        status) cluster_status ;;
        logs)
            local node=${1:-1}
            (($# > 0)) && shift
            [[ -f $(node_log "$node") ]] || die "no log for node $node in $CRUN"
            if (($# == 0)); then set -- -n 100; fi
            exec tail "$@" "$(node_log "$node")"
            ;;
    esac
}
