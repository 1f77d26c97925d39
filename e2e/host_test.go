package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The `hosts` binding (issue 12, item 2): the gate checks the key's hosts
// on the Host, so the host Rails reads must be that Host. ActionDispatch
// takes request.host from the last comma-separated entry of
// X-Forwarded-Host, which reverse_proxy copies from the Host, or forwards
// from the client when it trusts it (trusted_proxies); Rack 3 reads a
// Forwarded host= first. tokHosted's key is bound to canvas.example.edu.
func TestHostBinding(t *testing.T) {
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 0",
		// The client is a trusted proxy: its X-Forwarded-Host goes upstream.
		Global: "servers {\n\t\tprotocols h1 h2c\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}",
		Env:    []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	req := func(host, extra string) string {
		return "GET /api/v1/courses HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tokHosted + "\r\n" + extra + "\r\n"
	}
	for _, c := range []struct {
		name, raw string
		status    int
		railsHost string // the X-Forwarded-Host the upstream must get; "" = refused
	}{
		{"bound host", req("canvas.example.edu", ""), 200, "canvas.example.edu"},
		{"bound host with a port", req("canvas.example.edu:8443", ""), 200, "canvas.example.edu:8443"},
		{"non-numeric port smuggling a second host", req("canvas.example.edu:,other.example.edu", ""), 400, ""},
		{"port then a second host", req("canvas.example.edu:443,other.example.edu", ""), 400, ""},
		{"empty port", req("canvas.example.edu:", ""), 400, ""},
		{"trusted X-Forwarded-Host naming another host", req("canvas.example.edu", "X-Forwarded-Host: other.example.edu\r\n"), 400, ""},
		{"trusted X-Forwarded-Host list ending in another host", req("canvas.example.edu", "X-Forwarded-Host: canvas.example.edu, other.example.edu\r\n"), 400, ""},
		{"two X-Forwarded-Host lines", req("canvas.example.edu", "X-Forwarded-Host: canvas.example.edu\r\nX-Forwarded-Host: other.example.edu\r\n"), 400, ""},
		{"Forwarded host= naming another host", req("canvas.example.edu", "Forwarded: for=192.0.2.1;host=other.example.edu;proto=https\r\n"), 400, ""},
		{"X-Forwarded-Host equal to Host", req("canvas.example.edu", "X-Forwarded-Host: canvas.example.edu\r\n"), 200, "canvas.example.edu"},
		{"Forwarded host= equal to Host", req("canvas.example.edu", "Forwarded: for=192.0.2.1;host=\"canvas.example.edu\"\r\n"), 200, "canvas.example.edu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := in.send1(t, c.raw, "GET")
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			if c.railsHost == "" {
				if strings.Contains(body, "other.example.edu") {
					t.Errorf("the refusal echoes the request: %s", body)
				}
				up.none(t)
				return
			}
			got := up.one(t)
			if xfh := got.Header.Values("X-Forwarded-Host"); len(xfh) != 1 || xfh[0] != c.railsHost {
				t.Errorf("upstream X-Forwarded-Host %q, want exactly %q", xfh, c.railsHost)
			}
			if got.Host != c.railsHost {
				t.Errorf("upstream Host %q, want %q", got.Host, c.railsHost)
			}
		})
	}
	// HTTP/2: the :authority is the Host.
	for _, c := range []struct {
		authority string
		status    int
	}{
		{"canvas.example.edu:,other.example.edu", 400},
		{"canvas.example.edu", 200},
	} {
		t.Run("h2 :authority "+c.authority, func(t *testing.T) {
			status := h2Raw(t, in.httpPort, [][2]string{
				{":method", "GET"}, {":scheme", "http"}, {":authority", c.authority}, {":path", "/api/v1/courses"},
				{"authorization", "Bearer " + tokHosted},
			})
			if status != c.status {
				t.Errorf("status %d, want %d", status, c.status)
			}
			if c.status == 200 {
				if xfh := up.one(t).Header.Get("X-Forwarded-Host"); xfh != c.authority {
					t.Errorf("upstream X-Forwarded-Host %q", xfh)
				}
			} else {
				up.none(t)
			}
		})
	}
}

// Refusals never echo the request: a refused path is answered with a
// constant and logged as a bounded, escaped excerpt.
func TestRefusedPathNotEchoed(t *testing.T) {
	in, up := startGate(t, "")
	marker := "test-only-echo-marker"
	target := "/api/v1/courses/%2e%2e/" + strings.Repeat("x", 64) + marker + strings.Repeat("y", 2000)
	status, body := in.send1(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: canvas.test\r\nAuthorization: Bearer %s\r\n\r\n", target, tokA), "GET")
	if status != http.StatusBadRequest {
		t.Fatalf("status %d", status)
	}
	if want := `{"errors":[{"message":"refused path: DotSegment"}]}`; body != want {
		t.Errorf("body %s, want the constant %s", trunc(body), want)
	}
	up.none(t)
	waitFor(t, func() bool { return strings.Contains(in.logText(), "request refused") })
	if log := in.logText(); strings.Contains(log, marker) || strings.Contains(log, "yyyy") {
		t.Errorf("the log carries more than a bounded excerpt of the path:\n%s", trunc(log[strings.Index(log, "request refused"):]))
	}
}
