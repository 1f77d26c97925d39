package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A refused path is answered with a constant message and logged as a
// bounded, escaped excerpt: the request's bytes are never echoed.
func TestRefusedPathIsNotEchoed(t *testing.T) {
	marker := "test-only-echo-marker"
	long := strings.Repeat("x", 500)
	for _, c := range []struct {
		name, target string
		wantMsg      string
	}{
		{"dot segment", "/api/v1/courses/%2e%2e/" + marker + "/" + long, msgRefusedPathPrefix + "DotSegment"},
		{"double encoding", "/api/v1/" + marker + "%252e" + long, msgRefusedPathPrefix + "DoubleEncoding"},
		{"semicolon", "/api/v1/courses;" + marker + long, msgRefusedPathPrefix + "Semicolon"},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			h := &Handler{logger: zap.New(core)}
			r := httptest.NewRequest("GET", "http://canvas.test"+c.target, nil)
			if r.URL.EscapedPath() != c.target {
				t.Fatalf("test setup: EscapedPath %q", r.URL.EscapedPath())
			}
			w := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				t.Fatal("a refused path was forwarded")
				return nil
			})
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if w.Code != 400 {
				t.Fatalf("status %d", w.Code)
			}
			var body struct {
				Errors []struct{ Message string } `json:"errors"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
				t.Fatalf("body %s", w.Body)
			}
			if got := body.Errors[0].Message; got != c.wantMsg {
				t.Errorf("message %q, want the constant %q", got, c.wantMsg)
			}
			if strings.Contains(w.Body.String(), marker) {
				t.Errorf("the response echoes the path")
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d log entries", len(entries))
			}
			fields := entries[0].ContextMap()
			if reason := fields["reason"].(string); reason != c.wantMsg {
				t.Errorf("logged reason %q, want %q", reason, c.wantMsg)
			}
			excerpt, _ := fields["path_excerpt"].(string)
			if len(excerpt) == 0 || len(excerpt) > 3*maxLoggedExcerpt {
				t.Errorf("logged excerpt is %d bytes", len(excerpt))
			}
			if strings.ContainsAny(excerpt, "\"\\ ") {
				t.Errorf("logged excerpt %q is not escaped", excerpt)
			}
			for k, v := range fields {
				if s, ok := v.(string); ok && k != "path_excerpt" && strings.Contains(s, marker) {
					t.Errorf("log field %s carries the path", k)
				}
				if s, ok := v.(string); ok && len(s) > 3*maxLoggedExcerpt {
					t.Errorf("log field %s is %d bytes", k, len(s))
				}
			}
		})
	}
}

func TestPathExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/courses":       "/api/v1/courses",
		"/a\"b\\c d\x00\xff":    "/a%22b%5Cc%20d%00%FF",
		strings.Repeat("y", 90): strings.Repeat("y", maxLoggedExcerpt),
	} {
		if got := logExcerpt(in); got != want {
			t.Errorf("logExcerpt(%q) = %q, want %q", in, got, want)
		}
	}
}
