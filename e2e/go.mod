module github.com/secretproxy/secretproxy/e2e

go 1.26.0

require (
	github.com/secretproxy/secretproxy/orderapp v0.0.0
	github.com/secretproxy/secretproxy/proto v0.0.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/secretproxy/secretproxy/orderapp => ../orderapp
	github.com/secretproxy/secretproxy/proto => ../proto
	github.com/secretproxy/secretproxy/sidecar => ../sidecar
)
