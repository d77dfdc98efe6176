#!/usr/bin/env bash
# `make demo`: make a test grid CA with `vws pki`, start vws (all roles, embedded
# storage) over mutual TLS under a rules file, and walk through what this release
# offers with the CLI as a grid user with a proxy certificate, printing each step
# with its time; then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh | tail -1

VWS=${VWS:-bin/vws}
port=${VWS_DEMO_PORT:-18080}
data=$(mktemp -d /tmp/vws-demo.XXXXXX)
export VWS_URL="https://127.0.0.1:$port"
log="$data/serve.log"

cleanup() {
	# The background subscriber ends with the workspace; if the demo stopped first,
	# it would retry its renewals forever.
	if [ -s "$data/subscriber.pid" ]; then
		kill "$(cat "$data/subscriber.pid")" 2>/dev/null || true
	fi
	[ -n "${pid2:-}" ] && kill "$pid2" 2>/dev/null && wait "$pid2" 2>/dev/null || true
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	# The Manager leaves domains running across its own restarts; the demo's must go.
	for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep '^vws-' || true); do
		if [ -d "$data/db/manager/workspaces/${d#vws-}" ] || [ -d "$data/node2/manager/workspaces/${d#vws-}" ]; then
			virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
			virsh -c qemu:///system undefine "$d" >/dev/null 2>&1 || true
		fi
	done
	rm -rf "$data"
}
trap cleanup EXIT

step() {
	local title=$1; shift
	printf '\n== %s\n$ %s\n' "$title" "$*"
	local t0=$(date +%s.%N)
	"$@"
	printf -- '-- %.0f ms\n' "$(echo "($(date +%s.%N) - $t0) * 1000" | bc)"
}

# A grid site in miniature: a CA (its directory in the /etc/grid-security/certificates
# layout, with a CRL), this host's certificate, two users, and a proxy for the first.
ca="$data/certificates"
step "Make a test CA, a host certificate and two user certificates (vws pki)" \
	bash -c "\"$VWS\" pki ca --dir '$ca' >/dev/null && \"$VWS\" pki host --ca-dir '$ca' --name 127.0.0.1 --out '$data/host' >/dev/null &&
		\"$VWS\" pki user --ca-dir '$ca' --cn 'Demo User' --vo-attribute /demo/Role=user --out '$data/user' >/dev/null &&
		\"$VWS\" pki user --ca-dir '$ca' --cn 'Other User' --out '$data/other' >/dev/null && ls '$ca'"
step "Make a proxy for the demo user, as grid-proxy-init would" \
	"$VWS" --cert "$data/user-cert.pem" --key "$data/user-key.pem" pki proxy --hours 2 --out "$data/proxy"
export X509_USER_PROXY="$data/proxy" X509_CERT_DIR="$ca"
cat >"$data/rules" <<RULES
allow host  /O=Grid/OU=vws/CN=host/127.0.0.1   # this host's Factory and Manager
allow admin /O=Grid/OU=vws/CN=Demo User        # may import images
deny  admin *
allow *     *                                  # every other authenticated user
quota *     workspaces=5 running=2 memory=2GiB lifetime=1d
require-signature WorkspaceRepositoryService ListWorkspaces
RULES

"$VWS" serve --listen "127.0.0.1:$port" --data "$data/db" --cert "$data/host-cert.pem" --key "$data/host-key.pem" \
	--ca "$ca" --policy "$data/rules" >"$log" 2>&1 &
pid=$!
curlv() { curl -fsS --capath "$ca" --cert "$data/user-cert.pem" --key "$data/user-key.pem" "$@"; }
for _ in $(seq 50); do curlv "$VWS_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curlv "$VWS_URL/healthz" >/dev/null || { cat "$log"; exit 1; }
step "Without a certificate the TLS handshake refuses us" \
	bash -c "curl -sS --capath '$ca' '$VWS_URL/healthz' 2>&1 | head -1 || true"

