package secrets_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/secretproxy/secretproxy/proto/client"

	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

var initial = map[string]string{"db-server": "sql.example:1433", "db-user": "app", "db-password": "test-password-1", "db-name": "orders"}

func dial(t *testing.T, sc *secretproxytest.Server) *client.Client {
	t.Helper()
	c, err := client.Dial(sc.Target(), client.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var ignoreVersion = cmpopts.IgnoreFields(secrets.Credentials{}, "Version")

func TestFirstAndRefresh(t *testing.T) {
	sc := secretproxytest.Start(t, initial)
	w := secrets.NewWatcher(dial(t, sc), secrets.DefaultNames(), slog.New(slog.DiscardHandler))
	got, err := w.First(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := secrets.Credentials{Server: "sql.example:1433", User: "app", Password: "test-password-1", Database: "orders"}
	if diff := cmp.Diff(want, got, ignoreVersion); diff != "" {
		t.Errorf("First (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Version, "db-password@v1") {
		t.Errorf("Version %q lacks the password's version", got.Version)
	}
	sc.SetVault("db-password", "test-password-2")
	got, err = w.Refresh(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want.Password = "test-password-2"
	if diff := cmp.Diff(want, got, ignoreVersion); diff != "" {
		t.Errorf("Refresh (-want +got):\n%s", diff)
	}
	if n := sc.Calls("RefreshSecret"); n != 2 {
		t.Errorf("RefreshSecret calls = %d, want 2 (user and password)", n)
	}
}

func TestRunAppliesEveryChange(t *testing.T) {
	sc := secretproxytest.Start(t, initial)
	var logs bytes.Buffer
	w := secrets.NewWatcher(dial(t, sc), secrets.DefaultNames(), slog.New(slog.NewJSONHandler(&logs, nil)))
	// Each apply hands its set to the test, which waits for it (bounded)
	// before publishing the next change.
	applied := make(chan secrets.Credentials, 8)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(ctx context.Context, c secrets.Credentials) error {
			select {
			case applied <- c:
			case <-ctx.Done():
			}
			if c.Password == "bad" {
				return fmt.Errorf("login refused")
			}
			return nil
		})
	}()
	var got [][2]string
	wait := func() {
		t.Helper()
		select {
		case c := <-applied:
			got = append(got, [2]string{c.User, c.Password})
		case <-time.After(10 * time.Second):
			t.Fatalf("applied %d sets, want %d", len(got), len(got)+1)
		}
	}
	wait()
	sc.Publish(map[string]string{"db-user": "app2", "db-password": "test-password-2"}) // one message: both at once
	wait()
	sc.Publish(map[string]string{"db-password": "bad"})
	wait()
	sc.Publish(map[string]string{"db-password": "test-password-3"}) // a failed apply does not end the watch
	wait()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	close(applied)
	for c := range applied { // a set applied that no change asked for
		got = append(got, [2]string{c.User, c.Password})
	}
	want := [][2]string{{"app", "test-password-1"}, {"app2", "test-password-2"}, {"app2", "bad"}, {"app2", "test-password-3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "not applied") {
		t.Errorf("the failed apply is not logged:\n%s", logs.String())
	}
	for _, pw := range []string{"test-password-1", "test-password-2", "test-password-3", `"bad"`} {
		if strings.Contains(logs.String(), pw) {
			t.Errorf("the log holds password %s", pw)
		}
	}
}

func TestMissingSecret(t *testing.T) {
	sc := secretproxytest.Start(t, map[string]string{"db-name": "x.db"})
	// Every driver, sqlite included, needs all four; the fake answers
	// NOT_FOUND for the rest.
	w := secrets.NewWatcher(dial(t, sc), secrets.DefaultNames(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := w.First(ctx); err == nil {
		t.Fatal("First with only db-name published succeeded")
	}
}

func TestCredentialsNeverPrintValues(t *testing.T) {
	c := secrets.Credentials{Server: "test-server-1", User: "test-user-1", Password: "test-password-1", Database: "test-database-1", Version: "v1"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "creds", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "creds", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logs.String()} {
		for _, v := range []string{"test-server-1", "test-user-1", "test-password-1", "test-database-1"} {
			if strings.Contains(s, v) {
				t.Errorf("printed the secret value %s: %s", v, s)
			}
		}
		if !strings.Contains(s, "v1") {
			t.Errorf("the version is missing from %s", s)
		}
	}
}

func TestNamesValidate(t *testing.T) {
	n := secrets.DefaultNames()
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	n.User = n.Password
	n.Server = ""
	err := n.Validate()
	if err == nil || !strings.Contains(err.Error(), "--secret-server must not be empty") || !strings.Contains(err.Error(), "same secret") {
		t.Errorf("Validate = %v, want both problems", err)
	}
}
