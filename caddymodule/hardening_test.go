package caddymodule

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

func readRaw(t *testing.T, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("ReadRequest: %v", err)
	}
	return r
}

func TestValidHost(t *testing.T) {
	for _, h := range []string{
		"canvas.example.edu", "canvas.example.edu:443", "Canvas.Example.EDU", "localhost", "127.0.0.1",
		"127.0.0.1:8080", "[::1]", "[::1]:8443", "[2001:db8::1]", "canvas_web:3000", "x",
	} {
		if !validHost(h) {
			t.Errorf("validHost(%q) = false, want true", h)
		}
	}
	for _, h := range []string{
		"", "canvas.example.edu:", "canvas.example.edu:,other.example.edu", "canvas.example.edu:443,other.example.edu",
		"canvas.example.edu:x", "canvas.example.edu:123456", "canvas.example.edu:443:1", "a,b", "a b", "a%2Cb",
		"::1", "[::1", "[::1]x", "[::1]:", "[::1]:8x", "[fe80::1%25eth0]", "[127.0.0.1]", "a;b", "a/b", "a@b", "user@a",
		"a\x00", "é.example",
	} {
		if validHost(h) {
			t.Errorf("validHost(%q) = true, want false", h)
		}
	}
}

func TestHardenRequest(t *testing.T) {
	cases := []struct {
		name       string
		raw        string
		status     int
		msg        string
		connection []string // the Connection values afterwards (nil: absent)
		absent     []string // headers that must be gone
		present    []string // headers that must still be there
	}{
		{name: "plain request untouched", raw: "GET /api/v1/courses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
			present: []string{"Authorization"}},
		{name: "underscore and dot names dropped", raw: "POST /x HTTP/1.1\r\nHost: x\r\nX_HTTP_Method_Override: DELETE\r\nContent_Length: 9\r\nRemote_User: admin\r\nX.Y: 1\r\nX-Ok: 1\r\nContent-Length: 0\r\n\r\n",
			absent: []string{"X_HTTP_Method_Override", "Content_Length", "Remote_User", "X.Y"}, present: []string{"X-Ok"}},
		{name: "override headers found on the pass", raw: "POST /x HTTP/1.1\r\nHost: x\r\nx-method-override: GET\r\nX-HTTP-METHOD: PUT\r\nX_HTTP_Method_Override: DELETE\r\nContent-Length: 0\r\n\r\n",
			absent: []string{"X_HTTP_Method_Override"}, present: []string{"X-Method-Override", "X-Http-Method"}},
		{name: "Connection: Authorization is kept out of Connection", raw: "GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: Authorization\r\n\r\n",
			present: []string{"Authorization"}},
		{name: "protected names removed, others kept", raw: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Content-Type, X-Forwarded-For\r\nConnection: AUTHORIZATION,transfer-encoding , Upgrade\r\n\r\n",
			connection: []string{"keep-alive, X-Forwarded-For"}},
		{name: "Connection with only protected names is dropped", raw: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Content-Type, Host, Content-Length, Content-Encoding\r\n\r\n"},
		{name: "Connection: close stays", raw: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", connection: []string{"close"}},
		{name: "duplicate Content-Type refused", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=1",
			status: 400, msg: msgDuplicateCT},
		{name: "request trailer refused", raw: "POST /x HTTP/1.1\r\nHost: x\r\nTrailer: X-A\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-A: 1\r\n\r\n",
			status: 400, msg: msgTrailers},
		{name: "gzip form body refused", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\na=1",
			status: 400, msg: msgEncodedParamBody},
		{name: "gzip JSON body refused", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: identity, br\r\nContent-Length: 2\r\n\r\n{}",
			status: 400, msg: msgEncodedParamBody},
		{name: "gzip POST without Content-Type (a form in Rack) refused", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\na=1",
			status: 400, msg: msgEncodedParamBody},
		{name: "identity encoding allowed", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
			present: []string{"Content-Encoding"}},
		{name: "gzip opaque body allowed", raw: "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
			present: []string{"Content-Encoding"}},
		{name: "Upgrade and HTTP2-Settings dropped with their Connection tokens", raw: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: websocket\r\nHttp2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			connection: []string{"keep-alive"}, absent: []string{"Upgrade", "Http2-Settings"}},
		{name: "h2c upgrade dropped", raw: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
			absent: []string{"Upgrade", "Http2-Settings"}},
		{name: "Upgrade without Connection dropped", raw: "GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
			absent: []string{"Upgrade"}},
		{name: "CONNECT refused", raw: "CONNECT canvas.example.edu:443 HTTP/1.1\r\nHost: canvas.example.edu:443\r\n\r\n",
			status: 400, msg: msgTunnel},
		{name: "non-numeric port in Host refused", raw: "GET /api/v1/courses HTTP/1.1\r\nHost: canvas.example.edu:,other.example.edu\r\n\r\n",
			status: 400, msg: msgInvalidHost},
		{name: "X-Forwarded-Host list refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nX-Forwarded-Host: canvas.example.edu, other.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "X-Forwarded-Host differing from Host refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nX-Forwarded-Host: other.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "X-Forwarded-Host without Host's port refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu:8443\r\nX-Forwarded-Host: canvas.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "two X-Forwarded-Host lines refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nX-Forwarded-Host: canvas.example.edu\r\nX-Forwarded-Host: canvas.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "X-Forwarded-Host equal to Host kept", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu:8443\r\nX-Forwarded-Host: Canvas.Example.edu:8443\r\n\r\n",
			present: []string{"X-Forwarded-Host"}},
		{name: "Forwarded host= differing from Host refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nForwarded: for=192.0.2.1;proto=https;host=other.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "Forwarded: the last element's host= differs", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nForwarded: host=canvas.example.edu, host=\"other.example.edu\"\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "Forwarded: spaced, upper-case key refused", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nForwarded: for=192.0.2.1; HOST = other.example.edu\r\n\r\n",
			status: 400, msg: msgForwardedHost},
		{name: "Forwarded host= equal to Host kept", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nForwarded: for=192.0.2.1;host=\"canvas.example.edu\";proto=https\r\n\r\n",
			present: []string{"Forwarded"}},
		{name: "Forwarded without host kept", raw: "GET /x HTTP/1.1\r\nHost: canvas.example.edu\r\nForwarded: for=192.0.2.1;proto=https\r\n\r\n",
			present: []string{"Forwarded"}},
		{name: "gzip with no body allowed", raw: "GET /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\r\n",
			present: []string{"Content-Encoding"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := readRaw(t, c.raw)
			if c.status == 400 && c.msg == msgTrailers {
				// Go fills r.Trailer keys from the Trailer header; the
				// header itself is removed by the parser.
				if len(r.Trailer) == 0 {
					t.Fatalf("parser did not announce the trailer")
				}
			}
			sh, status, msg := hardenRequest(r)
			if status != c.status || msg != c.msg {
				t.Fatalf("hardenRequest = %d %q, want %d %q", status, msg, c.status, c.msg)
			}
			if status != 0 {
				return
			}
			if want := r.Header.Get("Content-Type"); sh.contentType != want {
				t.Errorf("hardenRequest returned Content-Type %q, the request has %q", sh.contentType, want)
			}
			var overrides uint8
			for name := range r.Header {
				if rank := params.OverrideHeaderRank(name); rank >= 0 {
					overrides |= 1 << rank
				}
			}
			if sh.overrideHeaders != overrides {
				t.Errorf("hardenRequest found override headers %03b, the request has %03b", sh.overrideHeaders, overrides)
			}
			if got := r.Header["Connection"]; !reflect.DeepEqual(got, c.connection) {
				t.Errorf("Connection = %q, want %q", got, c.connection)
			}
			for _, h := range c.absent {
				if _, ok := r.Header[h]; ok {
					t.Errorf("%s still present", h)
				}
			}
			for _, h := range c.present {
				if _, ok := r.Header[h]; !ok {
					t.Errorf("%s was removed", h)
				}
			}
			// After hardening, the handler's own hop-by-hop strip must
			// leave Authorization and Content-Type in place.
			stripHopByHopNames(r.Header)
			if strings.Contains(c.raw, "Authorization: Bearer t") && r.Header.Get("Authorization") != "Bearer t" {
				t.Errorf("Authorization lost after stripHopByHopNames")
			}
		})
	}
}
