// Package repocheck holds tests of the repository itself rather than of a
// program: that no document or comment points outside the repository, and
// that the shell scripts under tools/scripts behave (the tool cache written
// atomically by concurrent builds, the test set-up stopping only what it
// started). `make test` runs them.
package repocheck