factory="$VWS_URL/wsrf/services/WorkspaceFactoryService"
step "What the Factory offers (WSRF 1.2 dialect)" \
	"$VWS" wsrf get-properties -s "$factory" fac:VMMTypes fac:Architectures fac:DefaultLifetime fac:MaximumLifetime
step "Who we are to the server: the proxy's end-entity DN" \
	bash -c "openssl x509 -in '$data/proxy' -noout -subject"
step "The same through an XPath query in the GT 4.0 dialect" \
	"$VWS" wsrf query --dialect gt4 -s "$factory" 'count(/*/fac:VMMTypes)'
step "The host this Manager runs on" \
	"$VWS" wsrf get-properties -s "$VWS_URL/wsrf/services/WorkspaceManagerService" mgr:CPUs mgr:MemoryTotal mgr:MemoryFree
step "A workspace key that does not exist: a typed fault, exit status 2" \
	bash -c "\"$VWS\" wsrf get-property -k '{http://vws.dev/ns/2026/workspace}WorkspaceKey' no-such-workspace vw:state; echo \"exit status \$?\""
guest=${VWS_GUEST_DIR:-.cache/guest}
step "Import the guest's root disk, kernel and initrd into the pool (hashed while they stream in)" \
	bash -c "\"$VWS\" image import $guest/disk.qcow2 --name guest-disk --os linux/busybox/1 --arch x86_64 &&
		\"$VWS\" image import $guest/vmlinuz --name guest-kernel && \"$VWS\" image import $guest/initrd.img --name guest-initrd"
step "The pool" \
	"$VWS" image list
step "Create a workspace whose startup program prints a greeting and then a tick a second" \
	"$VWS" create -f test/testdata/manager/ticker.xml --name demo --lifetime 2h -o "$data/demo.epr"
step "Its resource properties: the owner is the demo user" \
	"$VWS" wsrf get-properties -e "$data/demo.epr" vw:name vw:owner vw:state vw:deployment
step "Follow its changes as a GT 4.0 client would: subscribe to its state, deployment and end; the host signs each notification (in the background)" \
	bash -c "(\"$VWS\" wsrf subscribe -e '$data/demo.epr' --dialect gt4 >'$data/notifications' 2>'$data/subscribe.err' & echo \$! >'$data/subscriber.pid');
		for i in \$(seq 100); do grep -q listening '$data/subscribe.err' 2>/dev/null && break; sleep 0.1; done; cat '$data/subscribe.err'"
step "Another user may not touch it: WorkspaceAuthorizationFault (exit status 2)" \
	bash -c "X509_USER_PROXY= \"$VWS\" --cert '$data/other-cert.pem' --key '$data/other-key.pem' destroy '$data/demo.epr'; echo \"exit status \$?\""
step "Listing workspaces needs a signed request here: unsigned is refused, --sign passes" \
	bash -c "\"$VWS\" list 2>&1 | cut -c1-160; \"$VWS\" --sign list"
step "The hosts the Repository places workspaces on (each Manager announces itself)" \
	"$VWS" host list
step "Deploy it where the Repository places it (this host's Manager): check out, stage images by digest, define the domain" \
	"$VWS" deploy "$data/demo.epr"
step "The Repository knows where it is" \
	"$VWS" wsrf get-properties -e "$data/demo.epr" vw:state vw:deployment vw:host
step "Start it (a real QEMU guest: Debian's kernel and a busybox userland)" \
	"$VWS" start "$data/demo.epr"
step "Wait for the job's output on the serial console" \
	bash -c "for i in \$(seq 180); do \"$VWS\" console '$data/demo.epr' 2>/dev/null | grep -q 'tick 1' && break; sleep 0.5; done; out=\$(\"$VWS\" console '$data/demo.epr'); echo \"\$out\" | grep -E 'vws|hello|tick'; echo \"\$out\" | grep -q 'tick 1' || { echo 'demo: no tick on the console within 90 s' >&2; exit 1; }"
