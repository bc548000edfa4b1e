module github.com/secretproxy/secretproxy/tools/orderapp-load

go 1.26.0

replace (
	github.com/secretproxy/secretproxy/e2e => ../../e2e
	github.com/secretproxy/secretproxy/orderapp => ../../orderapp
	github.com/secretproxy/secretproxy/proto => ../../proto
)

require (
	github.com/secretproxy/secretproxy/e2e v0.0.0
	github.com/secretproxy/secretproxy/proto v0.0.0
	github.com/tsenart/vegeta/v12 v12.13.0
)

require (
	github.com/influxdata/tdigest v0.0.1 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/mailru/easyjson v0.7.7 // indirect
	github.com/rs/dnscache v0.0.0-20230804202142-fc85eb664529 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
