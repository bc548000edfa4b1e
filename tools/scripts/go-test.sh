#!/usr/bin/env bash
# go-test.sh LABEL [go test flags and packages...]: runs `go test -json` in the current directory
# and prints it through tools/testsummary: go test's ok/FAIL package lines, every failed test in
# full, every skipped test with its reason (plain go test hides skips), and a last line
# "LABEL: N passed, N failed, N skipped". Fails when go test or any test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
label=${1:?usage: go-test.sh LABEL [go test args...]}
shift
summary=$root/bin/testsummary
mkdir -p "$root/bin"
(cd "$root/tools/testsummary" && GOWORK=off go build -o "$summary" .)
go test -json "$@" | "$summary" -label "$label"
