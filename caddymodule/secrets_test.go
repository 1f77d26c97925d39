package caddymodule

import (
	"strings"
	"testing"
)

// A secret setting's resolution error names a placeholder, never a value:
// a literal token with "{…}" in it is what the replacer would echo.
func TestResolveSecretNeverEchoesTheValue(t *testing.T) {
	for raw, want := range map[string]string{
		"7~test-only-literal{token}secret-part":     "a placeholder in it is unknown or empty",
		"{env.TEST_CANVAS_SCOPES_NOT_SET_ANYWHERE}": "{env.TEST_CANVAS_SCOPES_NOT_SET_ANYWHERE} is unknown or empty",
		"postgres://u:{env.NOT_SET_PW}@127.0.0.1/x": "a placeholder in it is unknown or empty",
	} {
		_, err := resolveSecret(raw)
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", raw, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "secret-part") || strings.Contains(err.Error(), "postgres://")) {
			t.Errorf("%q: the error echoes the value: %v", raw, err)
		}
	}
	t.Setenv("TEST_CANVAS_SCOPES_SECRET", "s3cret")
	if v, err := resolveSecret("{env.TEST_CANVAS_SCOPES_SECRET}"); err != nil || v != "s3cret" {
		t.Errorf("resolved %q, %v", v, err)
	}
}
