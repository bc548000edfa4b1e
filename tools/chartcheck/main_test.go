package chartcheck

import (
	"io"
	"log"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// Helm's loader logs through the standard logger each time it follows the
	// charts/orderapp/charts/secret-proxy link to the library; that note is expected.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}
