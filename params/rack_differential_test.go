package params

// The Rack differential (issue 12): requests generated from a grammar of
// the features where Rack 2.2 / ActionDispatch 6.1 and the gate could read
// the same bytes differently are given to Inspect and, when it accepts
// them, rewritten as the gate forwards them and read by the real Rack in a
// long-running ruby process (internal/rackparity). What Canvas would act
// on must be what the gate decided on:
//
//   - include/includes: after the gate's include filter, Rails sees no
//     include or includes value but the string "uuid";
//   - the credential Canvas authenticates is the one the gate decided on
//     (the client's for a scoped key, the upstream token for a
//     substitution key, where no access_token parameter may be left);
//   - as_user_id: if Rails sees one, the gate saw one (Masquerade);
//   - method override: if Rails routes on another method, or sees a
//     _method parameter, the gate saw an override.
//
// Other differences are counted and logged, not failed on: the rewrite
// changing a parameter of another name ("collateral": e.g. Rack drops a
// whole POST form body whose parse raised inside Rack::MethodOverride, and
// the rewrite can make that body parse again), the rewrite removing a
// parameter Rails files under another name ("over-filtered"), the gate
// dropping a uuid Canvas would keep, the gate deciding on a credential in a
// body Rails does not parse, and the gate being stricter than Rails (seeing
// as_user_id or _method Rails does not).
//
// TestRackDifferential runs RACKDIFF_CASES (default 20,000) generated
// cases from a fixed seed; FuzzRackDifferential fuzzes the raw fields with
// the same comparison. Security disagreements found by the test are saved
// as seeds of the fuzz target in testdata/fuzz/FuzzRackDifferential, so
// they are replayed by every `go test`. Without ruby the tests skip, except
// under CI=true, where they fail.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/rackparity"
)

// rackCase is one generated request: the fields the gate's parameter
// reading depends on.
type rackCase struct {
	Method, Query, ContentType, Auth, Override string
	Body                                       []byte
}

const (
	diffTarget   = "/api/v1/courses/1/assignments"
	diffUpstream = "upstream-token-for-rackdiff"
)

// disagreement is one difference between the gate's reading and Rack's.
type disagreement struct {
	class    string
	security bool // fails the test
	detail   string
}

var (
	diffOracleOnce sync.Once
	diffOracle     *rackparity.Oracle
	diffOracleErr  error
)

// rackOracle starts the ruby process once per test binary (so once per
// fuzz worker, never per input).
func rackOracle(t testing.TB) *rackparity.Oracle {
	t.Helper()
	rackparity.Require(t)
	diffOracleOnce.Do(func() { diffOracle, diffOracleErr = rackparity.StartOracle() })
	if diffOracleErr != nil {
		t.Fatal(diffOracleErr)
	}
	return diffOracle
}

func (c rackCase) header() http.Header {
	h := http.Header{}
	if c.Auth != "" {
		h["Authorization"] = []string{c.Auth}
	}
	if c.Override != "" {
		h["X-Http-Method-Override"] = []string{c.Override}
	}
	return h
}

// wire is the request Rack reads: the case's method, query, headers and
// body, with the given Authorization ("" for none).
func (c rackCase) wire(query string, body []byte, auth string) rackparity.Request {
	target := diffTarget
	if query != "" {
		target += "?" + query
	}
	var hdr [][2]string
	if auth != "" {
		hdr = append(hdr, [2]string{"Authorization", auth})
	}
	if c.ContentType != "" {
		hdr = append(hdr, [2]string{"Content-Type", c.ContentType})
	}
	if c.Override != "" {
		hdr = append(hdr, [2]string{"X-HTTP-Method-Override", c.Override})
	}
	if len(body) == 0 && c.Method != "GET" && c.Method != "HEAD" {
		hdr = append(hdr, [2]string{"Content-Length", "0"})
	}
	return rackparity.Request{Method: c.Method, Target: target, Header: hdr, Body: body}
}

