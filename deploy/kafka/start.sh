#!/bin/sh
# compose.yaml's Kafka: one KRaft node (broker and controller) that clients reach only over
# SASL_SSL with SCRAM-SHA-512, as the users in the secret kafka-users.properties, each allowed
# only what deploy/kafka/acls.tsv grants. Secrets come from `marketfeed compose-secrets`.
#
# Listeners:
#   SASL_SSL://:9092          the one other containers use (kafka:9092; TLS certificate for "kafka")
#   CONTROLLER://localhost:9093, INTERNAL://localhost:9094
#                             plaintext, bound to the container's loopback: KRaft's own traffic,
#                             and this script's set-up. Only a process inside this container can
#                             reach them, so their principal (User:ANONYMOUS) is the super user;
#                             a client of 9092 can never be ANONYMOUS (SASL is required there).
#
# Start-up: format the log directory (once), start the broker, then, through INTERNAL, create
# the SCRAM users and the ACLs, and only then mark the container ready (its healthcheck), so no
# service connects before its credentials and grants exist. A password never appears on a
# command line (every user of the host can read those): kafka-configs.sh reads it from a 0600
# file. SIGTERM (docker stop) is passed to the broker, which shuts down cleanly.
set -eu

# The image's paths; tests/unit/test_compose.py runs this script with stand-ins for them.
KAFKA=${KAFKA_HOME:-/opt/kafka}
SECRETS=${MARKETFEED_SECRETS:-/run/secrets}
WORK=${MARKETFEED_WORK:-/tmp/marketfeed}
ACLS=${MARKETFEED_ACLS:-/deploy/kafka/acls.tsv}
CONF="$WORK/server.properties"
READY="$WORK/ready"
INTERNAL=localhost:9094

umask 077
mkdir -p "$WORK"
rm -f "$READY"

cat >"$CONF" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
controller.listener.names=CONTROLLER
listeners=SASL_SSL://:9092,CONTROLLER://localhost:9093,INTERNAL://localhost:9094
advertised.listeners=SASL_SSL://kafka:9092,INTERNAL://localhost:9094
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT
inter.broker.listener.name=INTERNAL

sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$SECRETS/kafka-server.pem
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS

# The publisher creates its topics with the configured partition count; a topic created
# implicitly by a consumer's metadata request would have the wrong one.
auto.create.topics.enable=false
# One node cannot hold more than one replica of anything.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# Not a volume: like the Redis caches, the stream starts afresh with the stack (consumers tell
# a restarted publisher apart by its epoch).
log.dirs=/tmp/kraft-combined-logs
EOF

"$KAFKA/bin/kafka-storage.sh" format --config "$CONF" --cluster-id "$CLUSTER_ID" \
    --ignore-formatted >/dev/null

"$KAFKA/bin/kafka-server-start.sh" "$CONF" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null || true' TERM INT

until "$KAFKA/bin/kafka-broker-api-versions.sh" --bootstrap-server "$INTERNAL" >/dev/null 2>&1; do
    if ! kill -0 "$broker" 2>/dev/null; then
        echo "start.sh: the broker exited before it answered" >&2
        wait "$broker" || exit $?
        exit 1
    fi
    sleep 1
done

# SCRAM users (stored in the metadata log, so again on every start: idempotent).
while IFS='=' read -r user password; do
    [ -n "$user" ] || continue
    printf 'SCRAM-SHA-512=password=%s\n' "$password" >"$WORK/scram.properties"
    "$KAFKA/bin/kafka-configs.sh" --bootstrap-server "$INTERNAL" --alter \
        --entity-type users --entity-name "$user" \
        --add-config-file "$WORK/scram.properties" >/dev/null
done <"$SECRETS/kafka-users.properties"
rm -f "$WORK/scram.properties"
echo "start.sh: SCRAM users created"

# ACLs: one line of acls.tsv per call (principal, resource, pattern, name, operations).
grep -v '^#' "$ACLS" | while IFS='	' read -r principal resource pattern name operations; do
    [ -n "$principal" ] || continue
    set -- --bootstrap-server "$INTERNAL" --add --allow-principal "User:$principal" \
        "--$resource" "$name" --resource-pattern-type "$pattern"
    for operation in $(echo "$operations" | tr ',' ' '); do
        set -- "$@" --operation "$operation"
    done
    "$KAFKA/bin/kafka-acls.sh" "$@" >/dev/null
done
echo "start.sh: ACLs applied; ready"
touch "$READY"

# Until the broker exits (a trapped SIGTERM interrupts wait: wait again for the real exit).
status=0
while kill -0 "$broker" 2>/dev/null; do
    wait "$broker" && status=0 || status=$?
done
exit "$status"
