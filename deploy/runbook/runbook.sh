#!/bin/sh
# The deployment runbook of docs/operations.md ("Deploying a cluster"), one
# function per numbered step: `runbook.sh STEP`. The docs quote these lines;
# softhsm-tests/runbook_test.go runs them on loopback (three custosd
# processes, three SoftHSM tokens) and checks that the docs still quote them.
#
# Each step runs on the machine its comment names, with these variables:
#   CLUSTER        cluster name                          (prod)
#   CUSTOS CUSTOSD the binaries                          (custos, custosd)
#   CA_DIR         the CA's directory, on the CA machine (/root/custos-ca)
#   CA_PASSPHRASE_FILE  the CA key's passphrase file; unset: asked on the terminal
#   NODE_ID REGION NODE_HOST API_PORT RAFT_PORT HEALTH_PORT  this node (node-1 FR … 8201 8301 8401)
#   ETC DATA       this node's config and data dirs      (/etc/custos, /var/lib/custos)
#   JOIN           API URL of the first node, for the others; unset on the first
#   REGIONS        the cluster's regions, TOML list      ("FR", "DE", "NL")
#   HSM_MODULE     PKCS#11 library                       (/usr/lib/softhsm/libsofthsm2.so)
#   RUN_AS         the user custosd runs as (custos, as deploy/systemd makes it); empty: this user
#   ADMIN          the operator's and officers' workstation directory (~/custos)
#   ADDRS          every node's API URL, comma-separated, for the clients
#   OFFICER        alice | bob | carol, in steps 9 and 12
#   OFFICER_PASSPHRASE_FILE  for automation; unset: asked on the terminal
set -eu

