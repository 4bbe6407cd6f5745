# A 3-node RabbitMQ cluster on loopback for the failover test: nodes troupe1..3@localhost,
# AMQP on 127.0.0.1:5701..5703 (guest/guest), state under ${RABBIT_CLUSTER_DIR}.
# Sourced by scripts/services.sh (after 20-rabbitmq.sh installs the server). Idempotent:
# starts the nodes that are not running (a test may have killed one) and joins any node
# that is not in the cluster; never resets a running node.

RABBIT_CLUSTER_DIR=${RABBIT_CLUSTER_DIR:-/tmp/troupe-rabbit-cluster}

rabbit_node_up() { rabbitmqctl -q -n "troupe$1@localhost" await_startup --timeout 1 >/dev/null 2>&1; }

rabbit_node_start() { # rabbit_node_start <n>
  local n=$1 dir="$RABBIT_CLUSTER_DIR/n$1"
  mkdir -p "$dir"
  printf 'listeners.tcp.local = 127.0.0.1:%s\n' $((5700 + n)) >"$dir/rabbitmq.conf"
  echo "[]." >"$RABBIT_CLUSTER_DIR/plugins"
  chown -R rabbitmq:rabbitmq "$RABBIT_CLUSTER_DIR" 2>/dev/null || true
  env RABBITMQ_NODENAME="troupe$n@localhost" RABBITMQ_DIST_PORT=$((25700 + n)) \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_CLUSTER_DIR/plugins" \
    RABBITMQ_PID_FILE="$dir/pid" rabbitmq-server -detached >/dev/null 2>&1 || true
}

rabbit_cluster() {
  local n started=0
  # None running (a new machine, or a reboot): nothing in the old state is worth keeping
  # (test queues are per run), and three stale nodes would wait on each other's tables.
  if ! rabbit_node_up 1 && ! rabbit_node_up 2 && ! rabbit_node_up 3; then
    rm -rf "$RABBIT_CLUSTER_DIR"
  fi
  for n in 1 2 3; do
    if ! rabbit_node_up "$n"; then rabbit_node_start "$n"; started=1; fi
  done
  if [ "$started" = 1 ]; then log "starting the 3-node RabbitMQ cluster (127.0.0.1:5701-5703)"; fi
  for n in 1 2 3; do
    wait_for "RabbitMQ node troupe$n" 90 rabbitmqctl -q -n "troupe$n@localhost" await_startup --timeout 5
  done
  for n in 2 3; do
    if ! rabbitmqctl -q -n troupe1@localhost cluster_status 2>/dev/null | grep -q "troupe$n@localhost"; then
      rabbitmqctl -q -n "troupe$n@localhost" stop_app >/dev/null
      rabbitmqctl -q -n "troupe$n@localhost" join_cluster troupe1@localhost >/dev/null
      rabbitmqctl -q -n "troupe$n@localhost" start_app >/dev/null
    fi
  done
  log "RabbitMQ cluster is up"
}

rabbit_cluster
