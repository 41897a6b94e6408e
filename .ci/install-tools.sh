#!/usr/bin/env bash
# Installs the developer and CI tools that ICE's tests and lint target use
# and that the machine image does not ship:
#
#   promtool     Debian package "prometheus"; internal/telemetry's tests run
#                `promtool check metrics` on the /metrics output and fail
#                without it when CI=true.
#   staticcheck  honnef.co/go/tools, built with the local Go toolchain
#                (`make lint`).
#   chromium     Debian package "chromium" (with fonts-liberation, which its
#                recommends would bring); e2e's browser tests of the web UI
#                (TestUI) drive it headless through chromedp and fail
#                without it.
#
# Idempotent: a tool that is already present (staticcheck: at the pinned
# version) is left alone, and apt-get update runs at most once, only when a
# package has to be installed. Prints what it installed.
set -euo pipefail

# Staticcheck releases are tied to the Go versions they can analyse; v0.8.2
# (the module proxy's latest) builds with and understands Go 1.26.
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

installed=()
apt_updated=0

apt_install() {
	if [ "$apt_updated" -eq 0 ]; then
		echo "install-tools: apt-get update"
		$SUDO apt-get update -qq
		apt_updated=1
	fi
	echo "install-tools: apt-get install $*"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# promtool ------------------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
	echo "install-tools: promtool present: $(command -v promtool) ($(promtool --version 2>&1 | head -n1))"
else
	apt_install prometheus
	if ! command -v promtool >/dev/null 2>&1; then
		echo "install-tools: apt-get installed prometheus but promtool is not on PATH" >&2
		exit 1
	fi
	installed+=("promtool ($(promtool --version 2>&1 | head -n1))")
fi

# iptables ------------------------------------------------------------------
# The fault test (make jepsen) makes real network partitions with iptables.
if command -v iptables >/dev/null 2>&1; then
	echo "install-tools: iptables present: $(command -v iptables)"
else
	apt_install iptables
	installed+=("iptables")
fi

# systemd-analyze -----------------------------------------------------------
# deploy/systemd's test verifies the unit files with `systemd-analyze verify`.
if command -v systemd-analyze >/dev/null 2>&1; then
	echo "install-tools: systemd-analyze present: $(command -v systemd-analyze)"
else
	apt_install systemd
	installed+=("systemd-analyze")
fi

# chromium ------------------------------------------------------------------
# e2e/ui_test.go drives the web UI in Debian's chromium, headless (found on
# PATH as chromium, or $ICE_CHROMIUM). fonts-liberation gives its pages and
# the docs/ui screenshots real text with --no-install-recommends.
if command -v chromium >/dev/null 2>&1; then
	echo "install-tools: chromium present: $(command -v chromium) ($(chromium --version 2>/dev/null | head -n1))"
else
	apt_install chromium fonts-liberation
	if ! command -v chromium >/dev/null 2>&1; then
		echo "install-tools: apt-get installed chromium but chromium is not on PATH" >&2
		exit 1
	fi
	installed+=("chromium ($(chromium --version 2>/dev/null | head -n1))")
fi

# staticcheck ---------------------------------------------------------------
gobin="$(go env GOBIN)"
if [ -z "$gobin" ]; then
	gobin="$(go env GOPATH)/bin"
fi
staticcheck_bin=""
if command -v staticcheck >/dev/null 2>&1; then
	staticcheck_bin="$(command -v staticcheck)"
elif [ -x "$gobin/staticcheck" ]; then
	staticcheck_bin="$gobin/staticcheck"
fi

# `staticcheck -version` prints e.g. "staticcheck 2026.2.2 (0.8.2)".
if [ -n "$staticcheck_bin" ] && "$staticcheck_bin" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
	echo "install-tools: staticcheck present: $staticcheck_bin ($("$staticcheck_bin" -version))"
else
	echo "install-tools: go install honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	installed+=("staticcheck $("$gobin/staticcheck" -version) in $gobin")
fi

case ":$PATH:" in
*":$gobin:"*) ;;
*) echo "install-tools: note: $gobin is not on PATH; add it to run staticcheck" ;;
esac

if [ "${#installed[@]}" -eq 0 ]; then
	echo "install-tools: nothing to install"
else
	for t in "${installed[@]}"; do
		echo "install-tools: installed $t"
	done
fi
