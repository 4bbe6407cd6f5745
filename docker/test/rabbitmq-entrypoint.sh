#!/bin/sh
# RabbitMQ from Debian with RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS as its default user
# (created on an empty volume), listening on 5672 in the container.
set -eu
export HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=rabbit@localhost
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users = none
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
listeners.tcp.default = 5672
CONF
exec su rabbitmq -s /bin/sh -c 'exec /usr/sbin/rabbitmq-server'
