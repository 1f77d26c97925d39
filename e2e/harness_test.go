// Package e2e runs the real Caddy binary (cmd/caddy, with the module) in
// front of a recording Canvas stand-in and asserts both what clients get
// and exactly what the upstream received.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// caddyBin is the binary under test: $CADDY_BIN, or built once in TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	caddyBin = os.Getenv("CADDY_BIN")
	var tmp string
	if caddyBin == "" {
		var err error
		tmp, err = os.MkdirTemp("", "canvas-scopes-e2e")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		caddyBin = filepath.Join(tmp, "caddy")
		cmd := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy")
		cmd.Dir = ".."
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building caddy:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// recorded is one request as the upstream saw it.
type recorded struct {
	Method     string
	RequestURI string // the raw request target on the wire
	Path       string // raw path part of RequestURI
	RawQuery   string
	Header     http.Header
	Body       []byte
	Host       string
	TE         []string
	CL         int64
}

// upstream is the recording Canvas stand-in.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
	// respond, when set, writes the response (for Link headers etc.).
	respond func(w http.ResponseWriter, r *http.Request)
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		path, query, _ := strings.Cut(r.RequestURI, "?")
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{
			Method: r.Method, RequestURI: r.RequestURI, Path: path, RawQuery: query,
			Header: r.Header.Clone(), Body: body, Host: r.Host, TE: r.TransferEncoding, CL: r.ContentLength,
		})
		respond := u.respond
		u.mu.Unlock()
		if respond != nil {
			respond(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// take returns and clears what the upstream has received.
func (u *upstream) take() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reqs
	u.reqs = nil
	return r
}

// one asserts that exactly one request reached the upstream and returns it.
func (u *upstream) one(t testing.TB) recorded {
	t.Helper()
	got := u.take()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests, want 1: %+v", len(got), got)
	}
	return got[0]
}

// none asserts that nothing reached the upstream.
func (u *upstream) none(t testing.TB) {
	t.Helper()
	if got := u.take(); len(got) != 0 {
		t.Fatalf("upstream received %d requests, want none: first %s %s", len(got), got[0].Method, got[0].RequestURI)
	}
}

// instance is one running Caddy.
type instance struct {
	t         testing.TB
	dir       string
	base      string // http://127.0.0.1:port
	admin     string // http://127.0.0.1:adminport
	keysPath  string
	cmd       *exec.Cmd
	log       *bytes.Buffer
	logMu     *sync.Mutex
	client    *http.Client
	httpPort  int
	adminPort int
}

// freePort returns a port that was free just now and that no earlier call
// in this test process returned. The kernel may hand a just-closed port out
// again at once: a site and its admin API once got the same port, and with
// SO_REUSEPORT both bound it, so requests meant for the site reached the
// admin API.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatal("no fresh free port after 100 tries")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// lockedBuffer lets the test read Caddy's log while Caddy writes it.
type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (b lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// siteConfig is the part of the Caddyfile inside the gate's site block; it
// may use {UPSTREAM} and {KEYS}.
type siteConfig struct {
	Global   string // extra global options
	Gate     string // extra lines inside canvas_scopes { }
	Site     string // extra site directives
	Env      []string
	KeysJSON string
	// Database, when set, replaces the keys_file line with
	// "database <Database>" (fleet tests).
	Database string
	// UpstreamAddr is the reverse_proxy target (host:port) when no
	// recording upstream is given, e.g. the Rails stand-in.
	UpstreamAddr string
}

// startCaddy writes the keys file and a Caddyfile with the gate in front of
// up, starts the binary and waits until it serves.
func startCaddy(t testing.TB, up *upstream, sc siteConfig) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, dir: dir, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	in.keysPath = filepath.Join(dir, "keys.json")
	if err := os.WriteFile(in.keysPath, []byte(sc.KeysJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	in.httpPort, in.adminPort = freePort(t), freePort(t)
	upAddr := sc.UpstreamAddr
	if up != nil {
		upAddr = strings.TrimPrefix(up.URL, "http://")
	}
	source := "keys_file " + in.keysPath
	if sc.Database != "" {
		source = "database " + sc.Database
	}
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	skip_install_trust
	persist_config off
	%s
}
http://:%d {
	canvas_scopes {
		%s
		%s
	}
	%s
	reverse_proxy %s
}
`, in.adminPort, sc.Global, in.httpPort, source, sc.Gate, sc.Site, upAddr)
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	in.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	in.cmd.Env = append(in.cmd.Env, sc.Env...)
	lb := lockedBuffer{mu: in.logMu, buf: in.log}
	in.cmd.Stdout, in.cmd.Stderr = lb, lb
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.cmd.Process.Kill()
		_, _ = in.cmd.Process.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", in.logText())
		}
	})
	in.base = fmt.Sprintf("http://127.0.0.1:%d", in.httpPort)
	in.admin = fmt.Sprintf("http://127.0.0.1:%d", in.adminPort)
	in.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(in.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.httpPort)); err == nil {
				c.Close()
				break
			}
		}
		if in.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("caddy did not start:\n%s", in.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return in
}

func (in *instance) logText() string {
	in.logMu.Lock()
	defer in.logMu.Unlock()
	return in.log.String()
}

// do sends a request built by the test through the gate.
func (in *instance) do(req *http.Request) (*http.Response, []byte) {
	in.t.Helper()
	resp, err := in.client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// request builds a request to the gate with an optional bearer token.
func (in *instance) request(method, target, token string, body io.Reader) *http.Request {
	in.t.Helper()
	req, err := http.NewRequest(method, in.base+target, body)
	if err != nil {
		in.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// rawRequest writes bytes on a fresh TCP connection and returns the raw
// response: for targets Go's client would normalise.
func (in *instance) rawRequest(raw string) string {
	in.t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.httpPort))
	if err != nil {
		in.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		in.t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// rawStatus extracts the status code from a raw HTTP response.
func rawStatus(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// runCaddy runs the binary with args (adapt, validate, the CLI) and returns
// its combined output.
func runCaddy(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runCaddyIn is runCaddy with a working directory.
func runCaddyIn(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}
