package client_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// TestAPIReferenceCoversProto fails when docs/reference/api.md misses an RPC
// of SecretService, a message, or a field of a message (with its number), so
// a change to the proto is documented in the same change.
func TestAPIReferenceCoversProto(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "reference", "api.md"))
	if err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	doc := string(raw)
	fd := secretproxyv1.File_secretproxy_v1_secret_service_proto
	svc := fd.Services().ByName("SecretService")
	if svc == nil || svc.Methods().Len() < 5 {
		t.Fatal("SecretService not found in the file descriptor")
	}
	for i := range svc.Methods().Len() {
		m := svc.Methods().Get(i)
		if !strings.Contains(doc, "| `"+string(m.Name())+"` |") {
			t.Errorf("RPC %s has no row in the RPC table of docs/reference/api.md", m.Name())
		}
		if !strings.Contains(doc, "**"+string(m.Name())+".**") {
			t.Errorf("RPC %s has no rules paragraph (**%s.**) in docs/reference/api.md", m.Name(), m.Name())
		}
	}
	msgs := fd.Messages()
	for i := range msgs.Len() {
		checkMessage(t, doc, msgs.Get(i))
	}
}

// checkMessage wants the message named in backquotes and a row per field:
// the Secret table has "| `field` | number |", the other messages
// "| `Message` | `field` | number |".
func checkMessage(t *testing.T, doc string, md protoreflect.MessageDescriptor) {
	t.Helper()
	name := string(md.Name())
	if !strings.Contains(doc, "`"+name+"`") {
		t.Errorf("message %s is not named in docs/reference/api.md", name)
	}
	fields := md.Fields()
	if fields.Len() == 0 && !strings.Contains(doc, "| `"+name+"` | (none) |") {
		t.Errorf("message %s has no fields: want a row \"| `%s` | (none) |\" in docs/reference/api.md", name, name)
	}
	for j := range fields.Len() {
		f := fields.Get(j)
		row := "| `" + string(f.Name()) + "` | " + strconv.Itoa(int(f.Number())) + " |"
		if name != "Secret" {
			row = "| `" + name + "` " + row
		}
		if !strings.Contains(doc, row) {
			t.Errorf("field %s.%s (number %d) has no row %q in docs/reference/api.md", name, f.Name(), f.Number(), row)
		}
	}
}
