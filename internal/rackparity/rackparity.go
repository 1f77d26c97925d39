// Package rackparity asks the real Rack 2.2 and ActionDispatch 6.1 (the
// versions Canvas LMS runs on) what they read from a request: the
// parameters Rails builds, the method it routes on after
// Rack::MethodOverride, the host it believes it serves and the credential
// Canvas authenticates. Tests compare that with what the gate decided.
//
// Two ways, sharing one Ruby reading (reading.rb): an Oracle is one
// long-running ruby process fed raw requests over a pipe (for fuzzing and
// differential tests), and a StandIn is the same reading served by the
// real Puma over HTTP (an upstream for Caddy in end-to-end tests).
//
// It needs ruby with Debian's ruby-rack, ruby-actionpack and puma
// packages; Available reports whether they load.
package rackparity

import (
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

//go:embed reading.rb oracle.rb config.ru
var rubyFiles embed.FS

// Request is one HTTP/1.1 request as sent on the wire.
type Request struct {
	Method string
	Target string      // the raw request-target, e.g. "/api/v1/courses?include[]=x"
	Header [][2]string // header lines in order, sent as "Name: value"; Host is added when missing
	Body   []byte      // Content-Length is added when the body is not empty and none is given
}

// Reading is what Rails and Canvas read from one request. When Raised is
// set, Rack or Rails refused the request (a parse error, a
// Rack::QueryParser::ParameterTypeError, a refused head): Canvas would
// answer with an error and act on nothing; the other fields are empty.
type Reading struct {
	Raised  string `json:"raised"`
	Message string `json:"message"`

	Method           string         `json:"method"`            // REQUEST_METHOD as the server received it
	RequestMethod    string         `json:"request_method"`    // request.request_method: after Rack::MethodOverride, what Rails routes on
	OriginalMethod   string         `json:"original_method"`   // request.method
	Overridden       bool           `json:"overridden"`        // Rack::MethodOverride changed the method
	Params           map[string]any `json:"params"`            // request.params: query, form/multipart and JSON body merged as Rails does
	Host             string         `json:"host"`              // request.host
	HostWithPort     string         `json:"host_with_port"`    // request.host_with_port
	Credential       any            `json:"credential"`        // the token Canvas authenticates (a string, or an Array/Hash for bracketed names), nil if none
	CredentialSource string         `json:"credential_source"` // "header", "params" or ""
	Env              map[string]any `json:"env"`               // a few CGI variables, for messages
}

// CredentialString returns the credential as Canvas would use it and
// whether it is a plain string (false for none, an Array or a Hash). A
// string that is not valid UTF-8 arrives as {"__bytes__": hex} (see
// reading.rb) and is returned as its bytes.
func (r Reading) CredentialString() (string, bool) {
	switch c := r.Credential.(type) {
	case string:
		return c, true
	case map[string]any:
		if h, ok := c["__bytes__"].(string); ok && len(c) == 1 {
			if b, err := hex.DecodeString(h); err == nil {
				return string(b), true
			}
		}
	}
	return "", false
}

// Param returns the top-level parameter name and whether it is present.
func (r Reading) Param(name string) (any, bool) {
	v, ok := r.Params[name]
	return v, ok
}

// ForeignIncludes returns the values of the top-level parameter name
// (include or includes) that Canvas's include filter would not reduce to
// "uuid": every value of a non-Array, and every element of an Array other
// than the string "uuid". Empty means the parameter is absent or an Array
// of "uuid"s only.
func (r Reading) ForeignIncludes(name string) []any {
	v, ok := r.Params[name]
	if !ok {
		return nil
	}
	arr, isArray := v.([]any)
	if !isArray {
		return []any{v}
	}
	var out []any
	for _, e := range arr {
		if s, ok := e.(string); !ok || s != "uuid" {
			out = append(out, e)
		}
	}
	return out
}

// extract writes the embedded Ruby files into a fresh directory.
func extract() (string, error) {
	dir, err := os.MkdirTemp("", "rackparity")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"reading.rb", "oracle.rb", "config.ru"} {
		b, err := rubyFiles.ReadFile(name)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

var (
	availableOnce sync.Once
	availableErr  error
)

// Available reports whether ruby is on PATH and loads Rack, ActionDispatch
// and Puma's HTTP parser (nil), or why not.
func Available() error {
	availableOnce.Do(func() {
		ruby, err := exec.LookPath("ruby")
		if err != nil {
			availableErr = errors.New("ruby is not on PATH (Debian packages: ruby ruby-rack ruby-actionpack puma)")
			return
		}
		dir, err := extract()
		if err != nil {
			availableErr = err
			return
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command(ruby, "-e", `require ARGV[0]; print "ok"`, filepath.Join(dir, "reading.rb")).CombinedOutput()
		if err != nil || string(out) != "ok" {
			availableErr = fmt.Errorf("ruby cannot load Rack, ActionDispatch and Puma (Debian packages: ruby-rack ruby-actionpack puma): %v: %.300s", err, out)
		}
	})
	if availableErr != nil {
		return availableErr
	}
	return nil
}

// Require skips t when Rack cannot be run here, but fails it under CI
// (CI=true), where .ci/run installs it and a skip would hide a missing
// parity check.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Rack parity check cannot run in CI: %v", err)
		}
		t.Skipf("skipping the Rack parity check: %v", err)
	}
}