// wireable reports whether the case can be sent as an HTTP/1.1 request at
// all: Go's server (in front of the gate) refuses a request line or header
// values with control bytes, and such a case says nothing about Rack.
func (c rackCase) wireable() bool {
	if c.Method == "" || len(c.Body) > 1<<16 {
		return false
	}
	for i := 0; i < len(c.Method); i++ {
		if !isHeaderNameChar(c.Method[i]) {
			return false
		}
	}
	for i := 0; i < len(c.Query); i++ {
		if b := c.Query[i]; b <= ' ' || b == 0x7f || b == '#' {
			return false
		}
	}
	for _, v := range []string{c.ContentType, c.Auth, c.Override} {
		if v != strings.TrimSpace(v) {
			return false
		}
		for i := 0; i < len(v); i++ {
			if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
				return false
			}
		}
	}
	return true
}

// diffStats counts what a run saw.
type diffStats struct {
	cases, refusedByGate, refusedByRack, compared, rackCalls int
}

// compareWithRack inspects c as the gate does and, if the gate would
// forward it, compares with Rack. It returns the disagreements.
func compareWithRack(t testing.TB, o *rackparity.Oracle, c rackCase, st *diffStats) []disagreement {
	t.Helper()
	if st != nil {
		st.cases++
	}
	if !c.wireable() {
		return nil
	}
	hasBody := len(c.Body) > 0
	kind, _ := BodyKindOf(c.Method, c.ContentType, hasBody)
	var body []byte
	if kind == BodyForm || kind == BodyMultipart || kind == BodyJSON {
		body = c.Body
	}
	in, err := Inspect(Request{Method: c.Method, Header: c.header(), RawQuery: c.Query, ContentType: c.ContentType, Body: body}, DefaultLimits())
	if err != nil {
		if st != nil {
			st.refusedByGate++
		}
		return nil
	}
	defer in.Release()
	read := func(query string, b []byte, auth string) rackparity.Reading {
		if st != nil {
			st.rackCalls++
		}
		r, err := o.Read(c.wire(query, b, auth))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	forwardedBody := func(rw Rewritten) []byte {
		if body == nil {
			return c.Body // not inspected: streamed unchanged
		}
		return rw.Body
	}

	orig := read(c.Query, c.Body, c.Auth)
	if orig.Raised != "" {
		// Rails refuses the request as the client sent it: Canvas acts on
		// nothing whatever the gate forwards (the rewrite only removes).
		if st != nil {
			st.refusedByRack++
		}
		return nil
	}
	if st != nil {
		st.compared++
	}
	var out []disagreement
	where := "query"
	if body != nil {
		where = kind.String()
	}
	add := func(class string, security bool, format string, args ...any) {
		out = append(out, disagreement{class: class + " [" + where + "]", security: security, detail: fmt.Sprintf(format, args...)})
	}

	// A scoped key without allow_includes: the client's credential goes on.
	scoped, err := in.Rewrite(RewriteOptions{FilterIncludes: true})
	if err != nil {
		t.Fatalf("Rewrite failed after Inspect accepted: %v", err)
	}
	scopedBody := forwardedBody(scoped)
	rs := orig
	if scoped.QueryChanged || scoped.BodyChanged {
		rs = read(scoped.RawQuery, scopedBody, c.Auth)
	}
	// A substitution key: every access_token removed, the upstream token
	// set as the Authorization header.
	sub, err := in.Rewrite(RewriteOptions{FilterIncludes: true, StripCredentials: true})
	if err != nil {
		t.Fatalf("Rewrite failed after Inspect accepted: %v", err)
	}
	subBody := forwardedBody(sub)
	var rsub rackparity.Reading
	if sub.RawQuery == scoped.RawQuery && string(subBody) == string(scopedBody) && rs.Raised == "" {
		// Same parameters as the scoped rewrite; with a Bearer header
		// Canvas takes the header's token.
		rsub = rs
		rsub.Credential, rsub.CredentialSource = diffUpstream, "header"
	} else {
		rsub = read(sub.RawQuery, subBody, "Bearer "+diffUpstream)
	}

	for _, v := range []struct {
		name string
		r    rackparity.Reading
		cred string
	}{{"scoped", rs, in.Token}, {"substitution", rsub, diffUpstream}} {
		r := v.r
		if r.Raised != "" {
			add("rewrite-refused-by-rack", false, "%s rewrite: Rack raised %s (%s), the original was accepted", v.name, r.Raised, r.Message)
			continue
		}
		for _, name := range []string{"include", "includes"} {
			if foreign := r.ForeignIncludes(name); len(foreign) > 0 {
				add("include-kept", true, "%s rewrite: Rails sees %s=%s", v.name, name, jsonText(r.Params[name]))
			}
		}
		got, isString := r.CredentialString()
		if r.Credential == nil {
			got, isString = "", true
		}
		if r.Credential == nil && v.cred != "" {
			// The gate decided on a token Canvas never reads (a body
			// Rails does not parse): Canvas treats the request as
			// anonymous, which grants nothing.
			add("credential-unread-by-canvas", false, "%s rewrite: Canvas reads no credential, the gate decided on %q", v.name, v.cred)
		} else if !isString || got != v.cred {
			add("credential", true, "%s rewrite: Canvas authenticates %s (from %q), the gate decided on %q", v.name, jsonText(r.Credential), r.CredentialSource, v.cred)
		}
		if v.name == "substitution" {
			if tok, ok := r.Param("access_token"); ok {
				add("access_token-left", true, "substitution rewrite: Rails still sees access_token=%s", jsonText(tok))
			}
		}
		if _, ok := r.Param("as_user_id"); ok && !in.Masquerade {
			add("as_user_id-unseen", true, "%s rewrite: Rails sees as_user_id=%s, the gate saw no masquerade", v.name, jsonText(r.Params["as_user_id"]))
		}
		if r.RequestMethod != c.Method && in.MethodOverride == "" {
			add("method-override-unseen", true, "%s rewrite: Rails routes %s %s, the gate saw no override", v.name, r.RequestMethod, c.Method)
		}
		if _, ok := r.Param("_method"); ok && in.MethodOverride == "" {
			add("_method-unseen", true, "%s rewrite: Rails sees _method=%s, the gate saw no override", v.name, jsonText(r.Params["_method"]))
		}
		// Nothing else may change.
		ignore := map[string]bool{"include": true, "includes": true}
		if v.name == "substitution" {
			ignore["access_token"] = true
		}
		if a, b := without(orig.Params, ignore), without(r.Params, ignore); !reflect.DeepEqual(a, b) {
			if removedOnly(a, b) {
				// The rewrite removed a parameter Rails files under
				// another name (e.g. "include[" or "]]include[]"):
				// stricter, not looser.
				add("over-filtered", false, "%s rewrite removed parameters Canvas does not filter: Rails saw %s, now %s", v.name, jsonText(a), jsonText(b))
			} else {
				add("collateral", false, "%s rewrite changed other parameters: Rails saw %s, now %s", v.name, jsonText(a), jsonText(b))
			}
		}
	}
	// Informational: the gate is stricter than Rails, or drops a uuid
	// Canvas would keep.
	if _, ok := orig.Param("as_user_id"); in.Masquerade && !ok {
		add("stricter-as_user_id", false, "the gate saw as_user_id, Rails does not")
	}
	if _, ok := orig.Param("_method"); in.MethodOverride == "_method" && !ok {
		add("stricter-_method", false, "the gate saw _method, Rails does not")
	}
	for _, name := range []string{"include", "includes"} {
		if arr, ok := orig.Params[name].([]any); ok && containsString(arr, "uuid") && rs.Raised == "" && !containsAnyUUID(rs.Params[name]) {
			add("uuid-dropped", false, "Rails sees %s=%s, the gate's rewrite keeps no uuid", name, jsonText(arr))
		}
	}
	return out
}

// removedOnly reports whether after is before with some top-level
// parameters removed and nothing else changed.
func removedOnly(before, after map[string]any) bool {
	for k, v := range after {
		if w, ok := before[k]; !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	return true
}

func containsString(arr []any, s string) bool {
	for _, e := range arr {
		if e == s {
			return true
		}
	}
	return false
}

func containsAnyUUID(v any) bool {
	arr, ok := v.([]any)
	return ok && containsString(arr, "uuid")
}

func without(m map[string]any, drop map[string]bool) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if !drop[k] {
			out[k] = v
		}
	}
	return out
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf("%v", v))
	}
	s := string(b)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// ---- the generator ----

