package caddymodule

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/caddyserver/caddy/v2"
)

// Secret settings (upstream_token, token_signing_keys, the canvas_api token,
// the database DSN) are written as {env.*} or {file.*} placeholders and
// resolved here, in Provision or at a keys-file load, never on a request.

// resolveSecret expands the placeholders in a secret setting. Its error
// never carries the value: it names the placeholder when the whole setting
// is one, and otherwise says only that a placeholder failed (a literal
// secret may contain "{…}", which the replacer would report verbatim).
func resolveSecret(raw string) (string, error) {
	v, err := caddy.NewReplacer().ReplaceOrErr(raw, true, true)
	if err != nil {
		if isPlaceholder(raw) {
			return "", fmt.Errorf("%s is unknown or empty", raw)
		}
		return "", errors.New("a placeholder in it is unknown or empty")
	}
	return v, nil
}

var placeholderRE = regexp.MustCompile(`^\{(env|file)\.[^{}]+\}$`)

// isPlaceholder reports whether s is exactly one {env.*} or {file.*}
// placeholder (a name, safe to show).
func isPlaceholder(s string) bool { return placeholderRE.MatchString(s) }
