#!/usr/bin/env bash
# Build the real Kubernetes and etcd binaries from the Go module proxy into a
# per-version cache outside the repository, for kubeboot's integration tests.
#
# Usage: test/k8sbin/build.sh [all|k8s|etcd|path]
#   all  (default) build both; print the etcd bin dir, then the Kubernetes
#        bin dir as the LAST line:  BIN=$(test/k8sbin/build.sh | tail -1)
#   k8s  build only Kubernetes; print its bin dir
#   etcd build only etcd (+ etcdctl); print its bin dir
#   path build both; print "K8SBIN:ETCDBIN" as the last line, for PATH
#
# Environment:
#   KUBEBOOT_CACHE  cache root (default $HOME/.cache/kubeboot)
#   K8S_VERSION     default: the version pinned in kubernetes/go.mod (v1.37.2)
#   ETCD_VERSION    default: the version pinned in etcd/go.mod (v3.7.3)
#   K8SBIN_GO_P     go build -p (default 1: one compile at a time, low memory)
#
# Only paths go to stdout; all progress goes to stderr. A version other than
# the pinned one gets a wrapper module generated (and tidied) in the cache.
set -euo pipefail

RECIPE=1 # bump to force a rebuild of every cached binary (also when the lists below change)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KUBEBOOT_CACHE:-$HOME/.cache/kubeboot}
mode=${1:-all}