type caseGen struct{ r *rand.Rand }

func (g caseGen) n(k int) int              { return g.r.IntN(k) }
func (g caseGen) p(pr float64) bool        { return g.r.Float64() < pr }
func (g caseGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

// name is a decoded parameter name: one of the names that matter (and a
// few that look like them), in one of Rack's bracket forms.
func (g caseGen) name() string {
	base := g.pick("include", "includes", "access_token", "_method", "as_user_id", "include", "includes",
		"a", "per_page", "Include", "include ", "uuid", "")
	if g.p(0.55) {
		return base
	}
	pre := ""
	if g.p(0.15) {
		pre = g.pick("[", "]", "[]", "[[", "]]")
	}
	return pre + base + g.pick("[]", "[]", "[0]", "[a]", "[][a]", "]", "[", "[]]", "[[]]", "[]x", "[include]", "][")
}

func (g caseGen) value() string {
	return g.pick("uuid", "uuid", "enrollments", "", "UUID", "uuid ", "DELETE", "put", "1", "tokA", "tokB", "x y", "include")
}

// encode form-encodes s for a query or form body with random choices:
// letters and brackets may be %XX (either case), spaces '+' or %20.
func (g caseGen) encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteString(g.pick("+", "%20"))
		case c == '&' || c == '=' || c == '%' || c == '+' || c == ';' || c == '#' || c >= 0x80 || c < 0x20:
			fmt.Fprintf(&b, "%%%02X", c)
		case g.p(0.08):
			if g.p(0.5) {
				fmt.Fprintf(&b, "%%%02X", c)
			} else {
				fmt.Fprintf(&b, "%%%02x", c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (g caseGen) pairs(max int) string {
	n := g.n(max + 1)
	var segs []string
	for i := 0; i < n; i++ {
		k := g.encode(g.name())
		switch {
		case g.p(0.08):
			segs = append(segs, k)
		case g.p(0.04):
			segs = append(segs, k+"="+g.encode(g.value())+"="+g.encode(g.value()))
		default:
			segs = append(segs, k+"="+g.encode(g.value()))
		}
	}
	sep := "&"
	switch {
	case g.p(0.04):
		sep = ";"
	case g.p(0.04):
		sep = "&&"
	}
	s := strings.Join(segs, sep)
	if g.p(0.04) {
		s += "&"
	}
	if g.p(0.03) {
		s = "&" + s
	}
	return s
}

// jsonString writes s as a JSON string with random \u escapes and
// escaped solidus.
func (g caseGen) jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		case g.p(0.1):
			if g.p(0.5) {
				fmt.Fprintf(&b, `\u%04x`, c)
			} else {
				fmt.Fprintf(&b, `\u%04X`, c)
			}
		default:
			b.WriteByte(c)
		}
	}
	if g.p(0.02) {
		b.WriteString(g.pick(`\u0000`, `\ud800`, `\/`))
	}
	b.WriteByte('"')
	return b.String()
}

