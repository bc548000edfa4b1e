module github.com/secretproxy/secretproxy/orderapp

go 1.26

require github.com/secretproxy/secretproxy/proto v0.0.0

replace github.com/secretproxy/secretproxy/proto => ../proto