step "Pause it: the console stops advancing" \
	bash -c "\"$VWS\" pause '$data/demo.epr' && a=\$(\"$VWS\" console '$data/demo.epr' | grep -c tick) && sleep 2 && b=\$(\"$VWS\" console '$data/demo.epr' | grep -c tick) && echo \"ticks before: \$a, two seconds later: \$b\" && [ \"\$a\" = \"\$b\" ]"
step "Unpause it: the job goes on" \
	bash -c "\"$VWS\" unpause '$data/demo.epr' && sleep 2 && \"$VWS\" console --tail 40 '$data/demo.epr'"
# A second host in miniature: a manager-only vws on another port, with its own data
# directory and image cache, serving the same Repository (the same host certificate:
# both run on 127.0.0.1). It announces itself to the Repository at start.
"$VWS" serve --role manager --repository "$VWS_URL" --host-name node2 --listen "127.0.0.1:$((port + 1))" --data "$data/node2" \
	--cert "$data/host-cert.pem" --key "$data/host-key.pem" --ca "$ca" --policy "$data/rules" >"$data/node2.log" 2>&1 &
pid2=$!
step "A second host's Manager starts and announces itself (vws serve --role manager --repository URL)" \
	bash -c "for i in \$(seq 100); do \"$VWS\" host list | grep -q '^node2 ' && break; sleep 0.2; done; \"$VWS\" host list"
step "Where could it move? Every host but its own, ranked (vws place --move)" \
	"$VWS" place "$data/demo.epr" --move
step "Move it, running, to the other host: serialize, undeploy, deploy there and restore, in one command" \
	bash -c "\"$VWS\" move '$data/demo.epr' && sleep 2 && \"$VWS\" console --tail 40 '$data/demo.epr'"
step "The Repository knows where it went" \
	"$VWS" wsrf get-properties -e "$data/demo.epr" vw:state vw:deployment vw:host
step "Serialize it: its RAM is saved to a memory image (a hot image)" \
	"$VWS" shutdown "$data/demo.epr" --mode serialize
step "Undeploy it: the changed overlay and the memory image go back to the Repository" \
	"$VWS" undeploy "$data/demo.epr"
step "In the Repository, paused, with its memory image" \
	"$VWS" wsrf get-properties -e "$data/demo.epr" vw:state vw:deployment vw:imageDigest
step "Deploy it again from the hot image on the first host, running: the guest continues where it stopped" \
	bash -c "\"$VWS\" deploy '$data/demo.epr' --host '$VWS_URL' --state running && sleep 2 && \"$VWS\" console --tail 40 '$data/demo.epr'"
step "The host: hypervisor, capacity, what runs, what is cached" \
	"$VWS" host status
step "An operation in the wrong state is a typed fault naming both states (exit status 2)" \
	bash -c "\"$VWS\" start '$data/demo.epr'; echo \"exit status \$?\""
step "Shut it down (ACPI power button, then forced after the grace period)" \
	"$VWS" shutdown "$data/demo.epr" --grace 20s
step "Undeploy and destroy it" \
	bash -c "\"$VWS\" undeploy '$data/demo.epr' && \"$VWS\" destroy '$data/demo.epr'"
step "What the subscriber was told, in order (WS-BaseNotification; it ended with the workspace)" \
	bash -c "for i in \$(seq 100); do kill -0 \$(cat '$data/subscriber.pid') 2>/dev/null || break; sleep 0.1; done; cat '$data/notifications'"
step "Prometheus metrics of the Manager's operations, of its staging (pool: linked from this server's own image pool) and of notifications" \
	bash -c "curl -fsS --capath '$ca' --cert '$data/user-cert.pem' --key '$data/user-key.pem' '$VWS_URL/metrics' | grep -E '^vws_soap_requests_total.*WorkspaceManagerService|^vws_manager_|^vws_notifications_|^vws_subscriptions'"
step "The audit trail: every decision, hash-chained; the other user's denial" \
	bash -c "\"$VWS\" audit --data '$data/db' --decision denied && \"$VWS\" audit --data '$data/db' --verify"
echo
echo "demo done; stopping vws"
