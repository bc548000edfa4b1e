#!/usr/bin/env bash
# check-generated.sh: fails when the generated code in the working tree differs from what
# `make generate` writes from the working tree's proto/ (`make check-generated`, part of
# `make test`). It never writes the working tree: the inputs (proto/, the generated
# directories, the pin modules of buf and the protoc plugins, tools/scripts) are copied into a
# temporary directory, generate.sh runs there, and the generated directories are compared.
# On a difference it prints the files, the diff (working tree -> fresh), and exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

# The directories that hold generated code (compared whole: a stale or missing file counts).
generated=(proto/secretproxy clients/python/secretproxy/v1)
inputs=(proto clients/python/secretproxy/v1 tools/pins/buf tools/pins/protoc-gen tools/scripts)
# The diff is capped so a wholesale change does not bury the message.
max_lines=${CHECK_GENERATED_MAX_LINES:-300}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-generated.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -C "$root" --exclude=__pycache__ -cf - "${inputs[@]}" | tar -C "$tmp" -xf -

bash "$tmp/tools/scripts/generate.sh"

printf '\n==> %s\n' "generated code is up to date (fresh generation in a temporary copy, compared with the working tree)"
changed=()
for d in "${generated[@]}"; do
	# "Files A and B differ" or "Only in DIR: NAME" -> the path in the repository, with a note.
	while IFS= read -r line; do changed+=("$line"); done < <(
		diff -rq --exclude=__pycache__ "$root/$d" "$tmp/$d" | awk -v root="$root/" -v tmp="$tmp/" '
			/^Files / { f = $2; sub("^" root, "", f); print f; next }
			/^Only in / {
				dir = $3; sub(":$", "", dir); f = dir "/" $4
				if (index(f, tmp) == 1) { sub("^" tmp, "", f); print f " (missing from the working tree)" }
				else { sub("^" root, "", f); print f " (not generated: stale)" }
				next
			}
			{ print }')
done
if [ ${#changed[@]} -eq 0 ]; then
	echo "generated code matches a fresh 'make generate'"
	exit 0
fi
{
	echo "GENERATED CODE IS OUT OF DATE: these files differ from a fresh generation:"
	printf '  %s\n' "${changed[@]}"
	echo "diff (--- working tree, +++ fresh 'make generate'):"
	for d in "${generated[@]}"; do
		diff -ruN --exclude=__pycache__ "$root/$d" "$tmp/$d" || true
	done | sed -e "s|$tmp/|fresh/|g" -e "s|$root/|./|g" -e 's#^\(---\|+++\) \([^\t]*\)\t.*#\1 \2#' >"$tmp/diff"
	head -n "$max_lines" "$tmp/diff"
	lines=$(wc -l <"$tmp/diff")
	if [ "$lines" -gt "$max_lines" ]; then echo "... ($((lines - max_lines)) more diff lines)"; fi
	echo "run 'make generate' and commit the result (the working tree was not changed)"
} >&2
exit 1
