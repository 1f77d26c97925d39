package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

var (
	keyA = []byte("test-only-signing-key-A-0123456789abcdef")
	keyB = []byte("test-only-signing-key-B-0123456789abcdef")
	t0   = time.Unix(1_700_000_000, 0)
)

func testClaims() Claims {
	return Claims{
		ID: [16]byte{1, 2, 3}, KeyID: "vendor-a", ClientID: "job-1",
		Scopes:   Refs([]string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}),
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
		SecretGen: GenOf(sha256.Sum256([]byte("secret"))),
	}
}

func mustSigner(t testing.TB, keys ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	s := mustSigner(t, keyA)
	want := testClaims()
	tok, err := s.Issue(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, Prefix) || strings.Count(tok, ".") != 2 {
		t.Fatalf("token shape: %q", tok)
	}
	got, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want.SigningKey = KeyID(keyA)
	if got.ID != want.ID || got.KeyID != want.KeyID || got.ClientID != want.ClientID ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.SecretGen != want.SecretGen || got.SigningKey != want.SigningKey || !slices.Equal(got.Scopes, want.Scopes) {
		t.Fatalf("claims differ:\n got %+v\nwant %+v", got, want)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	old := mustSigner(t, keyA)
	tok, _ := old.Issue(testClaims())
	if _, err := mustSigner(t, keyB, keyA).Verify(tok); err != nil {
		t.Fatalf("[new, old] must verify a token of old: %v", err)
	}
	if _, err := mustSigner(t, keyB).Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("[new] must not verify a token of old: %v", err)
	}
	newTok, _ := mustSigner(t, keyB, keyA).Issue(testClaims())
	if _, err := mustSigner(t, keyB).Verify(newTok); err != nil {
		t.Fatalf("the first key signs: %v", err)
	}
}

func TestNewSignerRejectsShortKeysWithoutPrintingThem(t *testing.T) {
	short := "test-only-short-key"
	_, err := NewSigner([][]byte{keyA, []byte(short)})
	if err == nil || strings.Contains(err.Error(), short) || !strings.Contains(err.Error(), "signing key 2") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewSigner(nil); err == nil {
		t.Fatal("no keys must be an error")
	}
}

