package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// bareServer is the baseline: plain grpc-go answering one constant message,
// the same one the sidecar answered, with no interceptors, no cache, no metrics.
type bareServer struct {
	secretproxyv1.UnimplementedSecretServiceServer
	resp *secretproxyv1.GetSecretResponse
}

func (b *bareServer) GetSecret(context.Context, *secretproxyv1.GetSecretRequest) (*secretproxyv1.GetSecretResponse, error) {
	return b.resp, nil
}

func serveBare(ctx context.Context, listen, respFile string) error {
	raw, err := os.ReadFile(respFile)
	if err != nil {
		return fmt.Errorf("read response file: %w", err)
	}
	resp := &secretproxyv1.GetSecretResponse{}
	if err := proto.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("decode response file: %w", err)
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := grpc.NewServer()
	secretproxyv1.RegisterSecretServiceServer(srv, &bareServer{resp: resp})
	// The parent reads the address from this line.
	fmt.Printf("listening %s\n", lis.Addr())
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	return srv.Serve(lis)
}
