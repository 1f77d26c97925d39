package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// limitsGlobal is the server hardening recommended in SECURITY.md: bounded
// header size and header read time, so slow or oversized clients cannot
// hold the instance.
const limitsGlobal = `servers {
		protocols h1 h2c
		max_header_size 16KiB
		timeouts {
			read_header 2s
			read_body 10s
			idle 30s
		}
	}`

func startLimitsGate(t *testing.T) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 0\n\t\tmax_body_size 4KiB",
		Global:   limitsGlobal,
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	return in, up
}

func jsonDepth(n int) string {
	return `{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}

// TestLimits: every size and count bound answers 4xx and forwards
// nothing; just under each bound is forwarded exactly.
func TestLimits(t *testing.T) {
	in, up := startLimitsGate(t)
	const A = "/api/v1/courses/7/assignments"
	const C = "/api/v1/courses"
	p1000 := manyParams(1000, "&")
	cases := []advCase{
		{id: "L-header", name: "request line over max_header_size", method: "GET", target: C + "?" + manyParams(3000, "&"), token: tokA, status: 431},
		{id: "L-header", name: "one header over max_header_size", method: "GET", target: C, token: tokA, hdr: []string{"X-Big: " + strings.Repeat("b", 20<<10)}, status: 431},
		{id: "L-header", name: "many headers over max_header_size", method: "GET", target: C, token: tokA, hdr: strings.Split(strings.TrimSuffix(strings.Repeat("X-H: 0123456789012345678901234567890123456789\n", 500), "\n"), "\n"), status: 431},
		{id: "L-header", name: "header just under max_header_size", method: "GET", target: C, token: tokA, hdr: []string{"X-Big: " + strings.Repeat("b", 8<<10)}, status: 200, want: get(C)},
		{id: "L-body", name: "form body over max_body_size (Content-Length)", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "a=" + strings.Repeat("x", 5000), status: 413},
		{id: "L-body", name: "JSON body over max_body_size", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"a":"` + strings.Repeat("x", 5000) + `"}`, status: 413},
		{id: "L-body", name: "multipart body over max_body_size", method: "POST", target: A, token: tokA, hdr: []string{ctMP}, body: mp("a", strings.Repeat("x", 5000)), status: 413},
		{id: "L-body", name: "form body at max_body_size is filtered", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "include[]=x&a=" + strings.Repeat("x", 4096-14), status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=" + strings.Repeat("x", 4096-14), auth: bA}},
		{id: "L-body", name: "opaque body over max_body_size streams untouched", method: "POST", target: A, token: tokA, hdr: []string{"Content-Type: application/octet-stream"}, body: strings.Repeat("z", 6000), status: 200,
			want: &fwd{method: "POST", uri: A, body: strings.Repeat("z", 6000), auth: bA, ct: "application/octet-stream"}},
		{id: "L-params", name: "1,001 query parameters", method: "GET", target: C + "?" + manyParams(1001, "&"), token: tokA, status: 400},
		{id: "L-params", name: "1,000 query parameters", method: "GET", target: C + "?" + p1000, token: tokA, status: 200, want: get(C + "?" + p1000)},
		{id: "L-params", name: "500 query + 501 body parameters", method: "POST", target: A + "?" + manyParams(500, "&"), token: tokA, hdr: []string{ctForm}, body: manyParams(501, "&"), status: 400},
		{id: "L-params", name: "parameter name of 1,025 bytes", method: "GET", target: C + "?" + strings.Repeat("k", 1025) + "=1", token: tokA, status: 400},
		{id: "L-params", name: "parameter name of 1,024 bytes", method: "GET", target: C + "?" + strings.Repeat("k", 1024) + "=1", token: tokA, status: 200, want: get(C + "?" + strings.Repeat("k", 1024) + "=1")},
		{id: "L-params", name: "JSON nested 65 deep", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: jsonDepth(65), status: 400},
		{id: "L-params", name: "JSON nested 60 deep", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: jsonDepth(60), status: 200,
			want: &fwd{method: "POST", uri: A, body: jsonDepth(60), auth: bA}},
	}
	for _, c := range cases {
		t.Run(c.id+"/"+c.name, func(t *testing.T) {
			status, body := in.send1(t, c.raw1(), c.method)
			if status != c.status {
				t.Errorf("status %d, want %d; body %s", status, c.status, trunc(body))
			}
			checkUpstream(t, up, c.want)
		})
	}
	// A chunked form body without Content-Length is cut off at the limit.
	t.Run("L-body/chunked form body over max_body_size", func(t *testing.T) {
		chunk := "a=" + strings.Repeat("x", 3000)
		raw := "POST " + A + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\r\n" + ctForm + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", len(chunk), chunk, len(chunk), chunk)
		if status, body := in.send1(t, raw, "POST"); status != 413 {
			t.Errorf("status %d, want 413; %s", status, trunc(body))
		}
		checkUpstream(t, up, nil)
	})
}

