package e2e

// The README's demo (Caddyfile.example with examples/keys.json), run as
// written except for its ports: the stand-in shows which credential it
// received, the machine-to-machine walkthrough works with the demo client,
// and the access log carries the gate's decision (the audit recipe).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoAsDocumented(t *testing.T) {
	repo, _ := filepath.Abs("..")
	src, err := os.ReadFile(filepath.Join(repo, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	gatePort, standInPort, adminPort := freePort(t), freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		"admin localhost:2019", fmt.Sprintf("admin 127.0.0.1:%d", adminPort),
		"http://:8080", fmt.Sprintf("http://:%d", gatePort),
		"reverse_proxy 127.0.0.1:8081", fmt.Sprintf("reverse_proxy 127.0.0.1:%d", standInPort),
		"http://:8081", fmt.Sprintf("http://:%d", standInPort),
	).Replace(string(src))
	for _, line := range strings.Split(cfg, "\n") {
		if line = strings.TrimSpace(line); !strings.HasPrefix(line, "#") && (strings.Contains(line, "8080") || strings.Contains(line, "8081") || strings.Contains(line, "2019")) {
			t.Fatalf("Caddyfile.example names a port this test does not move: %s", line)
		}
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "Caddyfile")
	writeFile(t, cfgPath, cfg)
	// Run from the repository root, as the README says.
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var log syncWriter
	var logText strings.Builder
	log.w = &logText
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", logText.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", gatePort)
	client := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, func() bool {
		resp, err := client.Get(base + "/api/v1/courses")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	get := func(token, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// Credential substitution is visible: the stand-in names the credential.
	resp := get("demo-token-vendor-gateway", "/api/v1/courses/1/assignments")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("X-Canvas-Credential"), "demo Canvas token") {
		t.Errorf("substituted request: %d, X-Canvas-Credential %q", resp.StatusCode, resp.Header.Get("X-Canvas-Credential"))
	}
	resp = get("demo-token-vendor-a", "/api/v1/courses?include[]=teachers&per_page=2")
	if resp.StatusCode != 200 || resp.Header.Get("X-Canvas-Saw") != "GET /api/v1/courses?per_page=2" || !strings.Contains(resp.Header.Get("X-Canvas-Credential"), "vendor-a's own demo token") {
		t.Errorf("vendor-a: %d, saw %q, credential %q", resp.StatusCode, resp.Header.Get("X-Canvas-Saw"), resp.Header.Get("X-Canvas-Credential"))
	}
	for _, h := range []string{resp.Header.Get("X-Canvas-Credential"), resp.Header.Get("X-Canvas-Saw")} {
		if strings.Contains(h, "demo-only-canvas-token") || strings.Contains(h, "demo-token-") {
			t.Errorf("the stand-in shows a token: %q", h)
		}
	}

	// The README's machine-to-machine walkthrough with the demo client.
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", base+"/login/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("reporting-job", "demo-only-client-secret")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(tr.AccessToken, "cgw1.") {
		t.Fatalf("demo client's token request: %d", resp.StatusCode)
	}
	resp = get(tr.AccessToken, "/api/v1/courses")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("X-Canvas-Credential"), "demo Canvas token") {
		t.Errorf("gateway token: %d, credential %q", resp.StatusCode, resp.Header.Get("X-Canvas-Credential"))
	}
	if resp := get(tr.AccessToken, "/api/v1/accounts"); resp.StatusCode != 401 {
		t.Errorf("gateway token outside the key's scopes: %d", resp.StatusCode)
	}

	// A denial, then the access log: every line of the gate's site has the
	// key, token id, decision and scope (the audit recipe's fields).
	if resp := get("demo-token-vendor-a", "/api/v1/accounts"); resp.StatusCode != 401 {
		t.Errorf("vendor-a on /api/v1/accounts: %d", resp.StatusCode)
	}
	want := map[string]bool{"allowed url:GET|/api/v1/courses": false, "insufficient_scope ": false}
	waitFor(t, func() bool {
		log.mu.Lock()
		text := logText.String()
		log.mu.Unlock()
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "handled request" {
				continue
			}
			if m["developer_key"] == "vendor-a" && m["token_id"] == sha("demo-token-vendor-a")[:12] {
				want[fmt.Sprintf("%v %v", m["decision"], m["scope"])] = true
			}
		}
		return want["allowed url:GET|/api/v1/courses"] && want["insufficient_scope "]
	})
	if strings.Contains(logText.String(), "demo-only-canvas-token") || strings.Contains(logText.String(), tr.AccessToken) {
		t.Error("a token is in the demo's log")
	}
}
