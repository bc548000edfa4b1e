module github.com/secretproxy/secretproxy/tools/testsummary

go 1.26.0