func (g caseGen) jsonValue(depth int) string {
	k := g.n(10)
	if depth > 2 && k >= 6 {
		k = 0
	}
	switch k {
	case 0, 1:
		return g.jsonString(g.value())
	case 2, 3:
		var els []string
		for i := g.n(4); i > 0; i-- {
			els = append(els, g.jsonValue(depth+1))
		}
		return "[" + strings.Join(els, g.pick(",", ", ")) + "]"
	case 4:
		return g.pick("1", "null", "true", "false", "-0.5e2", "1.0")
	case 5:
		return `["uuid"]`
	default:
		return g.jsonObject(depth + 1)
	}
}

func (g caseGen) jsonObject(depth int) string {
	var ms []string
	for i := 1 + g.n(4); i > 0; i-- {
		key := g.name()
		if g.p(0.6) {
			key = g.pick("include", "includes", "access_token", "_method", "as_user_id", "a")
		}
		ms = append(ms, g.jsonString(key)+g.pick(":", " : ")+g.jsonValue(depth))
	}
	if len(ms) > 0 && g.p(0.05) {
		ms = append(ms, ms[0]) // duplicate member
	}
	return "{" + strings.Join(ms, g.pick(",", ", ", ",\n")) + "}"
}

const diffBoundary = "XyZ"

