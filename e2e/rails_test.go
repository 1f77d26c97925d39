package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/rackparity"
)

// The adversarial suite again, with the real Puma 5.6, Rack 2.2 and
// ActionDispatch 6.1 behind Caddy (internal/rackparity's stand-in) instead
// of the recording upstream (issue 12). The recording upstream proves which
// bytes were forwarded; this proves what Rails made of them: for every
// request that reaches it, Rails must see
//
//   - for a key that filters includes, no include or includes value other
//     than "uuid";
//   - no as_user_id unless the key allows masquerading;
//   - the method the gate decided on (no override);
//   - no credential but the one decided: the substituted upstream token for
//     a substitution key (and no access_token parameter), the client's
//     token otherwise, none for a request the gate treated as anonymous;
//   - the host the gate checked.

// railsKey is what the assertions need to know about the key behind a
// test token.
type railsKey struct {
	filters    bool // require_scopes, not allow_includes, enforce mode
	masquerade bool
}

var railsKeys = map[string]railsKey{
	tokA: {filters: true}, tokSub: {filters: true}, tokIncludes: {}, tokUnscoped: {},
	tokDisabled: {filters: true}, tokHosted: {filters: true}, tokExpired: {filters: true},
	tokRevoked: {filters: true}, tokDropped: {filters: true}, tokNarrow: {filters: true},
	tokMasq: {filters: true, masquerade: true}, tokReport: {},
	upstreamTok: {filters: true}, // only ever the substitution key's
}


func startRailsGate(t *testing.T) (*instance, *rackparity.StandIn) {
	t.Helper()
	rackparity.Require(t)
	rails, err := rackparity.StartStandIn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("puma log:\n%s", rails.Log())
		}
		rails.Close()
	})
	in := startCaddy(t, nil, siteConfig{
		KeysJSON:     gateKeys(),
		Gate:         "reload_interval 0",
		Global:       "servers {\n\t\tprotocols h1 h2c\n\t}",
		Env:          []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
		UpstreamAddr: rails.Addr,
	})
	return in, rails
}

// railsExpect is what Rails may see for one forwarded request.
type railsExpect struct {
	method     string // the decided method
	credential string // the decided credential; "" for none
	header     bool   // the credential is in a Bearer header, so Canvas must read exactly it
	substitute bool   // a substitution key: no access_token parameter may be left
	host       string // the host the gate checked
}

// expectFor derives the expectation from the forwarded request a case
// wants (its method and credential) and the Host the client sent.
func expectFor(want *fwd, host string) railsExpect {
	e := railsExpect{method: want.method, host: hostOnly(host)}
	switch {
	case want.auth == bU:
		e.credential, e.header, e.substitute = upstreamTok, true, true
	case strings.HasPrefix(want.auth, "Bearer"):
		e.credential, e.header = strings.TrimLeft(strings.TrimPrefix(want.auth, "Bearer"), " \t"), true
	default:
		// A credential the gate decided on in the query; none otherwise.
		_, query, _ := strings.Cut(want.uri, "?")
		if v, err := url.ParseQuery(query); err == nil {
			e.credential = v.Get("access_token")
		}
	}
	return e
}

// hostOnly drops a numeric port, as Rails' request.host does.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && i+1 < len(h) && strings.Trim(h[i+1:], "0123456789") == "" {
		return h[:i]
	}
	return h
}

