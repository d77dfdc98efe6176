#!/usr/bin/env bash
# Installs, idempotently, what vws's tests and demo need on a Debian 12 machine:
# the outside SOAP clients used for interoperability tests and the XML tools.
set -euo pipefail

packages=(
	python3-zeep      # WSRF 1.2 / GT4 client built from the live ?wsdl
	libaxis-java      # Apache Axis 1.4, what GT 4.0 clients were built on
	default-jdk-headless
	libxml2-utils     # xmllint --schema
	xmlsec1
	ca-certificates
	curl
	bc                # make demo timings
	qemu-utils        # qemu-img: copy-on-write workspace overlays
	libxml2-dev       # cgo: XML Schema validation of workspace descriptions
	pkg-config
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
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup: ok"
