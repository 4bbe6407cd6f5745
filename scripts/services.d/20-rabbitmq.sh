# RabbitMQ on 127.0.0.1:5672 (guest/guest), for the event pipeline tests.
# Sourced by scripts/services.sh, which provides log, apt_install and wait_for.
# Never stops or resets a running node (other test runs may be using it).

rabbitmq_up() { rabbitmqctl -q await_startup --timeout 1 >/dev/null 2>&1; }

rabbitmq() {
  if rabbitmq_up; then log "RabbitMQ is up"; return; fi
  if ! command -v rabbitmq-server >/dev/null; then log "installing RabbitMQ"; apt_install rabbitmq-server; fi
  if ! pgrep -x beam.smp >/dev/null 2>&1 || ! rabbitmq_up; then
    log "starting RabbitMQ"
    # Listen on loopback only; guest may log in from loopback.
    export RABBITMQ_NODE_IP_ADDRESS=${RABBITMQ_NODE_IP_ADDRESS:-127.0.0.1}
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  wait_for RabbitMQ 60 rabbitmqctl -q await_startup --timeout 5
}

rabbitmq