// checkRails asserts what Rails read: nothing when want is nil, otherwise
// exactly one request read as expected.
func checkRails(t *testing.T, rails *rackparity.StandIn, want *fwd, e railsExpect) {
	t.Helper()
	got, err := rails.Take()
	if err != nil {
		t.Fatal(err)
	}
	if want == nil {
		if len(got) != 0 {
			t.Fatalf("Rails received %d requests, want none: %s %v", len(got), got[0].Method, got[0].Env["REQUEST_URI"])
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("Rails received %d requests, want 1", len(got))
	}
	checkReading(t, got[0], e)
}

func checkReading(t *testing.T, r rackparity.Reading, e railsExpect) {
	t.Helper()
	if r.Raised != "" {
		// Rails refuses the request: Canvas acts on nothing.
		t.Logf("Rails refused the forwarded request: %s", r.Raised)
		return
	}
	key, known := railsKeys[e.credential]
	if known && key.filters {
		for _, name := range []string{"include", "includes"} {
			if foreign := r.ForeignIncludes(name); len(foreign) > 0 {
				t.Errorf("Rails sees %s values other than uuid: %v", name, foreign)
			}
		}
	}
	if _, ok := r.Param("as_user_id"); ok && e.credential != "" && !key.masquerade {
		t.Errorf("Rails sees as_user_id, which the key does not allow")
	}
	if r.RequestMethod != e.method || r.Overridden {
		t.Errorf("Rails routes %s (overridden %v), the gate decided on %s", r.RequestMethod, r.Overridden, e.method)
	}
	cred, isString := r.CredentialString()
	switch {
	case r.Credential == nil && !e.header:
		// no credential at all, or the decided query credential was
		// stripped: nothing Canvas authenticates
	case !isString || cred != e.credential:
		t.Errorf("Canvas would authenticate a credential other than the one decided (from %q)", r.CredentialSource)
	}
	if _, ok := r.Param("access_token"); ok && e.substitute {
		t.Errorf("an access_token parameter reached Rails with the substituted credential")
	}
	if r.Host != e.host {
		t.Errorf("Rails' host is %q, the gate checked %q", r.Host, e.host)
	}
}

// rawHost is the Host header of a raw HTTP/1.1 request.
func rawHost(raw string) string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Host") {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// TestAdversarialRails runs every adversarial case (h1 and h2c) and every
// raw case against the Rails stand-in.
func TestAdversarialRails(t *testing.T) {
	in, rails := startRailsGate(t)
	h2 := h2cClient()
	start, n := time.Now(), 0
	for _, c := range adversarialCases() {
		for _, proto := range []string{"h1", "h2"} {
			if proto == "h2" && c.h1only {
				continue
			}
			n++
			t.Run(fmt.Sprintf("%s/%s/%s", proto, c.id, c.name), func(t *testing.T) {
				var status int
				var body string
				host := "canvas.test"
				if proto == "h1" {
					status, body = in.send1(t, c.raw1(), c.method)
				} else {
					status, body = in.send2(t, h2, c)
					host = strings.TrimPrefix(in.base, "http://")
				}
				if status != c.status {
					t.Errorf("status %d, want %d; body %s", status, c.status, trunc(body))
				}
				var e railsExpect
				if c.want != nil {
					e = expectFor(c.want, host)
				}
				checkRails(t, rails, c.want, e)
			})
		}
	}
	for _, c := range rawCases() {
		n++
		t.Run("raw/"+c.id+"/"+c.name, func(t *testing.T) {
			method, _, _ := strings.Cut(c.raw, " ")
			status, body := in.send1(t, c.raw, method)
			if status != c.status {
				t.Errorf("status %d, want %d; body %s", status, c.status, trunc(body))
			}
			time.Sleep(20 * time.Millisecond)
			var e railsExpect
			if c.want != nil {
				e = expectFor(c.want, rawHost(c.raw))
			}
			checkRails(t, rails, c.want, e)
		})
	}
	t.Logf("%d requests through Caddy to Puma/Rails in %s", n, time.Since(start).Round(time.Millisecond))
}

// railsBypassCase is a bypass from issue 12: Rails must read nothing the
// gate did not decide on, whatever the gate answers.
type railsBypassCase struct {
	item, name string
	raw        string
	method     string
	token      string // the client's token: its key's rules apply
	host       string // the host the key is bound to, which Rails must see
}

func mpBody(headers ...string) string {
	var b strings.Builder
	b.WriteString("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n")
	for _, h := range headers {
		b.WriteString("--XyZ\r\n" + h + "\r\n\r\nteachers\r\n")
	}
	b.WriteString("--XyZ--\r\n")
	return b.String()
}

func railsBypassCases() []railsBypassCase {
	const A = "/api/v1/courses/7/assignments"
	post := func(token, body string) string {
		return "POST " + A + " HTTP/1.1\r\nHost: canvas.test\r\nAuthorization: Bearer " + token + "\r\n" + ctMP + "\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	getHosted := func(host, extra string) string {
		return "GET /api/v1/courses HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tokHosted + "\r\n" + extra + "\r\n"
	}
	return []railsBypassCase{
		{item: "1", name: "unnamed part named include[] by its Content-Type", method: "POST", token: tokA, host: "canvas.test",
			raw: post(tokA, mpBody("Content-Disposition: form-data; name=\"\"\r\nContent-Type: include"))},
		{item: "1", name: "unnamed part named access_token[] by its Content-Type", method: "POST", token: tokSub, host: "canvas.test",
			raw: post(tokSub, mpBody("Content-Disposition: form-data; name=\"\"\r\nContent-Type: access_token"))},
		{item: "1", name: "unnamed part named as_user_id by its filename", method: "POST", token: tokA, host: "canvas.test",
			raw: post(tokA, mpBody("Content-Disposition: form-data; name=\"\"; filename=\"as_user_id\""))},
		// Rack names it _method, but as a file, which Rack::MethodOverride
		// does not take for a method: passes today, kept as a guard.
		{item: "1", name: "unnamed part named _method by its filename* does not override", method: "POST", token: tokA, host: "canvas.test",
			raw: post(tokA, mpBody("Content-Disposition: form-data; name=\"\"; filename*=UTF-8''_method"))},
		{item: "2", name: "non-numeric Host port with a comma, X-Forwarded-Host sent", method: "GET", token: tokHosted, host: "canvas.example.edu",
			raw: getHosted("canvas.example.edu:x,evil.example", "X-Forwarded-Host: evil.example\r\n")},
		{item: "2", name: "non-numeric Host port with a comma", method: "GET", token: tokHosted, host: "canvas.example.edu",
			raw: getHosted("canvas.example.edu:1,evil.example", "")},
		// Controls: the same shapes the gate reads correctly today.
		{item: "control", name: "named include[] part is filtered", method: "POST", token: tokA, host: "canvas.test",
			raw: post(tokA, mpBody("Content-Disposition: form-data; name=\"include[]\""))},
		{item: "control", name: "hosted key on its host with a numeric port", method: "GET", token: tokHosted, host: "canvas.example.edu",
			raw: getHosted("canvas.example.edu:8443", "")},
	}
}

// TestRailsBypasses sends the issue 12 bypasses: the gate may refuse them
// or forward them, but Rails must not read anything the gate did not
// decide on.
func TestRailsBypasses(t *testing.T) {
	in, rails := startRailsGate(t)
	for _, c := range railsBypassCases() {
		t.Run(c.item+"/"+c.name, func(t *testing.T) {
			status, body := in.send1(t, c.raw, c.method)
			got, err := rails.Take()
			if err != nil {
				t.Fatal(err)
			}
			switch len(got) {
			case 0:
				if status < 400 {
					t.Errorf("status %d but nothing reached Rails", status)
				}
				if c.item == "control" {
					t.Errorf("the control was refused: %d %s", status, trunc(body))
				}
			case 1:
				e := railsExpect{method: c.method, credential: c.token, header: true, host: c.host}
				if c.token == tokSub {
					e.credential, e.substitute = upstreamTok, true
				}
				checkReading(t, got[0], e)
			default:
				t.Fatalf("Rails received %d requests", len(got))
			}
		})
	}
}
