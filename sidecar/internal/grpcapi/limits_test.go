package grpcapi

import (
	"testing"

	"github.com/secretproxy/secretproxy/proto/client"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

// TestMessageLimitFitsLargestPod: the API's message limit (the client's
// receive limit, the server's send limit) holds the largest first
// WatchSecrets message of a configuration the sidecar accepts, with room to
// spare, and stays above gRPC's 4 MiB default that the pod outgrew.
func TestMessageLimitFitsLargestPod(t *testing.T) {
	largest := config.MaxSecrets * config.MaxSecretBytes
	if largest*3/2 > client.MaxMessageBytes {
		t.Errorf("largest message %d bytes (%d secrets x %d) leaves less than 50%% headroom under client.MaxMessageBytes %d",
			largest, config.MaxSecrets, config.MaxSecretBytes, client.MaxMessageBytes)
	}
	if config.MaxSecrets*config.MaxValueBytes <= 4<<20 {
		t.Errorf("the bound (%d secrets of %d bytes) no longer exceeds gRPC's 4 MiB default; TestLargestPodReachesClient would prove nothing",
			config.MaxSecrets, config.MaxValueBytes)
	}
}
