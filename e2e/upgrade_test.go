package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tunnelUpstream makes the recording upstream answer every request that
// asks for an upgrade (and every request to /always-101) with 101 and then
// echo the bytes of the tunnel: what a WebSocket-capable backend would do.
func tunnelUpstream(t *testing.T) *upstream {
	up := newUpstream(t)
	up.respond = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" && r.URL.Path != "/always-101" {
			fmt.Fprint(w, "plain")
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(conn, rw) // echo the tunnel
	}
	return up
}

// openTunnel sends raw over a fresh connection; if the answer is 101 it
// writes a line into the tunnel and returns what came back.
func openTunnel(t *testing.T, in *instance, raw string) (status int, echoed string) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, ""
	}
	line := "GET /api/v1/accounts HTTP/1.1 Authorization: Bearer " + tokNarrow + "\n"
	_, _ = io.WriteString(c, line)
	got := make([]byte, len(line))
	n, _ := io.ReadFull(br, got)
	return resp.StatusCode, string(got[:n])
}

// No request opens a tunnel through the gate (issue 12, item 4): requests
// forwarded without a decision (anonymous off /api/, anonymous pass,
// unknown_tokens pass) reach the upstream without Upgrade or
// HTTP2-Settings, so a backend that would switch protocols does not, and
// the client never gets a 101.
func TestNoTunnelThroughTheGate(t *testing.T) {
	up := tunnelUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 0\n\t\tunknown_tokens pass\n\t\tanonymous pass",
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	ws := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, c := range []struct{ name, raw string }{
		{"anonymous, off /api/", "GET /socket HTTP/1.1\r\nHost: canvas.test\r\n" + ws + "\r\n"},
		{"anonymous pass on /api/", "GET /api/v1/socket HTTP/1.1\r\nHost: canvas.test\r\n" + ws + "\r\n"},
		{"unknown token passed", "GET /api/v1/courses HTTP/1.1\r\nHost: canvas.test\r\nAuthorization: Bearer test-only-unknown-token\r\n" + ws + "\r\n"},
		{"allowed token", "GET /api/v1/courses HTTP/1.1\r\nHost: canvas.test\r\nAuthorization: Bearer " + tokA + "\r\n" + ws + "\r\n"},
		{"Upgrade without Connection", "GET /socket HTTP/1.1\r\nHost: canvas.test\r\nUpgrade: websocket\r\n\r\n"},
		{"h2c upgrade", "GET /socket HTTP/1.1\r\nHost: canvas.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"},
		{"upstream answers 101 unasked", "GET /always-101 HTTP/1.1\r\nHost: canvas.test\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, echoed := openTunnel(t, in, c.raw)
			if status == http.StatusSwitchingProtocols {
				t.Errorf("the client got 101 and a tunnel (echoed %q)", echoed)
			}
			got := up.one(t)
			for _, name := range []string{"Upgrade", "Http2-Settings"} {
				if v := got.Header.Values(name); len(v) > 0 {
					t.Errorf("the upstream saw %s: %q", name, v)
				}
			}
			for _, v := range got.Header.Values("Connection") {
				if strings.Contains(strings.ToLower(v), "upgrade") {
					t.Errorf("the upstream saw Connection: %q", v)
				}
			}
		})
	}
}

// HTTP/2 extended CONNECT (RFC 8441; Go's server accepts it with
// GODEBUG=http2xconnect=1) is turned by reverse_proxy into a WebSocket
// upgrade: the gate refuses CONNECT outright, in report mode too.
func TestExtendedConnectRefused(t *testing.T) {
	for _, mode := range []string{"enforce", "report"} {
		t.Run(mode, func(t *testing.T) {
			up := tunnelUpstream(t)
			in := startCaddy(t, up, siteConfig{
				KeysJSON: gateKeys(),
				Gate:     "reload_interval 0\n\t\tmode " + mode,
				Global:   "servers {\n\t\tprotocols h1 h2c\n\t}",
				Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok, "GODEBUG=http2xconnect=1"},
			})
			status := h2Raw(t, in.httpPort, [][2]string{
				{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
				{":authority", "canvas.test"}, {":path", "/socket"}, {"sec-websocket-version", "13"},
			})
			if status != http.StatusBadRequest {
				t.Errorf("extended CONNECT: status %d, want 400", status)
			}
			up.none(t)
		})
	}
}