: "${CLUSTER:=prod}" "${CUSTOS:=custos}" "${CUSTOSD:=custosd}" "${CA_DIR:=/root/custos-ca}"
: "${NODE_ID:=node-1}" "${REGION:=FR}" "${NODE_HOST:=127.0.0.1}" "${API_PORT:=8201}" "${RAFT_PORT:=8301}" "${HEALTH_PORT:=8401}"
: "${ETC:=/etc/custos}" "${DATA:=/var/lib/custos}" "${REGIONS:=\"FR\", \"DE\", \"NL\"}"
: "${RUN_AS=custos}" "${HSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}" "${ADMIN:=$HOME/custos}" "${OFFICER:=alice}"
: "${ADDRS:=https://$NODE_HOST:$API_PORT}"
# as_node runs a command as the user custosd runs as, so that what it makes on the token is theirs.
as_node() { if [ -n "$RUN_AS" ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi; }

# Step 1 (CA machine, offline): the cluster CA.
step_1_ca() {
	$CUSTOS pki ca init --cluster "$CLUSTER" --out "$CA_DIR" ${CA_PASSPHRASE_FILE:+--passphrase-file "$CA_PASSPHRASE_FILE"}
}

# Step 2 (each node): the node's HSM token (SoftHSM here), and its PIN file.
step_2_token() {
	mkdir -p "$ETC" "$DATA/softhsm" && chmod 0700 "$DATA" "$DATA/softhsm"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$DATA/softhsm" > "$ETC/softhsm2.conf"
	(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$ETC/hsm.pin")
	SOFTHSM2_CONF="$ETC/softhsm2.conf" softhsm2-util --init-token --free --label "$NODE_ID" \
		--so-pin "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" --pin "$(cat "$ETC/hsm.pin")"
	if [ -n "$RUN_AS" ]; then chown -R "$RUN_AS:" "$DATA" "$ETC/hsm.pin"; fi
	chmod 0400 "$ETC/hsm.pin"
}

# Step 3 (each node): the node's configuration.
step_3_config() {
	if [ -z "${JOIN:-}" ]; then first="bootstrap = true"; else first="join = [\"$JOIN\"]"; fi
	cat > "$ETC/custosd.toml" <<TOML
node_id = "$NODE_ID"
region = "$REGION"
cluster = "$CLUSTER"
data_dir = "$DATA"
allowed_regions = [$REGIONS]
$first

[api]
listen = "$NODE_HOST:$API_PORT"
[raft]
listen = "$NODE_HOST:$RAFT_PORT"
[health]
addr = "$NODE_HOST:$HEALTH_PORT"
[hsm]
module = "$HSM_MODULE"
token_label = "$NODE_ID"
pin_file = "$ETC/hsm.pin"
softhsm_conf = "$ETC/softhsm2.conf"
[tls]
cert = "$ETC/node.pem"
ca = "$ETC/ca.pem"
[log]
format = "json"
TOML
}

# Step 4 (each node): the node's TLS key, made in its HSM, and its request.
step_4_csr() {
	as_node $CUSTOSD -config "$ETC/custosd.toml" -csr > "$ETC/$NODE_ID.csr"
}

# Step 5 (CA machine): sign the request; copy node.pem and ca.pem to the node's $ETC.
step_5_sign() {
	$CUSTOS pki inspect "$CA_DIR/ca.pem"
	$CUSTOS pki issue node --csr "$ETC/$NODE_ID.csr" --ca "$CA_DIR" --out "$ETC/node.pem" ${CA_PASSPHRASE_FILE:+--passphrase-file "$CA_PASSPHRASE_FILE"}
	cp "$CA_DIR/ca.pem" "$ETC/ca.pem"
	$CUSTOS pki inspect "$ETC/node.pem" --ca "$ETC/ca.pem"
}

# Step 6 (each node, the first one first): start custosd; under systemd,
# deploy/systemd/custosd.service runs this command as $RUN_AS.
step_6_start() {
	if [ -n "$RUN_AS" ]; then exec runuser -u "$RUN_AS" -- $CUSTOSD -config "$ETC/custosd.toml"; fi
	exec $CUSTOSD -config "$ETC/custosd.toml"
}

# Step 7 (CA machine): client certificates: the operator, each officer, an agent.
step_7_clients() {
	$CUSTOS pki issue client --role operator --name ops --region FR --ca "$CA_DIR" --out "$ADMIN" ${CA_PASSPHRASE_FILE:+--passphrase-file "$CA_PASSPHRASE_FILE"}
	for o in alice bob carol; do
		$CUSTOS pki issue client --role officer --name "$o" --region FR --ca "$CA_DIR" --out "$ADMIN" ${CA_PASSPHRASE_FILE:+--passphrase-file "$CA_PASSPHRASE_FILE"}
	done
	$CUSTOS pki issue client --role agent --name payroll --region FR --ca "$CA_DIR" --out "$ADMIN" ${CA_PASSPHRASE_FILE:+--passphrase-file "$CA_PASSPHRASE_FILE"}
	cp "$CA_DIR/ca.pem" "$ADMIN/ca.pem"
}

# Step 8 (workstation): env files that point the CLI at the cluster.
step_8_env() {
	for who in operator-ops agent-payroll officer-alice officer-bob officer-carol; do
		cat > "$ADMIN/$who.env" <<ENV
export CUSTOS_ADDR="$ADDRS"
export CUSTOS_CA="$ADMIN/ca.pem"
export CUSTOS_CLIENT_CERT="$ADMIN/$who.pem"
export CUSTOS_CLIENT_KEY="$ADMIN/$who.key"
ENV
	done
	$CUSTOS status --env "$ADMIN/operator-ops.env"
}

# Step 9 (each officer's own machine): the officer's key.
step_9_officer_keygen() {
	mkdir -p "$ADMIN/officers"
	$CUSTOS officer keygen --out "$ADMIN/officers" --name "$OFFICER" ${OFFICER_PASSPHRASE_FILE:+--passphrase-file "$OFFICER_PASSPHRASE_FILE"}
	echo "export CUSTOS_OFFICER_KEY=\"$ADMIN/officers/$OFFICER.key\"" >> "$ADMIN/officer-$OFFICER.env"
}

# Step 10 (workstation, once all three nodes are members): name the officers.
step_10_init() {
	$CUSTOS status --env "$ADMIN/operator-ops.env"
	$CUSTOS operator init --officers "$ADMIN/officers/alice.pub,$ADMIN/officers/bob.pub,$ADMIN/officers/carol.pub" \
		--quorum 2 --env "$ADMIN/operator-ops.env"
}

# Step 11 (alice): propose the first KEK.
step_11_propose() {
	$CUSTOS officer propose kek.create --kek first --context app --env "$ADMIN/officer-alice.env" ${OFFICER_PASSPHRASE_FILE:+--passphrase-file "$OFFICER_PASSPHRASE_FILE"} --format json > "$ADMIN/proposal.json"
}

# Step 12 (bob): review and approve it; the KEK is created.
step_12_approve() {
	id=$(jq -er .id "$ADMIN/proposal.json")
	$CUSTOS officer show "$id" --env "$ADMIN/officer-bob.env"
	$CUSTOS officer approve "$id" --env "$ADMIN/officer-bob.env" ${OFFICER_PASSPHRASE_FILE:+--passphrase-file "$OFFICER_PASSPHRASE_FILE"}
	$CUSTOS kek show first --env "$ADMIN/officer-bob.env"
}

# Step 13 (the agent's machine): the first wrap, and its unwrap.
step_13_wrap() {
	head -c 32 /dev/urandom > "$ADMIN/dek"
	$CUSTOS wrap --kek first --context app=payroll --in "$ADMIN/dek" --out "$ADMIN/dek.wrapped" --env "$ADMIN/agent-payroll.env"
	$CUSTOS unwrap --context app=payroll --in "$ADMIN/dek.wrapped" --out "$ADMIN/dek.back" --env "$ADMIN/agent-payroll.env"
	cmp "$ADMIN/dek" "$ADMIN/dek.back"
}

step="${1:-}"
fn=$(grep -o "^step_${step}_[a-z_]*" "$0" | head -n 1)
if [ -z "$step" ] || [ -z "$fn" ]; then
	echo "usage: runbook.sh STEP (1-13)" >&2
	exit 2
fi
"$fn"
