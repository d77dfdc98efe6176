#!/usr/bin/env bash
# Installs, idempotently, what vws's tests and demo need on a Debian 12 machine:
# the outside SOAP clients used for interoperability tests and the XML tools,
# libvirt + QEMU (started by hand: there is no systemd), and the test guest
# image (test/guest/build.sh, cached in .cache/guest). A second run is quiet.
set -euo pipefail

packages=(
	python3-zeep      # WSRF 1.2 / GT4 client built from the live ?wsdl
	libaxis-java      # Apache Axis 1.4, what GT 4.0 clients were built on
	default-jdk-headless
	libxml2-utils     # xmllint --schema
	xmlsec1
	python3-xmlsec    # zeep signs WS-Security requests with it (interop tests)
	ca-certificates
	curl
	bc                # make demo timings
	qemu-utils        # qemu-img: copy-on-write workspace overlays
	libxml2-dev       # cgo: XML Schema validation of workspace descriptions
	pkg-config
	# libvirt + QEMU for the real-guest tests (domain type qemu: TCG)
	libvirt-daemon-system
	libvirt-dev       # cgo: libvirt.org/go/libvirt
	libvirt-clients   # virsh
	qemu-system-x86
	dnsmasq-base
	# the test guest image (test/guest/build.sh) and cidata ISOs
	busybox-static
	cpio
	xorriso
	e2fsprogs
	kmod
	# the tests of `vws serve --database` (VWS_TEST_POSTGRES in the Makefile)
	postgresql
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# An earlier run killed inside dpkg leaves packages unpacked but not configured,
	# and apt-get then refuses everything ("dpkg was interrupted"): finish that first.
	dpkg --configure -a
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- libvirt: QEMU runs as root, without cgroups or namespaces -------------
qemu_conf=/etc/libvirt/qemu.conf
conf_changed=0
set_qemu_conf() { # key value: make "key = value" the one active setting
	local key=$1 value=$2
	if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$qemu_conf" 2>/dev/null; then
		# Already set: fine when every active line has our value.
		if ! grep -E "^[[:space:]]*${key}[[:space:]]*=" "$qemu_conf" |
			grep -qvxF "${key} = ${value}"; then
			return 0
		fi
		need_root "set ${key} in $qemu_conf"
		sed -i -E "/^[[:space:]]*${key}[[:space:]]*=/d" "$qemu_conf"
	else
		need_root "set ${key} in $qemu_conf"
	fi
	echo "${key} = ${value}" >>"$qemu_conf"
	echo "setup: $qemu_conf: ${key} = ${value}"
	conf_changed=1
}
need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to $*" >&2
		exit 1
	fi
}
set_qemu_conf user '"root"'
set_qemu_conf group '"root"'
set_qemu_conf dynamic_ownership 0
set_qemu_conf namespaces '[ ]'
set_qemu_conf cgroup_controllers '[ ]'

# --- libvirt daemons (no systemd) ------------------------------------------
running() { pgrep -x "$1" >/dev/null; }
if ! running virtlogd || ! running libvirtd || ((conf_changed)); then
	need_root "start libvirt's daemons"
	mkdir -p /var/log/libvirt /run/libvirt
fi
if ! running virtlogd; then
	echo "setup: starting virtlogd"
	virtlogd -d
fi
if running libvirtd && ((conf_changed)); then
	echo "setup: restarting libvirtd ($qemu_conf changed)"
	pid=$(cat /run/libvirtd.pid 2>/dev/null || pgrep -x libvirtd | head -n1)
	kill "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "setup: libvirtd (pid $pid) did not stop" >&2
		exit 1
	fi
fi
if ! running libvirtd; then
	echo "setup: starting libvirtd"
	libvirtd -d
fi
ok=0
for _ in $(seq 60); do # 30 s
	if virsh -c qemu:///system version >/dev/null 2>&1; then
		ok=1
		break
	fi
	sleep 0.5
done
if ((!ok)); then
	echo "setup: libvirt does not answer after 30 s: virsh -c qemu:///system version says:" >&2
	virsh -c qemu:///system version >&2 || true
	echo "setup: see /var/log/libvirt/ (libvirtd -d was started by this script)" >&2
	exit 1
fi

# --- PostgreSQL (no systemd): the cluster Debian's package made, and a role for
# the user running the tests (peer authentication over the Unix socket) ---------
read -r pg_version pg_cluster _ pg_status _ < <(pg_lsclusters -h | head -n1) || true
if [ -z "${pg_version:-}" ]; then
	need_root "create a PostgreSQL cluster"
	pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
	echo "setup: creating PostgreSQL cluster ${pg_version}/main"
	pg_createcluster "$pg_version" main >/dev/null
	pg_cluster=main pg_status=down
fi
if [ "$pg_status" != online ]; then
	need_root "start PostgreSQL"
	echo "setup: starting PostgreSQL ${pg_version}/${pg_cluster}"
	pg_ctlcluster "$pg_version" "$pg_cluster" start
fi
me=$(id -un)
if ! su postgres -c "psql -XtAc \"SELECT 1 FROM pg_roles WHERE rolname = '$me'\"" | grep -q 1; then
	echo "setup: creating PostgreSQL role $me (creates the tests' throwaway databases)"
	su postgres -c "createuser --superuser '$me'"
fi

# --- the test guest image (cached) -----------------------------------------
bash "$(dirname "${BASH_SOURCE[0]}")/guest/build.sh"
echo "setup: ok"
