module github.com/secretproxy/secretproxy/tools/repocheck

go 1.26.0