// part builds one multipart part: a Content-Disposition made of the
// features Rack 2.2 names parts by (name, filename, filename*, quoting,
// case, order), optionally a Content-Type, a Content-ID, another header.
func (g caseGen) part() string {
	var params []string
	if !g.p(0.06) {
		nm := g.name()
		if g.p(0.12) {
			nm = ""
		}
		if g.p(0.05) {
			nm = g.pick(`inc\"lude`, `include\`, "include;", "include ")
		}
		switch g.n(8) {
		case 0:
			params = append(params, g.pick("name", "NAME", "Name")+"="+nm)
		case 1:
			params = append(params, "name*=UTF-8''"+nm)
		case 2:
			params = append(params, "name= \""+nm+"\"")
		default:
			params = append(params, g.pick("name", "name", "NAME", "Name")+"=\""+nm+"\"")
		}
	}
	if g.p(0.2) {
		fn := g.pick("f.txt", "", "include[]", "as_user_id", "a.b", "access_token", "include%5B%5D", "a/as_user_id", `in\clude`, "_method", "x; name=include")
		switch g.n(3) {
		case 0:
			params = append(params, "filename=\""+fn+"\"")
		case 1:
			params = append(params, "filename*=UTF-8''"+fn)
		default:
			params = append(params, g.pick("filename", "FILENAME", "fileName")+"="+fn)
		}
	}
	if g.p(0.08) {
		params = append(params, g.pick("size=3", "x=y", "creation-date=\"x\""))
	}
	g.r.Shuffle(len(params), func(i, j int) { params[i], params[j] = params[j], params[i] })
	sep := g.pick("; ", "; ", ";", " ; ", ";\t")
	cd := g.pick("form-data", "form-data", "form-data", "Form-Data", "attachment", "inline") + sep + strings.Join(params, sep)
	if len(params) == 0 {
		cd = "form-data"
	}
	headers := []string{g.pick("Content-Disposition", "Content-Disposition", "content-disposition", "CONTENT-DISPOSITION") + ": " + cd}
	if g.p(0.3) {
		headers = append(headers, g.pick("Content-Type", "content-type", "CONTENT-TYPE")+": "+
			g.pick("text/plain", "include", "include[]", "includes", "as_user_id", "_method", "access_token", "application/octet-stream", "Include", "text/plain; charset=utf-8"))
	}
	if g.p(0.06) || (len(params) == 0 || g.p(0.1)) && g.p(0.4) {
		headers = append(headers, g.pick("Content-ID", "content-id")+": "+g.pick("<include>", "include", "<a@b>", "as_user_id", "access_token"))
	}
	if g.p(0.05) {
		headers = append(headers, "X-Foo: 1")
	}
	if g.p(0.3) {
		g.r.Shuffle(len(headers), func(i, j int) { headers[i], headers[j] = headers[j], headers[i] })
	}
	return "--" + diffBoundary + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n" + g.value() + "\r\n"
}

func (g caseGen) multipart() string {
	var b strings.Builder
	for i := 1 + g.n(3); i > 0; i-- {
		b.WriteString(g.part())
	}
	b.WriteString("--" + diffBoundary + "--\r\n")
	return b.String()
}

func (g caseGen) gen() rackCase {
	c := rackCase{Method: g.pick("POST", "POST", "POST", "GET", "PUT", "PATCH", "DELETE")}
	switch k := g.n(20); {
	case k < 10:
		c.Auth = "Bearer tokA"
	case k < 12:
		c.Auth = "Bearer tokB"
	case k < 13:
		c.Auth = "Bearer"
	case k < 14:
		c.Auth = "bearer tokA"
	case k < 15:
		c.Auth = "Basic dXNlcjpwYXNz"
	}
	if g.p(0.03) {
		c.Override = g.pick("DELETE", "GET")
	}
	if g.p(0.6) {
		c.Query = g.pairs(4)
	}
	switch k := g.n(20); {
	case k < 5:
		c.ContentType = g.pick("application/x-www-form-urlencoded", "application/x-www-form-urlencoded", "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
			"application/x-www-form-urlencoded, text/plain", "", "text/plain", ";charset=utf-8")
		c.Body = []byte(g.pairs(4))
	case k < 11:
		c.ContentType = g.pick("multipart/form-data; boundary=XyZ", "multipart/form-data; boundary=XyZ", "multipart/form-data; boundary=\"XyZ\"",
			"Multipart/Form-Data; BOUNDARY=XyZ", "multipart/mixed; boundary=XyZ", "multipart/related; boundary=XyZ",
			"multipart/form-data; charset=utf-8; boundary=XyZ", "multipart/form-data;boundary=XyZ")
		c.Body = []byte(g.multipart())
	case k < 17:
		c.ContentType = g.pick("application/json", "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/x-json",
			"application/jsonrequest", "application/vnd.api+json", "text/json")
		if g.p(0.04) {
			c.Body = []byte("[" + g.jsonObject(1) + "]")
		} else {
			c.Body = []byte(g.jsonObject(0))
		}
	case k < 18:
		c.ContentType = g.pick("text/plain", "application/octet-stream")
		c.Body = []byte(g.pairs(3))
	}
	return c
}

// ---- the tests ----

func diffCaseCount(t testing.TB) int {
	n := 20000
	if s := os.Getenv("RACKDIFF_CASES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("RACKDIFF_CASES=%q is not a positive number", s)
		}
		n = v
	}
	return n
}

func TestRackDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("the Rack differential is not a -short test")
	}
	o := rackOracle(t)
	n := diffCaseCount(t)
	seed := uint64(12)
	if s := os.Getenv("RACKDIFF_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	g := caseGen{rand.New(rand.NewPCG(seed, 0x5eed))}
	var st diffStats
	type example struct {
		c      rackCase
		detail string
		count  int
	}
	byClass := map[string]*example{}
	security := map[string]bool{}
	start := time.Now()
	for i := 0; i < n; i++ {
		c := g.gen()
		for _, d := range compareWithRack(t, o, c, &st) {
			ex := byClass[d.class]
			if ex == nil {
				ex = &example{c: c, detail: d.detail}
				byClass[d.class] = ex
			} else if caseSize(c) < caseSize(ex.c) {
				ex.c, ex.detail = c, d.detail
			}
			ex.count++
			security[d.class] = d.security
		}
	}
	t.Logf("%d cases in %s: %d refused by the gate, %d accepted but refused by Rack, %d compared, %d Rack readings",
		st.cases, time.Since(start).Round(time.Millisecond), st.refusedByGate, st.refusedByRack, st.compared, st.rackCalls)
	if st.compared < n/5 {
		t.Errorf("only %d of %d cases were compared: the generator mostly produces requests the gate refuses", st.compared, n)
	}
	classes := make([]string, 0, len(byClass))
	for k := range byClass {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		ex := byClass[k]
		msg := fmt.Sprintf("%s: %d cases; smallest: %s\n    %s", k, ex.count, ex.c, ex.detail)
		if !security[k] {
			t.Logf("note (not a failure) %s", msg)
			continue
		}
		if path, err := saveDiffSeed(ex.c); err != nil {
			t.Logf("could not save the seed: %v", err)
		} else {
			msg += "\n    saved as " + path
		}
		t.Errorf("DISAGREEMENT %s", msg)
	}
}

func caseSize(c rackCase) int {
	return len(c.Method) + len(c.Query) + len(c.ContentType) + len(c.Auth) + len(c.Override) + len(c.Body)
}

func (c rackCase) String() string {
	return fmt.Sprintf("%s %s?%s Authorization=%q Override=%q Content-Type=%q body=%q", c.Method, diffTarget, c.Query, c.Auth, c.Override, c.ContentType, c.Body)
}

// saveDiffSeed writes c in Go's fuzz corpus format as a seed of
// FuzzRackDifferential (named by its content, so reruns do not add
// copies).
func saveDiffSeed(c rackCase) (string, error) {
	text := fmt.Sprintf("go test fuzz v1\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\nstring(%q)\n[]byte(%q)\n",
		c.Method, c.Query, c.ContentType, c.Auth, c.Override, c.Body)
	sum := sha256.Sum256([]byte(text))
	dir := filepath.Join("testdata", "fuzz", "FuzzRackDifferential")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "rackdiff-"+hex.EncodeToString(sum[:8]))
	return path, os.WriteFile(path, []byte(text), 0o644)
}

func FuzzRackDifferential(f *testing.F) {
	o := rackOracle(f)
	g := caseGen{rand.New(rand.NewPCG(7, 7))}
	for i := 0; i < 64; i++ {
		c := g.gen()
		f.Add(c.Method, c.Query, c.ContentType, c.Auth, c.Override, c.Body)
	}
	f.Fuzz(func(t *testing.T, method, query, contentType, auth, override string, body []byte) {
		c := rackCase{Method: method, Query: query, ContentType: contentType, Auth: auth, Override: override, Body: body}
		for _, d := range compareWithRack(t, o, c, nil) {
			if d.security {
				t.Errorf("%s: %s\n    %s", d.class, c, d.detail)
			}
		}
	})
}
