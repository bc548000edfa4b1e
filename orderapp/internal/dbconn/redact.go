package dbconn

import (
	"net"
	"net/url"
	"sort"

	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// passwordForms are the ways a password can appear in a message: as is, and
// escaped the way it is written into a URL-form DSN.
func passwordForms(pw string) []string {
	forms := []string{pw}
	for _, f := range []string{url.QueryEscape(pw), url.PathEscape(pw), url.UserPassword("u", pw).String()[2:]} {
		if f != pw && f != "" {
			forms = append(forms, f)
		}
	}
	return forms
}

// secretForms are every form in which a credential value can appear in a
// driver's message, longest first (so "host:port" goes before "host"). All
// four values are vault secrets, not only the password: pgx, for one, names the
// user, database and server in every connection error.
func secretForms(c secrets.Credentials) []string {
	var forms []string
	add := func(v string) {
		if v == "" {
			return
		}
		forms = append(forms, v)
		for _, f := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if f != v && f != "" {
				forms = append(forms, f)
			}
		}
	}
	if c.Password != "" {
		forms = append(forms, passwordForms(c.Password)...)
	}
	add(c.User)
	add(c.Database)
	add(c.Server)
	if host, _, err := net.SplitHostPort(c.Server); err == nil {
		add(host)
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}
