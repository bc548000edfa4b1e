# toolcache.sh: sourced by the scripts that build tools into the cache shared by every checkout
# on the machine (${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy). Two checkouts may run
# `make test` at once, so a cache entry is
#   - built under a lock (flock on DIR/.lock), so the second build waits and then finds the
#     first one's binary instead of building it again on the same cores;
#   - written through a unique temporary directory next to it and renamed into place, so no
#     reader ever sees a half-written binary, and no two builds share a temporary name.

# toolcache_dir NAME: the cache directory of NAME (created).
toolcache_dir() {
	local dir=${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/$1
	mkdir -p "$dir"
	printf '%s\n' "$dir"
}

# toolcache_lock DIR: holds an exclusive lock on DIR until the calling script exits (fd 9).
# Without flock (not Linux util-linux) the atomic rename alone still keeps entries whole.
toolcache_lock() {
	command -v flock >/dev/null || return 0
	exec 9>"$1/.lock"
	flock 9
}

# toolcache_go_build DEST [go build flags and package]: go build -o DEST, atomically: the
# binary is written in a fresh temporary directory beside DEST and renamed over it.
toolcache_go_build() {
	local dest=$1
	shift
	local tmp
	tmp=$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")
	if ! go build -o "$tmp/$(basename "$dest")" "$@"; then
		rm -rf "$tmp"
		return 1
	fi
	mv -f "$tmp/$(basename "$dest")" "$dest"
	rm -rf "$tmp"
}

# toolcache_get ENTRY BIN MODDIR LDFLAGS PKG: prints the path of BIN in the cache entry ENTRY
# (e.g. helm-v3.22.0), building PKG from the module in MODDIR first when it is not cached.
toolcache_get() {
	local entry=$1 bin=$2 moddir=$3 ldflags=$4 pkg=$5 out
	out=$(toolcache_dir "$entry")
	# The lock is held by the subshell only: released as soon as the entry is there.
	(
		toolcache_lock "$out"
		if [[ -x $out/$bin ]]; then
			echo "toolcache: $entry cached in $out" >&2
		else
			echo "toolcache: building $entry into $out (cold: minutes; modules from the Go proxy)" >&2
			cd "$moddir"
			GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 toolcache_go_build "$out/$bin" -trimpath -ldflags "$ldflags" "$pkg"
		fi
	) || return 1
	printf '%s\n' "$out/$bin"
}