// TestSlowAndOversizedClients: while 40 clients dribble headers
// (slowloris) and 4 clients push oversized bodies in a loop, a normal
// client keeps getting answers, the slow connections are cut at the
// read_header timeout, and only the normal client's requests reach the
// upstream. Loopback only, bounded loops; it finishes in about 6 s.
func TestSlowAndOversizedClients(t *testing.T) {
	in, up := startLimitsGate(t)
	addr := fmt.Sprintf("127.0.0.1:%d", in.httpPort)
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// Slowloris: one header byte every 100 ms, never finishing.
	const slow = 40
	var cut atomic.Int32
	start := time.Now()
	var cutAfter [slow]time.Duration
	for i := 0; i < slow; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET /api/v1/courses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tokA+"\r\nX-Slow: ")
			for n := 0; n < 80; n++ { // at most 8 s
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte("a")); err != nil {
					cut.Add(1)
					cutAfter[i] = time.Since(start)
					return
				}
				// The server closes (or answers 408) at read_header.
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				var b [1]byte
				if _, err := c.Read(b[:]); err == io.EOF || (err == nil) {
					cut.Add(1)
					cutAfter[i] = time.Since(start)
					return
				}
			}
		}(i)
	}

	// Oversized bodies: a 50 MB Content-Length form (refused before it is
	// read) and a 1 MB chunked form (read to the limit, then refused).
	var big, bigOK, bigReset, bigWrong atomic.Int32
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; n < 20; n++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				head := "POST /api/v1/courses/7/assignments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\r\n" + ctForm + "\r\n"
				if i%2 == 0 {
					_, _ = io.WriteString(c, head+"Content-Length: 52428800\r\n\r\na=")
				} else {
					_, _ = io.WriteString(c, head+"Transfer-Encoding: chunked\r\n\r\n")
					chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("y", 64<<10))
					for k := 0; k < 16; k++ {
						if _, err := io.WriteString(c, chunk); err != nil {
							break
						}
					}
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				big.Add(1)
				switch {
				case err != nil:
					// The server answered 413 and closed while the
					// client was still sending: TCP resets the
					// connection before the answer is read.
					bigReset.Add(1)
				case resp.StatusCode == 413:
					bigOK.Add(1)
					resp.Body.Close()
				default:
					bigWrong.Add(1)
					resp.Body.Close()
				}
				c.Close()
			}
		}(i)
	}

	// The normal client.
	good, worst := 0, time.Duration(0)
	deadline := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		resp, body := in.do(in.request("GET", "/api/v1/courses?page=1", tokA, nil))
		if d := time.Since(t0); d > worst {
			worst = d
		}
		if resp.StatusCode != 200 {
			t.Fatalf("normal client got %d during the attack: %s", resp.StatusCode, body)
		}
		good++
		time.Sleep(50 * time.Millisecond)
	}
	// Give the slow connections time to hit read_header (2 s) and be cut.
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	if good < 20 || worst > 2*time.Second {
		t.Errorf("normal client: %d answers, worst latency %v", good, worst)
	}
	if n := cut.Load(); n < slow {
		t.Errorf("only %d of %d slowloris connections were cut by read_header", n, slow)
	}
	for i, d := range cutAfter {
		if d != 0 && (d < 1500*time.Millisecond || d > 4500*time.Millisecond) {
			t.Errorf("slow connection %d cut after %v, want about the 2 s read_header timeout", i, d)
		}
	}
	if bigOK.Load() == 0 || bigWrong.Load() != 0 || bigOK.Load()+bigReset.Load() != big.Load() {
		t.Errorf("oversized bodies: %d of %d answered 413, %d reset, %d answered otherwise", bigOK.Load(), big.Load(), bigReset.Load(), bigWrong.Load())
	}
	// Only the normal client's requests were forwarded, each exactly.
	for _, r := range up.take() {
		if r.Method != "GET" || r.RequestURI != "/api/v1/courses?page=1" || len(r.Body) != 0 {
			t.Errorf("unexpected upstream request %s %s (%d body bytes)", r.Method, trunc(r.RequestURI), len(r.Body))
		}
	}
	t.Logf("normal client: %d answers, worst %v; slowloris cut: %d/%d; oversized: %d/%d answered 413 (%d reset mid-upload)", good, worst, cut.Load(), slow, bigOK.Load(), big.Load(), bigReset.Load())
}

// A body too large to inspect must not carry a credential past the gate
// to the few non-API endpoints where Canvas reads access_token from the
// body (docs/canvas-semantics.md#where-canvas-checks: DELETE /login/oauth2/token,
// login#session_token, and in newer Canvas file downloads). tokNarrow may only
// GET /api/v1/courses; streamed uninspected, Canvas would run
// /login/session_token on it (GET form bodies are parsed by Rack too).
func TestOversizedBodyCannotSmuggleACredential(t *testing.T) {
	in, up := startLimitsGate(t)
	body := "access_token=" + tokNarrow + "&pad=" + strings.Repeat("p", 6000)
	for _, c := range []advCase{
		{id: "L-body+Q7", name: "GET /login/session_token", method: "GET", target: "/login/session_token", hdr: []string{ctForm}, body: body},
		{id: "L-body+Q7", name: "GET file download", method: "GET", target: "/courses/1/files/2/download", hdr: []string{ctForm}, body: body},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _ := in.send1(t, c.raw1(), c.method)
			if status != 413 {
				t.Errorf("status %d, want 413", status)
			}
			checkUpstream(t, up, nil)
		})
	}
}