pinned() { # pinned version of module $2 in wrapper go.mod $1
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}
k8s_pinned=$(pinned "$here/kubernetes/go.mod" k8s.io/kubernetes)
etcd_pinned=$(pinned "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)
K8S_VERSION=${K8S_VERSION:-$k8s_pinned}
ETCD_VERSION=${ETCD_VERSION:-$etcd_pinned}
for v in "$K8S_VERSION" "$ETCD_VERSION"; do
	[[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || { echo "k8sbin: bad version '$v'" >&2; exit 2; }
done

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl)
etcd_bins=(etcd etcdctl)

k8s_ldflags() {
	local v=$1 major minor rest x=""
	major=${v#v}; major=${major%%.*}
	rest=${v#v*.}; minor=${rest%%.*}
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		x+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	echo "-s -w$x"
}
etcd_ldflags() { echo "-s -w"; }

# What a cached build depends on; the stamp must equal this to count as fresh.
stamp_key() { # target version pinned-version moddir
	local target=$1 v=$2 pin=$3 dir=$4 mods=generated ldf
	if [[ $v == "$pin" ]]; then mods=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1); fi
	if [[ $target == k8s ]]; then ldf=$(k8s_ldflags "$v"); else ldf=$(etcd_ldflags); fi
	printf 'recipe=%s\ntarget=%s\nversion=%s\nmodules=%s\narch=%s\ncgo=0 trimpath\nldflags=%s' \
		"$RECIPE" "$target" "$v" "$mods" "$(uname -m)" "$ldf"
}

# The stamp is the key plus a last line "bins=..." naming what was built;
# fresh when the key matches and every binary named there is in place.
fresh() { # vdir key
	local vdir=$1 key=$2 stamp b
	[[ -f $vdir/stamp ]] || return 1
	stamp=$(<"$vdir/stamp")
	[[ ${stamp%$'\n'bins=*} == "$key" && $stamp == *$'\n'bins=* ]] || return 1
	for b in ${stamp##*$'\n'bins=}; do [[ -x $vdir/bin/$b ]] || return 1; done
}

log() { echo "k8sbin: $*" >&2; }

# Environment for every go command: isolated from the caller's settings
# (host GOOS/GOARCH only; no caller GOFLAGS such as -mod=vendor; no go.work).
goenv() {
	env -u GOOS -u GOARCH -u GOFLAGS "$@"
}
export GOWORK=off CGO_ENABLED=0

# Write a wrapper module for a non-pinned Kubernetes version into $1.
gen_k8s_module() {
	local dir=$1 v=$2 gomod staging
	log "generating wrapper module for k8s.io/kubernetes $v"
	gomod=$(cd "$dir" && goenv go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[[ -f $gomod ]] || { log "cannot download k8s.io/kubernetes@$v"; return 1; }
	staging="v0.${v#v1.}"
	{
		echo "module kubeboot-k8sbin-kubernetes"
		echo
		grep -E '^(go|godebug) ' "$gomod"
		echo
		echo "require k8s.io/kubernetes $v"
		echo
		echo "replace ("
		sed -n '/^replace (/,/^)/p' "$gomod" | awk '$2 == "=>" && $3 ~ /^\.\/staging/ { print $1 }' |
			grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' |
			while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
		echo ")"
	} >"$dir/go.mod"
	cp "$here/kubernetes/tools.go" "$dir/"
	(cd "$dir" && goenv go mod tidy)
}

# Write a wrapper module for a non-pinned etcd version into $1; etcdctl is
# dropped (with a warning) if it does not resolve at that version.
gen_etcd_module() {
	local dir=$1 v=$2
	log "generating wrapper module for etcd $v"
	printf 'module kubeboot-k8sbin-etcd\n\ngo 1.26.0\n\nrequire (\n\tgo.etcd.io/etcd/server/v3 %s\n\tgo.etcd.io/etcd/etcdctl/v3 %s\n)\n' "$v" "$v" >"$dir/go.mod"
	cp "$here/etcd/tools.go" "$dir/"
	if ! (cd "$dir" && goenv go mod tidy); then
		log "etcdctl $v does not resolve; building etcd only"
		printf 'module kubeboot-k8sbin-etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >"$dir/go.mod"
		printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$dir/tools.go"
		(cd "$dir" && goenv go mod tidy)
		etcd_bins=(etcd)
	fi
}

check_version() { # binary target version
	local bin=$1 target=$2 v=$3 name out
	name=$(basename "$bin")
	case $name in
	kubeadm) out=$("$bin" version -o short) ;;
	kubectl) out=$("$bin" version --client 2>&1) ;;
	etcdctl) out=$("$bin" version) ;;
	*) out=$("$bin" --version 2>&1) ;;
	esac
	[[ $target == etcd ]] && v=${v#v}
	if [[ $out != *"$v"* ]]; then
		log "$name reports '$out', expected $v"
		return 1
	fi
	log "$name: $(head -1 <<<"$out")"
}

build_target() { # target version
	local target=$1 v=$2 pin dir vdir key tmp pkg b t0 ldf rc
	local -a bins
	if [[ $target == k8s ]]; then pin=$k8s_pinned; dir=$here/kubernetes; vdir=$cache/k8s/$v
	else pin=$etcd_pinned; dir=$here/etcd; vdir=$cache/etcd/$v; fi

	if [[ $target == k8s ]]; then bins=("${k8s_bins[@]}"); else bins=("${etcd_bins[@]}"); fi
	key=$(stamp_key "$target" "$v" "$pin" "$dir")
	fresh "$vdir" "$key" && return 0

	mkdir -p "$cache"
	exec 9>"$cache/.build.lock"
	if ! flock -n 9; then
		log "another build holds $cache/.build.lock; waiting"
		flock 9
	fi
	# Someone else may have finished it while we waited.
	if fresh "$vdir" "$key"; then exec 9>&-; return 0; fi

	mkdir -p "$vdir/bin" "$vdir/.stamps"
	rm -rf "$cache/$target"/.tmp.* # left by a killed build (we hold the lock)
	tmp=$(mktemp -d "$cache/$target/.tmp.$v.XXXXXX")
	mkdir "$tmp/gotmp"
	cleanup_dirs+=("$tmp")

	if [[ $v != "$pin" ]]; then
		mkdir "$tmp/mod"
		if [[ $target == k8s ]]; then gen_k8s_module "$tmp/mod" "$v"; else gen_etcd_module "$tmp/mod" "$v"; fi
		dir=$tmp/mod
		if [[ $target == etcd ]]; then bins=("${etcd_bins[@]}"); fi
	fi

	if [[ $target == k8s ]]; then ldf=$(k8s_ldflags "$v"); else ldf=$(etcd_ldflags); fi
	for b in "${bins[@]}"; do
		# Per-binary stamps let a rerun after a kill skip what is already done.
		if [[ -x $vdir/bin/$b && -f $vdir/.stamps/$b && $(<"$vdir/.stamps/$b") == "$key" ]]; then
			log "$b $v already built"
			continue
		fi
		case $b in
		etcd) pkg=go.etcd.io/etcd/server/v3 ;;
		etcdctl) pkg=go.etcd.io/etcd/etcdctl/v3 ;;
		*) pkg=k8s.io/kubernetes/cmd/$b ;;
		esac
		log "building $b $v ($pkg)"
		t0=$SECONDS
		# In the background, in its own process group, so that a TERM/INT to
		# this script stops the build at once: the trap kills the whole group
		# (go ignores SIGINT and would finish the build), and go's work dir
		# (GOTMPDIR) is inside $tmp, which the trap removes.
		# (A simple command, not the goenv function, so that $! is go itself.)
		env -u GOOS -u GOARCH -u GOFLAGS -C "$dir" GOTMPDIR="$tmp/gotmp" \
			setsid go build -p "${K8SBIN_GO_P:-1}" -trimpath -buildvcs=false -mod=readonly \
			-ldflags "$ldf" -o "$tmp/$b" "$pkg" &
		child=$!
		rc=0
		wait "$child" || rc=$?
		child=
		((rc == 0)) || { log "go build $pkg failed (exit $rc)"; exit "$rc"; }
		check_version "$tmp/$b" "$target" "$v"
		mv -f "$tmp/$b" "$vdir/bin/$b"
		printf '%s\n' "$key" >"$vdir/.stamps/$b"
		log "built $b in $((SECONDS - t0)) s"
	done
	{
		goenv go version
		date -u +%Y-%m-%dT%H:%M:%SZ
	} >"$tmp/build-info"
	mv -f "$tmp/build-info" "$vdir/build-info"
	printf '%s\nbins=%s\n' "$key" "${bins[*]}" >"$tmp/stamp"
	mv -f "$tmp/stamp" "$vdir/stamp" # last: the cache counts as complete from here
	rm -rf "$tmp"
	exec 9>&-
}

cleanup_dirs=()
child=
cleanup() {
	if [[ -n $child ]]; then
		kill -TERM -- "-$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	if ((${#cleanup_dirs[@]})); then rm -rf "${cleanup_dirs[@]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

k8s_bin=$cache/k8s/$K8S_VERSION/bin
etcd_bin=$cache/etcd/$ETCD_VERSION/bin
case $mode in
all)
	build_target etcd "$ETCD_VERSION"
	build_target k8s "$K8S_VERSION"
	echo "$etcd_bin"
	echo "$k8s_bin"
	;;
path)
	build_target etcd "$ETCD_VERSION"
	build_target k8s "$K8S_VERSION"
	echo "$k8s_bin:$etcd_bin"
	;;
k8s)
	build_target k8s "$K8S_VERSION"
	echo "$k8s_bin"
	;;
etcd)
	build_target etcd "$ETCD_VERSION"
	echo "$etcd_bin"
	;;
-h | --help | help)
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"
	;;
*)
	echo "usage: $0 [all|k8s|etcd|path]" >&2
	exit 2
	;;
esac
