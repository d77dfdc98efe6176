#!/usr/bin/env bash
# `make demo`: start vws (all roles, embedded storage) and walk through what this
# release offers with the CLI, printing each step with its time; then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh >/dev/null

VWS=${VWS:-bin/vws}
port=${VWS_DEMO_PORT:-18080}
data=$(mktemp -d /tmp/vws-demo.XXXXXX)
export VWS_URL="http://127.0.0.1:$port"
log="$data/serve.log"

cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
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

"$VWS" serve --insecure --listen "127.0.0.1:$port" --data "$data/db" >"$log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -fsS "$VWS_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$VWS_URL/healthz" >/dev/null || { cat "$log"; exit 1; }

factory="$VWS_URL/wsrf/services/WorkspaceFactoryService"
step "What the Factory offers (WSRF 1.2 dialect)" \
	"$VWS" wsrf get-properties -s "$factory" fac:VMMTypes fac:Architectures fac:DefaultLifetime fac:MaximumLifetime
step "The same through an XPath query in the GT 4.0 dialect" \
	"$VWS" wsrf query --dialect gt4 -s "$factory" 'count(/*/fac:VMMTypes)'
step "The host this Manager runs on" \
	"$VWS" wsrf get-properties -s "$VWS_URL/wsrf/services/WorkspaceManagerService" mgr:CPUs mgr:MemoryTotal mgr:MemoryFree
step "A workspace key that does not exist: a typed fault, exit status 2" \
	bash -c "\"$VWS\" wsrf get-property -k '{http://vws.dev/ns/2026/workspace}WorkspaceKey' no-such-workspace vw:state; echo \"exit status \$?\""
head -c 64M /dev/zero > "$data/demo.raw"
step "Import a base image into the pool (hashed while it streams in)" \
	"$VWS" image import "$data/demo.raw" --name demo-base --os linux/debian/12 --arch x86_64
step "The pool" \
	"$VWS" image list
step "Create a workspace from the image (copy-on-write overlay, EPR saved)" \
	"$VWS" create --image demo-base --memory 256 --name demo --lifetime 2h -o "$data/demo.epr"
step "Its resource properties" \
	"$VWS" wsrf get-properties -e "$data/demo.epr" vw:name vw:state vw:deployment
step "Clone it: both continue on fresh overlays above one frozen layer" \
	"$VWS" clone "$data/demo.epr" --name demo-copy -o "$data/copy.epr"
step "All workspaces" \
	"$VWS" list
step "Destroy the clone" \
	"$VWS" destroy "$data/copy.epr"
step "Removing an image a workspace uses is refused" \
	bash -c "\"$VWS\" image remove demo-base; echo \"exit status \$?\""
step "Destroy the workspace" \
	"$VWS" destroy "$data/demo.epr"
step "The contract, for client generators" \
	bash -c "curl -fsS -o '$data/factory.wsdl' '$factory?wsdl' && head -c 400 '$data/factory.wsdl'; echo …"
step "Prometheus metrics" \
	bash -c "curl -fsS '$VWS_URL/metrics' | grep '^vws_soap_requests_total'"
echo
echo "demo done; stopping vws"
