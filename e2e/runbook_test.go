package e2e

// What an operator relies on when running the gate: failed keys-file loads
// in the log, a rotated {file.*} secret picked up by polling, and the
// README's metrics table matching what Caddy serves.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// storeLogLines returns the keystore's JSON log lines with msg.
func storeLogLines(in *instance, msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(in.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m["logger"] == "canvas_scopes" && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

const (
	msgLoadFailed = "keys file reload failed; keeping the last good store"
	msgRecovered  = "keys file recovered; the new store is in force"
)

// A failed load is logged once with every error's file:line, whether it
// was forced (POST /canvas_scopes/reload) or found by polling; the poller
// does not take a forced failure as seen and stay silent; the first good
// load after it logs the recovery.
func TestFailedLoadsAreLoggedOnceAndRecoveryToo(t *testing.T) {
	in, _ := startGate(t, "")
	good, err := os.ReadFile(in.keysPath)
	if err != nil {
		t.Fatal(err)
	}
	// Two problems on two lines.
	broken := "{\"developer_keys\": [{\"id\": \"x\", \"scopes\": [\"url:GET|/api/v1/nope\"]},\n{\"id\": \"y\", \"scopes\": [], \"colour\": 1}]}"
	writeFile(t, in.keysPath, broken)
	resp, err := http.Post(in.admin+"/canvas_scopes/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Fatalf("forced reload of a broken file: %d, want 422", resp.StatusCode)
	}
	checkFailure := func(lines []map[string]any, trigger string) {
		t.Helper()
		last := lines[len(lines)-1]
		if last["trigger"] != trigger || last["keys_file"] != in.keysPath || last["level"] != "error" {
			t.Errorf("failure line %v", last)
		}
		errs, _ := last["errors"].([]any)
		var text []string
		for _, e := range errs {
			text = append(text, fmt.Sprint(e))
		}
		want := []string{in.keysPath + ":1: developer_keys[0].scopes[0]: ", in.keysPath + ":2: developer_keys[1].colour: unknown field"}
		if len(text) != 2 || !strings.HasPrefix(text[0], want[0]) || !strings.HasPrefix(text[1], want[1]) {
			t.Errorf("errors %q, want the prefixes %q", text, want)
		}
	}
	waitFor(t, func() bool { return len(storeLogLines(in, msgLoadFailed)) == 1 })
	checkFailure(storeLogLines(in, msgLoadFailed), "forced")
	// The poller (every 100ms) sees the same broken file: nothing more.
	time.Sleep(600 * time.Millisecond)
	if n := len(storeLogLines(in, msgLoadFailed)); n != 1 {
		t.Fatalf("%d failure lines after polling the same broken file, want 1", n)
	}
	// Another broken version, found by polling: logged once.
	writeFile(t, in.keysPath, broken+"\n")
	waitFor(t, func() bool { return len(storeLogLines(in, msgLoadFailed)) == 2 })
	checkFailure(storeLogLines(in, msgLoadFailed), "poll")
	time.Sleep(600 * time.Millisecond)
	if n := len(storeLogLines(in, msgLoadFailed)); n != 2 {
		t.Fatalf("%d failure lines, want 2", n)
	}
	if len(storeLogLines(in, msgRecovered)) != 0 {
		t.Fatal("recovery logged before any good load")
	}
	// Fixed: one recovery line, and none for later good loads.
	writeFile(t, in.keysPath, string(good))
	waitFor(t, func() bool { return len(storeLogLines(in, msgRecovered)) == 1 })
	if r := storeLogLines(in, msgRecovered)[0]; r["failed_loads"] != float64(2) || r["keys_file"] != in.keysPath {
		t.Errorf("recovery line %v, want failed_loads 2", r)
	}
	loaded := len(storeLogLines(in, "keys file loaded"))
	writeFile(t, in.keysPath, string(good)+"\n")
	waitFor(t, func() bool { return len(storeLogLines(in, "keys file loaded")) > loaded })
	if n := len(storeLogLines(in, msgRecovered)); n != 1 {
		t.Errorf("%d recovery lines after a second good load, want 1", n)
	}
}

// An upstream_token read from {file.*} is rotated by rewriting the file:
// the next poll reloads it, without touching the keys file or forcing a
// reload, and the new token never appears in the log.
func TestFileSecretRotationPickedUpByPolling(t *testing.T) {
	const oldTok, newTok = "test-only-canvas-token-before-rotation", "test-only-canvas-token-after-rotation"
	dir := t.TempDir()
	secret := filepath.Join(dir, "canvas-token")
	writeFile(t, secret, oldTok+"\n")
	keys := fmt.Sprintf(`{"developer_keys": [{"id": "sub", "scopes": ["url:GET|/api/v1/courses"], "upstream_token": "{file.%s}"}],
"tokens": [{"sha256": "%s", "developer_key": "sub"}]}`, secret, sha(tokA))
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{KeysJSON: keys, Gate: "reload_interval 200ms"})
	get := func() string {
		t.Helper()
		resp, body := in.do(in.request("GET", "/api/v1/courses", tokA, nil))
		if resp.StatusCode != 200 {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		return up.one(t).Header.Get("Authorization")
	}
	if got := get(); got != "Bearer "+oldTok {
		t.Fatalf("upstream saw %q before the rotation", got)
	}
	writeFile(t, secret, newTok+"\n")
	rotated := time.Now()
	deadline := rotated.Add(2 * time.Second) // ten poll intervals
	for get() != "Bearer "+newTok {
		if time.Now().After(deadline) {
			t.Fatal("the rotated upstream token was not picked up by polling within 2s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("rotated upstream token in force after %s (reload_interval 200ms)", time.Since(rotated).Round(time.Millisecond))
	// A broken keys file, then the same good content again: the secret is
	// still watched, and a second rotation is picked up.
	good, err := os.ReadFile(in.keysPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, in.keysPath, "{")
	waitFor(t, func() bool { return len(storeLogLines(in, msgLoadFailed)) == 1 })
	writeFile(t, in.keysPath, string(good))
	waitFor(t, func() bool { return len(storeLogLines(in, msgRecovered)) == 1 })
	const thirdTok = "test-only-canvas-token-second-rotation"
	writeFile(t, secret, thirdTok+"\n")
	deadline = time.Now().Add(2 * time.Second)
	for get() != "Bearer "+thirdTok {
		if time.Now().After(deadline) {
			t.Fatal("a rotation after a failed and recovered load was not picked up within 2s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A secret file that disappears is a failed load; the last good store
	// (with the rotated token) keeps serving.
	if err := os.Remove(secret); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(storeLogLines(in, msgLoadFailed)) == 2 })
	if got := get(); got != "Bearer "+thirdTok {
		t.Errorf("after a failed load the upstream saw %q", got)
	}
	if log := in.logText(); strings.Contains(log, "test-only-canvas-token") {
		t.Error("an upstream token appears in Caddy's log")
	}
}

// readmeMetrics returns the metric names in the README's Monitoring table.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "\n## Monitoring")
	if start < 0 {
		t.Fatal("README has no ## Monitoring section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	names := map[string]bool{}
	name := regexp.MustCompile("`(caddy_canvas_scopes_[a-z_]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `caddy_canvas_scopes_") {
			continue // only the table's rows
		}
		cell := strings.SplitN(line, "|", 3)[1]
		for _, m := range name.FindAllStringSubmatch(cell, -1) {
			names[m[1]] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("no metrics table in the README's Monitoring section")
	}
	return names
}

// servedFamilies returns the caddy_canvas_scopes_ metric families in a
// scrape (histogram series folded into their family).
func servedFamilies(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "# TYPE caddy_canvas_scopes_") {
			continue
		}
		out[strings.Fields(line)[2]] = true
	}
	return out
}

// The metrics Caddy serves with every feature in use (decisions, OAuth
// tokens, confinement look-ups, the shared database) are exactly the
// README's table.
func TestREADMEMetricsTableMatchesServedMetrics(t *testing.T) {
	documented := readmeMetrics(t)
	served := map[string]bool{}

	in, up := startOpsGate(t, "")
	driveAllDecisions(t, in, up, 1)
	for name := range servedFamilies(scrape(t, in)) {
		served[name] = true
	}

	oa, _ := startOAuthGate(t, oaSigningLine)
	tr := oaToken(t, oa, "job-1", oaSecret1, "", true)
	oaCall(t, oa, "GET", "/api/v1/courses", tr.AccessToken)
	oaPost(oa, oaTokenPath, nil, "job-1", "wrong-secret")
	for name := range servedFamilies(scrape(t, oa)) {
		served[name] = true
	}

	ct := newCanvasTree(t)
	cup := newUpstream(t)
	conf := startConfined(t, ct, cup, "5m")
	conf.do(conf.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil))
	conf.do(conf.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil))
	for name := range servedFamilies(scrape(t, conf)) {
		served[name] = true
	}

	// A gate on a database serves the shared store's metrics.
	db := startFleetInstance(t, newUpstream(t), fleetDatabase(t, fleetKeys(vendorScopes, true)), "")
	status(t, db, fleetStaticToken)
	for name := range servedFamilies(scrape(t, db)) {
		served[name] = true
	}

	var missing, extra []string
	for name := range served {
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	for name := range documented {
		if !served[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("served but not in the README's metrics table: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("in the README's metrics table but not served: %v", extra)
	}
	t.Logf("%d metric families served and documented", len(served))
}

// CanvasScopesEmptyStore, evaluated by a real Prometheus from alerts.yml:
// silent on a valid machine-to-machine-only keys file (clients, no
// tokens), pending once nothing can authenticate or no key is left.
func TestEmptyStoreAlertOnlyWhenNothingCanAuthenticate(t *testing.T) {
	prometheus := opsTool(t, "prometheus")
	alertsPath, _ := filepath.Abs("../examples/prometheus/alerts.yml")
	m2mOnly := fmt.Sprintf(`{"developer_keys": [{"id": "m2m", "scopes": [%s], "upstream_token": "{env.TEST_UPSTREAM_TOKEN}"}],
"clients": [{"client_id": "job-1", "secret_sha256": "%s", "developer_key": "m2m"}]}`, vendorScopes, sha(oaSecret1))
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{KeysJSON: m2mOnly, Gate: "reload_interval 100ms", Env: []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok}})
	base := startPrometheus(t, prometheus, alertsPath, in.adminPort)

	rule := func() promRule {
		t.Helper()
		for _, r := range promRules(t, base) {
			if r.Name == "CanvasScopesEmptyStore" {
				return r
			}
		}
		t.Fatal("alerts.yml has no CanvasScopesEmptyStore")
		return promRule{}
	}
	scraped := func(expr string) {
		t.Helper()
		waitFor(t, func() bool { return len(promQuery(t, base, expr)) > 0 })
	}
	scraped(`caddy_canvas_scopes_store_clients == 1 and caddy_canvas_scopes_store_tokens == 0`)
	// Two rule evaluations (every second) on that state.
	time.Sleep(2500 * time.Millisecond)
	r := rule()
	if res := promQuery(t, base, r.Query); len(res) != 0 || r.State != "inactive" {
		t.Fatalf("CanvasScopesEmptyStore on a machine-to-machine-only file: state %s, %d series", r.State, len(res))
	}

	for _, tc := range []struct{ name, keys string }{
		{"a key, no tokens, no clients", fmt.Sprintf(`{"developer_keys": [{"id": "m2m", "scopes": [%s]}]}`, vendorScopes)},
		{"no keys", `{"developer_keys": []}`},
	} {
		writeFile(t, in.keysPath, tc.keys)
		scraped(`caddy_canvas_scopes_store_clients == 0`)
		waitFor(t, func() bool { r := rule(); return r.State == "pending" || r.State == "firing" })
		if res := promQuery(t, base, rule().Query); len(res) != 1 || res[0].Metric["keys_file"] != in.keysPath {
			t.Errorf("%s: the alert's expression gave %v", tc.name, res)
		}
		// Back to the machine-to-machine file: the alert clears.
		writeFile(t, in.keysPath, m2mOnly+" ")
		scraped(`caddy_canvas_scopes_store_clients == 1`)
		waitFor(t, func() bool { return rule().State == "inactive" })
	}
}

// validate resolves {env.*} and {file.*} secrets as `caddy run` does: an
// unresolvable one is a problem naming the field and line, never the
// value; --skip-secrets checks the rest on a machine without them.
func TestCLIValidateResolvesSecrets(t *testing.T) {
	const fileSecret = "test-only-canvas-token-in-a-file"
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "canvas-token")
	writeFile(t, secretFile, fileSecret+"\n")
	keys := cliKeys(t, fmt.Sprintf(`{"developer_keys": [
{"id": "env", "scopes": [], "upstream_token": "{env.TEST_RUNBOOK_CANVAS_TOKEN}"},
{"id": "file", "scopes": [], "upstream_token": "{file.%s}"}
]}`, secretFile))
	out, errOut, code := runCLI(t, "", "validate", keys)
	if code != 1 || out != "" || !strings.Contains(errOut, keys+":2: developer_keys[0].upstream_token: could not be resolved") || strings.Contains(errOut, "developer_keys[1]") {
		t.Errorf("unset env secret: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(errOut, fileSecret) || strings.Contains(errOut, "TEST_RUNBOOK_CANVAS_TOKEN") {
		t.Errorf("validate printed a secret or its placeholder: %q", errOut)
	}
	env := []string{"TEST_RUNBOOK_CANVAS_TOKEN=test-only-canvas-token-in-env"}
	if out, errOut, code := runCLIEnv(t, env, "", "validate", keys); code != 0 || !strings.HasSuffix(out, "; secrets resolved\n") || strings.Contains(out+errOut, "test-only-canvas-token") {
		t.Errorf("resolvable secrets: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if err := os.Remove(secretFile); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLIEnv(t, env, "", "validate", keys); code != 1 || !strings.Contains(errOut, keys+":3: developer_keys[1].upstream_token: could not be resolved") {
		t.Errorf("missing secret file: code %d, stderr %q", code, errOut)
	}
	if out, errOut, code := runCLI(t, "", "validate", "--skip-secrets", keys); code != 0 || !strings.HasSuffix(out, "; secrets not resolved (--skip-secrets)\n") {
		t.Errorf("--skip-secrets: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// explain takes the token id a log line carries, or the token on stdin,
// as well as the sha256; all three name the same token.
func TestCLIExplainByTokenIDAndStdin(t *testing.T) {
	keys := cliKeys(t, gateKeys())
	id := sha(tokA)[:12]
	want := "decision:        allowed"
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"sha256", "", []string{"--token-sha256", sha(tokA)}},
		{"token id", "", []string{"--token-id", id}},
		{"token id, upper case", "", []string{"--token-id", strings.ToUpper(id)}},
		{"stdin", tokA + "\n", []string{"--token-stdin"}},
	} {
		args := append(append([]string{"explain", "--keys", keys}, tc.args...), "GET", "/api/v1/courses")
		out, errOut, code := runCLI(t, tc.stdin, args...)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "token:           "+id) {
			t.Errorf("%s: code %d, stdout %q, stderr %q", tc.name, code, out, errOut)
		}
		if strings.Contains(out+errOut, tokA) {
			t.Errorf("%s: explain printed the token", tc.name)
		}
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		stder string
	}{
		{"unregistered id", []string{"--token-id", "0123456789ab"}, 1, "no token in"},
		{"short id", []string{"--token-id", "0123"}, 2, "12 hex digits"},
		{"two ways", []string{"--token-id", id, "--token-sha256", sha(tokA)}, 2, "exactly one"},
		{"none", nil, 2, "exactly one"},
	} {
		args := append(append([]string{"explain", "--keys", keys}, tc.args...), "GET", "/api/v1/courses")
		out, errOut, code := runCLI(t, "", args...)
		if code != tc.code || !strings.Contains(errOut, tc.stder) || out != "" {
			t.Errorf("%s: code %d, stdout %q, stderr %q; want %d and %q", tc.name, code, out, errOut, tc.code, tc.stder)
		}
	}
	if _, errOut, code := runCLI(t, "", "explain", "--keys", keys, "--token-stdin", "GET", "/api/v1/courses"); code != 2 || !strings.Contains(errOut, "no token on standard input") {
		t.Errorf("empty stdin: code %d, stderr %q", code, errOut)
	}
}