func TestForgedAndTruncatedTokens(t *testing.T) {
	s := mustSigner(t, keyA)
	tok, _ := s.Issue(testClaims())
	p, mac, _ := strings.Cut(strings.TrimPrefix(tok, Prefix), ".")
	raw, _ := b64.DecodeString(p)

	// A payload naming another client, re-encoded but signed with a key
	// we do not have.
	other := testClaims()
	other.ClientID = "someone-else"
	forger := mustSigner(t, []byte("test-only-attacker-key-0123456789abcdef"))
	forged, _ := forger.Issue(other)
	// Same key id as ours, attacker's MAC.
	c2 := raw
	cases := map[string]string{
		"truncated":             tok[:len(tok)-5],
		"no signature":          Prefix + p,
		"empty signature":       Prefix + p + ".",
		"other key":             forged,
		"swapped payload":       Prefix + b64.EncodeToString(append(append([]byte{}, c2[:len(c2)-1]...), c2[len(c2)-1]^1)) + "." + mac,
		"extra segment":         tok + ".x",
		"padding":               tok + "=",
		"prefix only":           Prefix,
		"wrong version prefix":  "cgw2." + strings.TrimPrefix(tok, Prefix),
		"std base64 signature":  Prefix + p + "." + base64.StdEncoding.EncodeToString([]byte(mac)),
		"signature of other":    Prefix + p + "." + strings.Split(forged, ".")[2],
		"payload without scope": Prefix + b64.EncodeToString(raw[:len(raw)-16]) + "." + mac,
		// base64 decoders skip line breaks: the issued token with one
		// inserted must not verify as a second spelling of it.
		"CR in signature":  Prefix + p + "." + mac[:4] + "\r" + mac[4:],
		"LF in payload":    Prefix + p[:3] + "\n" + p[3:] + "." + mac,
		"CRLF at the end":  tok + "\r\n",
		"space in payload": Prefix + p[:3] + " " + p[3:] + "." + mac,
	}
	for name, bad := range cases {
		if _, err := s.Verify(bad); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestExtractCredentials(t *testing.T) {
	basic := func(id, secret string) []string {
		return []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}
	}
	c, err := ExtractCredentials(basic("job:1", "s e+c%ret"), url.Values{})
	if err != nil || c.ClientID != "job:1" || c.Secret != "s e+c%ret" || !c.Basic {
		t.Fatalf("basic with escaping: %+v %v", c, err)
	}
	c, err = ExtractCredentials(nil, url.Values{"client_id": {"job-1"}, "client_secret": {"s"}})
	if err != nil || c.ClientID != "job-1" || c.Secret != "s" || c.Basic || !c.HasSecret {
		t.Fatalf("form: %+v %v", c, err)
	}
	bad := map[string]struct {
		h []string
		f url.Values
	}{
		"both methods":        {basic("job-1", "s"), url.Values{"client_secret": {"s"}}},
		"ids differ":          {basic("job-1", "s"), url.Values{"client_id": {"job-2"}}},
		"repeated id":         {nil, url.Values{"client_id": {"a", "b"}}},
		"repeated secret":     {nil, url.Values{"client_id": {"a"}, "client_secret": {"x", "y"}}},
		"basic not base64":    {[]string{"Basic !!!"}, nil},
		"basic without colon": {[]string{"Basic " + base64.StdEncoding.EncodeToString([]byte("job-1"))}, nil},
		"two headers":         {[]string{"Basic a", "Basic b"}, nil},
	}
	for name, tc := range bad {
		if _, err := ExtractCredentials(tc.h, tc.f); err == nil || err.Code != "invalid_request" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Basic with the same client_id in the form is fine.
	if _, err := ExtractCredentials(basic("job-1", "s"), url.Values{"client_id": {"job-1"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSecretMatches(t *testing.T) {
	h := sha256.Sum256([]byte("right"))
	if !SecretMatches("right", &h) || SecretMatches("wrong", &h) || SecretMatches("right", nil) {
		t.Fatal("SecretMatches")
	}
	// The dummy hash must not make an unknown client authenticate.
	if SecretMatches("canvas-scopes: no such client", nil) {
		t.Fatal("dummy secret authenticated")
	}
}

func TestClassifyTokenRequest(t *testing.T) {
	reg := func(id string) bool { return id == "job-1" }
	h := func(v ...string) http.Header { return http.Header{"Authorization": v} }
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("job-1:s"))
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"job-1"}, "client_secret": {"s"}}
	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for kk, vv := range v {
			out[kk] = slices.Clone(vv)
		}
		out.Add(k, val)
		return out
	}
	pass := map[string]struct {
		h http.Header
		f url.Values
	}{
		"authorization_code":          {nil, url.Values{"grant_type": {"authorization_code"}, "client_id": {"job-1"}, "client_secret": {"s"}, "code": {"x"}}},
		"refresh_token, basic":        {h(basic), url.Values{"grant_type": {"refresh_token"}}},
		"no grant type":               {nil, url.Values{"client_id": {"job-1"}, "code": {"x"}}},
		"unknown client":              {nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {"10000000000001"}, "client_secret": {"s"}}},
		"unknown client, basic":       {h("Basic " + base64.StdEncoding.EncodeToString([]byte("other:s"))), url.Values{"grant_type": {"client_credentials"}}},
		"LTI client assertion":        {nil, url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"eyJ"}}},
		"client_credentials no id":    {nil, url.Values{"grant_type": {"client_credentials"}}},
		"malformed basic, no form id": {h("Basic !!!"), url.Values{"grant_type": {"client_credentials"}}},
	}
	for name, tc := range pass {
		if _, ours, _ := ClassifyTokenRequest(tc.h, "", tc.f, reg); ours {
			t.Errorf("%s: answered by the gate, must pass through", name)
		}
	}
	tr, ours, err := ClassifyTokenRequest(nil, "", with(cc, "scope", " url:GET|/api/v1/courses  url:GET|/api/v1/users "), reg)
	if !ours || err != nil || !tr.HasScope || !slices.Equal(tr.Scopes, []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/users"}) {
		t.Fatalf("form request: %+v %v %v", tr, ours, err)
	}
	tr, ours, err = ClassifyTokenRequest(h(basic), "", url.Values{"grant_type": {"client_credentials"}}, reg)
	if !ours || err != nil || tr.Cred.ClientID != "job-1" || !tr.Cred.Basic || tr.HasScope {
		t.Fatalf("basic request: %+v %v %v", tr, ours, err)
	}
	invalid := map[string]struct {
		h     http.Header
		query string
		f     url.Values
		code  string
	}{
		"repeated grant_type":  {nil, "", with(cc, "grant_type", "client_credentials"), "invalid_request"},
		"repeated scope":       {nil, "", with(with(cc, "scope", "a"), "scope", "b"), "invalid_request"},
		"query string":         {nil, "client_secret=s", cc, "invalid_request"},
		"two methods":          {h(basic), "", cc, "invalid_request"},
		"assertion":            {nil, "", with(cc, "client_assertion", "x"), "invalid_request"},
		"repeated client id":   {nil, "", with(cc, "client_id", "job-1"), "invalid_request"},
		"registered id second": {nil, "", url.Values{"grant_type": {"client_credentials"}, "client_id": {"x", "job-1"}}, "invalid_request"},
	}
	for name, tc := range invalid {
		_, ours, err := ClassifyTokenRequest(tc.h, tc.query, tc.f, reg)
		if !ours || err == nil || err.Code != tc.code {
			t.Errorf("%s: ours=%v err=%v, want %s", name, ours, err, tc.code)
		}
	}
}

