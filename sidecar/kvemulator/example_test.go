package kvemulator_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// The real SDK against the emulator: a managed identity through the App
// Service variables, the emulator's CA, and no challenge resource
// verification (127.0.0.1 is not under vault.azure.net).
func Example() {
	e, err := kvemulator.Start(kvemulator.Options{Secrets: map[string]string{"sql-user": "test-user-1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	// A test would use t.Setenv; an example has no t.
	os.Setenv("IDENTITY_ENDPOINT", e.IdentityEndpoint())
	os.Setenv("IDENTITY_HEADER", e.IdentityHeader())
	defer os.Unsetenv("IDENTITY_ENDPOINT")
	defer os.Unsetenv("IDENTITY_HEADER")

	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		// MSAL caches managed-identity tokens per process and client id: a
		// fresh id keeps a token from another emulator out of this run.
		ID:            azidentity.ClientID(fmt.Sprintf("example-client-%d", time.Now().UnixNano())),
		ClientOptions: azcore.ClientOptions{Transport: e.HTTPClient()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := azsecrets.NewClient(e.VaultURL(), cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: e.HTTPClient()},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	e.SetSecret("sql-user", "test-user-2")
	got, err := client.GetSecret(context.Background(), "sql-user", "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*got.Value)
	// Output: test-user-2
}
