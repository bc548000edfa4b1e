package dbconn

import "net/url"

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