func TestGrantScopes(t *testing.T) {
	client := []string{"a", "b", "c"}
	if got, err := GrantScopes(nil, false, client); err != nil || !slices.Equal(got, client) {
		t.Fatalf("default: %v %v", got, err)
	}
	if got, err := GrantScopes([]string{"c", "a", "c"}, true, client); err != nil || !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("subset: %v %v", got, err)
	}
	if _, err := GrantScopes([]string{"a", "d"}, true, client); err == nil || err.Code != "invalid_scope" {
		t.Fatalf("superset: %v", err)
	}
}

func TestRevocations(t *testing.T) {
	r := NewRevocations(2, 2)
	a, b, c := [16]byte{1}, [16]byte{2}, [16]byte{3}
	if err := r.Add("job", a, t0.Add(time.Minute), t0); err != nil || !r.Has(a) || r.Has(b) {
		t.Fatal("add/has")
	}
	if err := r.Add("job", b, t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("other", c, t0.Add(time.Hour), t0); !errors.Is(err, ErrRevocationsFull) {
		t.Fatalf("full: %v", err)
	}
	// After a's token expired it is pruned and c fits.
	if err := r.Add("other", c, t0.Add(time.Hour), t0.Add(2*time.Minute)); err != nil || r.Has(a) || !r.Has(c) || r.Len() != 2 {
		t.Fatalf("prune: %v len=%d", err, r.Len())
	}
	// An expired token is not stored at all.
	if err := r.Add("job", [16]byte{9}, t0, t0); err != nil || r.Has([16]byte{9}) {
		t.Fatal("expired token stored")
	}
}

// One client revoking as fast as it can fills only its own share: its
// next revocation fails, every other client's still succeeds, and its
// share frees up as its revoked tokens expire. (With the share as large as
// the whole set, as before, the other client's revocation failed.)
func TestRevocationsOneClientCannotFillTheSet(t *testing.T) {
	const total, share = 1000, 100
	r := NewRevocations(total, share)
	id := func(client byte, i int) [16]byte { return [16]byte{client, byte(i), byte(i >> 8)} }
	var n int
	for n = 0; n < total; n++ {
		if err := r.Add("greedy", id(1, n), t0.Add(time.Hour), t0); err != nil {
			if !errors.Is(err, ErrClientRevocationsFull) {
				t.Fatalf("greedy client's revocation %d: %v, want ErrClientRevocationsFull", n, err)
			}
			break
		}
	}
	if n != share {
		t.Fatalf("greedy client stored %d revocations, want its share %d", n, share)
	}
	for i := 0; i < share; i++ {
		if err := r.Add("polite", id(2, i), t0.Add(time.Hour), t0); err != nil {
			t.Fatalf("another client's revocation %d failed after one client filled its share: %v", i, err)
		}
	}
	// Still revoked: a full share never drops a revocation early.
	if !r.Has(id(1, 0)) || !r.Has(id(2, 0)) {
		t.Fatal("a stored revocation was lost")
	}
	// Expired entries free the share (pruned at most once a second).
	later := t0.Add(time.Hour + time.Second)
	if err := r.Add("greedy", id(1, share), later.Add(time.Hour), later); err != nil {
		t.Fatalf("after its revoked tokens expired the client still cannot revoke: %v", err)
	}
	if r.Has(id(1, 0)) {
		t.Fatal("an expired revocation was kept")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(3, time.Minute, 2)
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("10.0.0.1", t0); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		l.Fail("10.0.0.1", t0)
	}
	ok, retry := l.Allow("10.0.0.1", t0)
	if ok || retry != 20*time.Second {
		t.Fatalf("after burst: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := l.Allow("10.0.0.2", t0); !ok {
		t.Fatal("another address is limited")
	}
	if ok, _ := l.Allow("10.0.0.1", t0.Add(20*time.Second)); !ok {
		t.Fatal("no refill")
	}
	// Bounded: a third address evicts; the exhausted one is kept only if
	// there is room.
	l.Fail("10.0.0.2", t0)
	l.Fail("10.0.0.3", t0)
	if l.Len() > 2 {
		t.Fatalf("limiter holds %d addresses, max 2", l.Len())
	}
}

// Ten failures for one client lock out that client at that address only:
// another registered client at the same address, the same client at
// another address, and unregistered ids (in their own, larger budget) are
// unaffected; unregistered ids spending their budget lock out no
// registered client.
func TestAuthLimiterOneClientCannotLockOutAnother(t *testing.T) {
	l := NewAuthLimiter(10, 20, time.Minute, 100)
	const nat, home = "192.0.2.1", "198.51.100.7"
	for i := 0; i < 10; i++ {
		if ok, _ := l.Allow(nat, "job-a", true, t0); !ok {
			t.Fatalf("failure %d refused early", i)
		}
		l.Fail(nat, "job-a", true, t0)
	}
	if ok, _ := l.Allow(nat, "job-a", true, t0); ok {
		t.Fatal("job-a is not limited after its burst")
	}
	if ok, _ := l.Allow(nat, "job-b", true, t0); !ok {
		t.Fatal("job-b is locked out by job-a's failures at the same address")
	}
	if ok, _ := l.Allow(home, "job-a", true, t0); !ok {
		t.Fatal("job-a is locked out at another address")
	}
	for i := 0; i < 20; i++ {
		if ok, _ := l.Allow(nat, fmt.Sprintf("guess-%d", i), false, t0); !ok {
			t.Fatalf("unregistered failure %d refused within its budget", i)
		}
		l.Fail(nat, fmt.Sprintf("guess-%d", i), false, t0)
	}
	if ok, _ := l.Allow(nat, "guess-x", false, t0); ok {
		t.Fatal("unregistered ids are not limited after their budget")
	}
	if ok, _ := l.Allow(nat, "job-b", true, t0); !ok {
		t.Fatal("job-b is locked out by failures with unregistered ids")
	}
}

func TestClientIDsIn(t *testing.T) {
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("job-b:s"))}}
	for _, tc := range []struct {
		name     string
		header   http.Header
		query    string
		kind     params.BodyKind
		boundary string
		body     string
		want     []string
	}{
		{"basic", basic, "", params.BodyNone, "", "", []string{"job-b"}},
		{"query and form", nil, "client_id=job-q", params.BodyForm, "", "a=1;client_id=job%2Df", []string{"job-q", "job-f"}},
		{"rack name forms", nil, "client_id[]=a&%5Bclient_id%5D=b&client_id[x]=c&client_id]=d&client_ids=no", params.BodyNone, "", "", []string{"a", "b", "c", "d"}},
		{"form body ignored when not a form", nil, "", params.BodyOpaque, "", "client_id=x", nil},
		{"json, repeated and nested", nil, "", params.BodyJSON, "", `{"client_id":"j1","x":{"client_id":"no"},"client_id":["j2",{"k":"j3"}]}`, []string{"j1", "j2", "j3"}},
		{"json not an object", nil, "", params.BodyJSON, "", `["client_id"]`, nil},
		{"multipart by name, file name and content type", nil, "", params.BodyMultipart, "B",
			"--B\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nm1\r\n" +
				"--B\r\nContent-Disposition: form-data; name=\"\"; filename=\"client_id\"\r\n\r\nm2\r\n" +
				"--B\r\nContent-Disposition: form-data; name=\"\"\r\nContent-Type: client_id\r\n\r\nm3\r\n--B--\r\n",
			[]string{"m1", "m2", "m3"}},
	} {
		got := ClientIDsIn(tc.header, tc.query, tc.kind, tc.boundary, []byte(tc.body))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
