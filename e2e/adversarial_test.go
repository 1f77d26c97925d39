package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The adversarial suite (issue 6): every known gateway-bypass trick from
// docs/bypass-families.md, sent through the real Caddy binary with the gate in front of
// the recording upstream, over HTTP/1.1 and (for every case a Go HTTP/2
// client can express) h2c. A case passes only if the upstream received
// nothing, or exactly the canonical request that was matched: same method,
// request-target bytes, body bytes, the intended credential and nothing
// else (no client Authorization for a substitution key, no access_token
// left by a substitution, no Cookie, no method-override or '_'/'.' header).

const (
	bA = "Bearer " + tokA        // tokA's own credential goes upstream
	bU = "Bearer " + upstreamTok // the substituted upstream credential
)

// fwd is the exact request the upstream must receive.
type fwd struct {
	method, uri, body string
	auth              string // the only Authorization value; "" means none at all
	ct                string // if set, the exact Content-Type upstream
}

type advCase struct {
	id, name string
	method   string
	target   string   // raw request-target bytes
	token    string   // sent as "Authorization: Bearer <token>" when set
	hdr      []string // extra "Name: value" lines, sent as written (HTTP/1.1)
	body     string
	status   int  // expected status at the client
	want     *fwd // nil: nothing may reach the upstream
	h1only   bool // a Go HTTP/2 client cannot express it (Connection, "//" targets, raw bytes)
}

// allTokens are every test credential; none may reach the upstream except
// the intended one.
var allTokens = []string{tokA, tokSub, tokIncludes, tokUnscoped, tokDisabled, tokHosted, tokExpired, tokRevoked, tokDropped, tokNarrow, tokMasq, tokReport, upstreamTok}

func mp(parts ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		fmt.Fprintf(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", parts[i], parts[i+1])
	}
	b.WriteString("--XyZ--\r\n")
	return b.String()
}

const (
	ctForm = "Content-Type: application/x-www-form-urlencoded"
	ctJSON = "Content-Type: application/json"
	ctMP   = "Content-Type: multipart/form-data; boundary=XyZ"
	ctText = "Content-Type: text/plain"
)

// bareParams is n key-only pairs ("a&a&..."): 10,000 of them fit in the
// request line, so the gate's own parameter limit is what answers.
func bareParams(n int, sep string) string {
	return strings.Repeat("a"+sep, n-1) + "a"
}

func manyParams(n int, sep string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		fmt.Fprintf(&b, "a%d=x", i)
	}
	return b.String()
}

func manyJSON(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"a%d":1`, i)
	}
	b.WriteString(`,"include":["enrollments"]}`)
	return b.String()
}

func get(uri string) *fwd { return &fwd{method: "GET", uri: uri, auth: bA} }

func adversarialCases() []advCase {
	const C = "/api/v1/courses"
	const A = "/api/v1/courses/7/assignments"
	many999 := manyParams(998, "&")
	return []advCase{
		// --- P: path normalisation and confusion ---
		{id: "P1", name: "dot-dot segments climb to another route", method: "GET", target: "/api/v1/courses/1/x/../../../accounts", token: tokA, status: 400},
		{id: "P1", name: "single dot segment", method: "GET", target: "/api/v1/./courses", token: tokA, status: 400},
		{id: "P1", name: "dot-dot at the end of an allowed path", method: "GET", target: A + "/..", token: tokA, status: 400},
		{id: "P2", name: "encoded dot-dot", method: "GET", target: "/api/v1/courses/%2e%2e/accounts", token: tokA, status: 400},
		{id: "P2", name: "mixed literal and encoded dots", method: "GET", target: "/api/v1/courses/7/.%2E/.%2e/accounts", token: tokA, status: 400},
		{id: "P2+P13+P14", name: "encoded dot segment, format suffix and trailing slash", method: "GET", target: "/api/v1/courses/%2e%2e/accounts.json/", token: tokA, status: 400},
		{id: "P2+P13", name: "encoded single dot with trailing slash", method: "GET", target: A + "/%2E/", token: tokA, status: 400},
		{id: "P13+P14", name: "format suffix with trailing slash is canonicalised", method: "GET", target: A + ".json/", token: tokA, status: 200, want: get(A + ".json")},
		{id: "P3", name: "leading double slash", method: "GET", target: "//api/v1/courses", token: tokA, status: 200, want: get(C), h1only: true},
		{id: "P3", name: "double slash before a denied segment", method: "GET", target: "/api/v1//accounts", token: tokA, status: 401},
		{id: "P3+P13", name: "double slashes and trailing slash squeezed", method: "GET", target: "/api//v1/courses//7///assignments/", token: tokA, status: 200, want: get(A)},
		{id: "P4", name: "encoded slashes stay inside a dynamic segment", method: "GET", target: "/api/v1/courses/sis_course_id:A%2FB%2FC", token: tokA, status: 200, want: get("/api/v1/courses/sis_course_id:A%2FB%2FC")},
		{id: "P4+P1", name: "dot-dot between encoded slashes", method: "GET", target: "/api/v1/courses/1%2F..%2F..%2Faccounts", token: tokA, status: 400},
		{id: "P4", name: "lower-case %2f is upper-cased as Rails does", method: "GET", target: "/api/v1/courses/1%2f2", token: tokA, status: 200, want: get("/api/v1/courses/1%2F2")},
		{id: "P4", name: "encoded slash in a structural segment", method: "GET", target: "/api%2Fv1/courses", token: tokA, status: 401},
		{id: "P4", name: "encoded slash glues a literal to an id", method: "GET", target: "/api/v1/courses%2F7", token: tokA, status: 401},
		{id: "P4+P14", name: "encoded traversal after a literal end", method: "GET", target: A + "%2F..%2F..%2F..%2Faccounts", token: tokA, status: 400},
		{id: "P4+P14", name: "encoded slash after a literal end", method: "GET", target: A + "%2Fx", token: tokA, status: 401},
		{id: "P5", name: "double-encoded dots", method: "GET", target: "/api/v1/courses/%252e%252e/accounts", token: tokA, status: 400},
		{id: "P5", name: "double-encoded slash", method: "GET", target: "/api/v1/courses/7%252F..%252Faccounts", token: tokA, status: 400},
		{id: "P5", name: "double-encoded letter", method: "GET", target: "/api/v1/%2561ccounts", token: tokA, status: 400},
		{id: "P6", name: "encoded backslash", method: "GET", target: "/api/v1/courses/7%5c..%5caccounts", token: tokA, status: 400},
		{id: "P6", name: "raw backslash", method: "GET", target: `/api/v1/courses\..\accounts`, token: tokA, status: 400, h1only: true},
		{id: "P7", name: "matrix parameter", method: "GET", target: "/api/v1/courses/7;jsessionid=x", token: tokA, status: 400},
		{id: "P7", name: "..; segment", method: "GET", target: "/api/v1/courses/..;/accounts", token: tokA, status: 400},
		{id: "P7", name: "encoded semicolon", method: "GET", target: "/api/v1/courses/7%3Bx", token: tokA, status: 400},
		{id: "P8", name: "encoded NUL", method: "GET", target: "/api/v1/courses/%00", token: tokA, status: 400},
		{id: "P8", name: "encoded CRLF", method: "GET", target: "/api/v1/courses/7%0D%0AX-Injected:%20y", token: tokA, status: 400},
		{id: "P8", name: "encoded DEL", method: "GET", target: "/api/v1/courses/7%7F", token: tokA, status: 400},
		{id: "P9", name: "encoded newline after an allowed path", method: "GET", target: A + "%0A", token: tokA, status: 400},
		{id: "P10", name: "encoded fragment", method: "GET", target: "/api/v1/courses/7%23/../../accounts", token: tokA, status: 400},
		{id: "P10", name: "raw fragment in the request-target", method: "GET", target: "/api/v1/accounts#/../courses", token: tokA, status: 400, h1only: true},
		{id: "P11", name: "allowed path in the query of a denied path", method: "GET", target: "/api/v1/accounts?x=/api/v1/courses", token: tokA, status: 401},
		{id: "P11", name: "traversal in the query is only a value", method: "GET", target: C + "?next=/../../accounts", token: tokA, status: 200, want: get(C + "?next=/../../accounts")},
		{id: "P11", name: "encoded question mark in the path", method: "GET", target: "/api/v1/accounts%3F/api/v1/courses", token: tokA, status: 401},
		{id: "P12", name: "upper case", method: "GET", target: "/API/V1/COURSES", token: tokA, status: 401},
		{id: "P12", name: "mixed case segment", method: "GET", target: "/api/v1/Courses/7", token: tokA, status: 401},
		{id: "P13", name: "trailing slash", method: "GET", target: C + "/", token: tokA, status: 200, want: get(C)},
		{id: "P14", name: "dot inside a dynamic segment", method: "GET", target: "/api/v1/courses/7.json/assignments", token: tokA, status: 200, want: get("/api/v1/courses/7.json/assignments")},
		{id: "P14", name: "format suffix on a structural segment", method: "GET", target: "/api/v1/courses.json/7", token: tokA, status: 401},
		{id: "P14", name: "multi-dot suffix on the last segment", method: "GET", target: A + ".json.xml", token: tokA, status: 200, want: get(A + ".json.xml")},
		{id: "P14", name: "suffix followed by a segment", method: "GET", target: A + ".json/extra", token: tokA, status: 401},
		{id: "P15", name: "encoded space as a whole dynamic segment", method: "GET", target: "/api/v1/courses/%20", token: tokA, status: 200, want: get("/api/v1/courses/%20")},
		{id: "P15", name: "encoded space after a literal", method: "GET", target: "/api/v1/accounts%20", token: tokA, status: 401},
		{id: "P15", name: "encoded tab", method: "GET", target: "/api/v1/courses%09", token: tokA, status: 400},
		{id: "P16", name: "Unicode long s look-alike", method: "GET", target: "/api/v1/cour%C5%BFes", token: tokA, status: 401},
		{id: "P16", name: "fullwidth solidus", method: "GET", target: "/api/v1/courses%EF%BC%8F7", token: tokA, status: 401},
		{id: "P16", name: "overlong slash", method: "GET", target: "/api/v1/courses%C0%AF7", token: tokA, status: 401},
		// Go percent-encodes raw bytes >= 0x80 in EscapedPath, so the gate
		// matches and forwards the encoded form: the same bytes.
		{id: "P16", name: "raw non-ASCII byte is matched and forwarded encoded", method: "GET", target: "/api/v1/courses/\xc3\xa9", token: tokA, status: 200, want: get("/api/v1/courses/%C3%A9"), h1only: true},
		{id: "P17", name: "encoded dot glued to a prefix", method: "GET", target: "/api%2e/v1/courses", token: tokA, status: 401},
		{id: "P17", name: "encoded dot glued to the version", method: "GET", target: "/api/v1%2E/courses/7", token: tokA, status: 401},
		{id: "P18", name: "dynamic segment does not cross a slash", method: "GET", target: "/api/v1/courses/7/x/assignments", token: tokA, status: 401},
		{id: "P18", name: "user id spanning two segments", method: "GET", target: "/api/v1/users/1/2/courses", token: tokA, status: 401},
		{id: "P20", name: "prefix of a granted literal", method: "GET", target: "/api/v1/coursesX", token: tokA, status: 401},
		{id: "P20", name: "granted path plus a segment", method: "GET", target: A + "/1", token: tokA, status: 401},
		{id: "P20", name: "shorter than a granted literal", method: "GET", target: "/api/v1/course", token: tokA, status: 401},

		// --- Q: query and parameter smuggling ---
		{id: "Q1", name: "; separator hides include[]", method: "GET", target: C + "?per_page=10;include[]=enrollments", token: tokA, status: 400},
		{id: "Q1+Q7", name: "; separator hides access_token on a substitution key", method: "GET", target: C + "?page=1;access_token=" + tokA, token: tokSub, status: 400},
		{id: "Q1+Q5", name: "; between two include values", method: "GET", target: C + "?include[]=uuid;include[]=enrollments", token: tokA, status: 400},
		{id: "Q1", name: "encoded ; is part of a value", method: "GET", target: C + "?a=1%3Binclude[]=enrollments", token: tokA, status: 200, want: get(C + "?a=1%3Binclude[]=enrollments")},
		{id: "Q1+M1", name: "; in a form body hides _method", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "name=x;_method=DELETE", status: 400},
		{id: "Q2", name: "bad escape before include", method: "GET", target: C + "?a=%zz&include[]=enrollments", token: tokA, status: 400},
		{id: "Q2", name: "truncated escape", method: "GET", target: C + "?include[]=enrollments%2", token: tokA, status: 400},
		{id: "Q2", name: "raw byte >= 0x80 in the query", method: "GET", target: C + "?a=\xff&include[]=enrollments", token: tokA, status: 400, h1only: true},
		{id: "Q2", name: "10,000 query parameters then include[]", method: "GET", target: C + "?" + bareParams(10000, "&") + "&include[]=enrollments", token: tokA, status: 400, h1only: true},
		{id: "Q2+Q1", name: "10,000 ;-separated parameters", method: "GET", target: C + "?" + bareParams(10000, ";"), token: tokA, status: 400, h1only: true},
		{id: "Q2+Q4", name: "10,000 form body parameters", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: manyParams(10000, "&") + "&include[]=x", status: 400},
		{id: "Q2+Q4", name: "10,000 JSON members", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: manyJSON(10000), status: 400},
		{id: "Q2", name: "999 parameters are still filtered", method: "GET", target: C + "?" + many999 + "&include[]=enrollments", token: tokA, status: 200, want: get(C + "?" + many999)},
		{id: "Q2", name: "parameter name over 1 KiB", method: "GET", target: C + "?" + strings.Repeat("k", 2000) + "=1", token: tokA, status: 400},
		{id: "Q3", name: "percent-encoded brackets", method: "GET", target: C + "?per_page=5&include%5B%5D=enrollments", token: tokA, status: 200, want: get(C + "?per_page=5")},
		{id: "Q3", name: "indexed include[0]", method: "GET", target: C + "?include[0]=enrollments&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "hash include[x]", method: "GET", target: C + "?include[x]=y&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "includes[] keeps only uuid", method: "GET", target: C + "?includes[]=uuid&includes[]=enrollments", token: tokA, status: 200, want: get(C + "?includes[]=uuid")},
		{id: "Q3", name: "Include[] is another parameter (Rails is case-sensitive)", method: "GET", target: C + "?Include[]=enrollments", token: tokA, status: 200, want: get(C + "?Include[]=enrollments")},
		{id: "Q3", name: "encoded letter in the name", method: "GET", target: C + "?%69nclude[]=enrollments&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "scalar include=uuid is deleted", method: "GET", target: C + "?include=uuid&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "leading brackets [include][]", method: "GET", target: C + "?[include][]=enrollments&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "array of hashes include[][a]", method: "GET", target: C + "?include[][a]=x&x=1", token: tokA, status: 200, want: get(C + "?x=1")},
		{id: "Q3", name: "allow_includes key keeps them", method: "GET", target: C + "?include[]=enrollments", token: tokIncludes, status: 200, want: &fwd{method: "GET", uri: C + "?include[]=enrollments", auth: "Bearer " + tokIncludes}},
		{id: "Q4", name: "JSON body include", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"include":["enrollments","uuid"],"a":1}`, status: 200,
			want: &fwd{method: "POST", uri: A, body: `{"include":["uuid"],"a":1}`, auth: bA, ct: "application/json"}},
		{id: "Q4", name: "form body include", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "a=1&include[]=enrollments&b=2", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1&b=2", auth: bA}},
		{id: "Q4", name: "multipart include part", method: "POST", target: A, token: tokA, hdr: []string{ctMP}, body: mp("a", "1", "include[]", "enrollments"), status: 200,
			want: &fwd{method: "POST", uri: A, body: mp("a", "1"), auth: bA}},
		{id: "Q4", name: "form body on a GET", method: "GET", target: C, token: tokA, hdr: []string{ctForm}, body: "include[]=enrollments&a=1", status: 200,
			want: &fwd{method: "GET", uri: C, body: "a=1", auth: bA}},
		{id: "Q4", name: "JSON member name with a Unicode escape", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"\u0069nclude":["enrollments"],"a":1}`, status: 200,
			want: &fwd{method: "POST", uri: A, body: `{"\u0069nclude":[],"a":1}`, auth: bA}},
		{id: "Q4", name: "nested include is not a parameter Canvas filters", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"a":{"include":["x"]}}`, status: 200,
			want: &fwd{method: "POST", uri: A, body: `{"a":{"include":["x"]}}`, auth: bA}},
		{id: "Q4", name: "POST without Content-Type is a form", method: "POST", target: A, token: tokA, body: "include[]=enrollments&a=1", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		{id: "Q4", name: "media type list starting with form", method: "POST", target: A, token: tokA, hdr: []string{"Content-Type: application/x-www-form-urlencoded, text/plain"}, body: "include[]=enrollments&a=1", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		{id: "Q4", name: "+json media type", method: "POST", target: A, token: tokA, hdr: []string{"Content-Type: application/vnd.api+json"}, body: `{"include":["enrollments"]}`, status: 200,
			want: &fwd{method: "POST", uri: A, body: `{"include":[]}`, auth: bA}},
		{id: "Q4+Q5", name: "duplicate JSON member", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"include":["uuid"],"include":["enrollments"]}`, status: 400},
		{id: "Q5", name: "scalar and array include", method: "GET", target: C + "?include=uuid&include[]=enrollments", token: tokA, status: 400},
		{id: "Q5", name: "query include shadows the body's", method: "POST", target: A + "?include[]=uuid", token: tokA, hdr: []string{ctForm}, body: "include[]=enrollments&a=1", status: 200,
			want: &fwd{method: "POST", uri: A + "?include[]=uuid", body: "a=1", auth: bA}},
		{id: "Q5", name: "repeated include values", method: "GET", target: C + "?include[]=enrollments&include[]=uuid&include[]=enrollments", token: tokA, status: 200, want: get(C + "?include[]=uuid")},
		{id: "Q6", name: "as_user_id in the query", method: "GET", target: C + "?as_user_id=1", token: tokA, status: 401},
		{id: "Q6", name: "as_user_id in a form body", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "as_user_id=1", status: 401},
		{id: "Q6", name: "as_user_id in a JSON body", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"as_user_id":"sis_user_id:admin"}`, status: 401},
		{id: "Q6", name: "as_user_id in a multipart body", method: "POST", target: A, token: tokA, hdr: []string{ctMP}, body: mp("as_user_id", "1"), status: 401},
		{id: "Q6", name: "bracketed as_user_id[]", method: "GET", target: C + "?as_user_id[]=1", token: tokA, status: 401},
		{id: "Q6", name: "encoded as_user_id name", method: "GET", target: C + "?%61s_user_id=1", token: tokA, status: 401},
		{id: "Q6", name: "as_user_id with allow_masquerade", method: "GET", target: C + "?as_user_id=1", token: tokMasq, status: 200, want: &fwd{method: "GET", uri: C + "?as_user_id=1", auth: "Bearer " + tokMasq}},
		{id: "Q7", name: "substitution drops Cookie", method: "GET", target: C, token: tokSub, hdr: []string{"Cookie: canvas_session=abc; _csrf_token=x"}, status: 200, want: &fwd{method: "GET", uri: C, auth: bU}},
		{id: "Q7", name: "scoped key's Cookie is dropped too", method: "GET", target: C, token: tokA, hdr: []string{"Cookie: canvas_session=abc"}, status: 200, want: get(C)},
		{id: "Q7", name: "substitution strips the query credential", method: "GET", target: C + "?page=2&access_token=" + tokSub + "&per_page=5", status: 200, want: &fwd{method: "GET", uri: C + "?page=2&per_page=5", auth: bU}},
		{id: "Q7", name: "substitution strips a form body credential", method: "POST", target: A, hdr: []string{ctForm}, body: "a=1&access_token=" + tokSub, status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bU}},
		{id: "Q7", name: "substitution strips a JSON body credential", method: "POST", target: A, hdr: []string{ctJSON}, body: `{"access_token":"` + tokSub + `","a":1}`, status: 200,
			want: &fwd{method: "POST", uri: A, body: `{"a":1}`, auth: bU}},
		{id: "Q7", name: "substitution strips a multipart credential", method: "POST", target: A, hdr: []string{ctMP}, body: mp("access_token", tokSub, "a", "1"), status: 200,
			want: &fwd{method: "POST", uri: A, body: mp("a", "1"), auth: bU}},
		{id: "Q7+H4", name: "same token in header and query, both replaced", method: "GET", target: C + "?access_token=" + tokSub, token: tokSub, status: 200, want: &fwd{method: "GET", uri: C, auth: bU}},
		{id: "Q7+H4", name: "Basic header is replaced, not appended", method: "GET", target: C + "?access_token=" + tokSub, hdr: []string{"Authorization: Basic dGVzdDp0ZXN0"}, status: 200, want: &fwd{method: "GET", uri: C, auth: bU}},
		{id: "Q7", name: "encoded access_token name", method: "GET", target: C + "?%61ccess_token=" + tokSub + "&x=1", status: 200, want: &fwd{method: "GET", uri: C + "?x=1", auth: bU}},
		{id: "Q7", name: "bracketed access_token[]", method: "GET", target: C + "?access_token[]=" + tokSub, token: tokSub, status: 400},
		{id: "Q7", name: "conflicting header and query credentials", method: "GET", target: C + "?access_token=" + tokSub, token: tokA, status: 400},
		{id: "Q7", name: "conflicting query and body credentials", method: "POST", target: A + "?access_token=" + tokA, hdr: []string{ctForm}, body: "access_token=" + tokSub, status: 400},
		{id: "Q7", name: "empty Bearer hides the parameter, as in Canvas", method: "GET", target: C + "?access_token=" + tokA, hdr: []string{"Authorization: Bearer"}, status: 401},
		{id: "Q7", name: "lower-case bearer is no credential", method: "GET", target: C, hdr: []string{"Authorization: bearer " + tokA}, status: 401},
		{id: "Q7", name: "unknown query credential", method: "GET", target: C + "?access_token=test-only-not-registered", status: 401},
		{id: "Q7", name: "scoped key's own query credential is kept", method: "GET", target: C + "?access_token=" + tokA, status: 200, want: &fwd{method: "GET", uri: C + "?access_token=" + tokA}},
		{id: "Q8", name: "GraphQL for a scoped key", method: "POST", target: "/api/graphql", token: tokA, hdr: []string{ctJSON}, body: `{"query":"{ allCourses { id } }"}`, status: 401},
		{id: "Q8", name: "GraphQL with a format suffix", method: "POST", target: "/api/graphql.json", token: tokA, status: 401},
		{id: "Q8+P3+P13", name: "GraphQL behind // and trailing slash", method: "POST", target: "//api/graphql/", token: tokA, status: 401, h1only: true},
		{id: "Q8", name: "GraphQL for a substitution key", method: "POST", target: "/api/graphql", token: tokSub, status: 401},

		// --- M: method confusion ---
		{id: "M1", name: "_method in a form body", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "_method=DELETE", status: 400},
		{id: "M1", name: "_method in a multipart body", method: "POST", target: A, token: tokA, hdr: []string{ctMP}, body: mp("_method", "DELETE"), status: 400},
		{id: "M1", name: "_method in a JSON body", method: "POST", target: A, token: tokA, hdr: []string{ctJSON}, body: `{"_method":"DELETE"}`, status: 400},
		{id: "M1", name: "_method in the query", method: "POST", target: A + "?_method=DELETE", token: tokA, status: 400},
		{id: "M1", name: "encoded _method name", method: "POST", target: A, token: tokA, hdr: []string{ctForm}, body: "%5Fmethod=DELETE", status: 400},
		{id: "M2", name: "X-HTTP-Method-Override", method: "POST", target: A, token: tokA, hdr: []string{"X-HTTP-Method-Override: DELETE"}, status: 400},
		{id: "M2", name: "X-HTTP-Method", method: "POST", target: A, token: tokA, hdr: []string{"X-HTTP-Method: DELETE"}, status: 400},
		{id: "M2", name: "X-Method-Override", method: "POST", target: A, token: tokA, hdr: []string{"X-Method-Override: DELETE"}, status: 400},
		{id: "M2", name: "lower-case override header", method: "POST", target: A, token: tokA, hdr: []string{"x-http-method-override: DELETE"}, status: 400},
		{id: "M2", name: "empty override header", method: "POST", target: A, token: tokA, hdr: []string{"X-HTTP-Method-Override:"}, status: 400, h1only: true},
		{id: "M2+H1", name: "X_HTTP_Method_Override is dropped", method: "POST", target: A, token: tokA, hdr: []string{"X_HTTP_Method_Override: DELETE"}, status: 200, want: &fwd{method: "POST", uri: A, auth: bA}},
		{id: "M3", name: "HEAD checked as GET", method: "HEAD", target: "/api/v1/courses/7", token: tokA, status: 200, want: &fwd{method: "HEAD", uri: "/api/v1/courses/7", auth: bA}},
		{id: "M3", name: "HEAD without a GET scope", method: "HEAD", target: "/api/v1/accounts", token: tokA, status: 401},
		{id: "M4", name: "OPTIONS", method: "OPTIONS", target: C, token: tokA, status: 401},
		{id: "M4", name: "TRACE", method: "TRACE", target: C, token: tokA, status: 401},
		{id: "M4", name: "lower-case get", method: "get", target: C, token: tokA, status: 401},
		{id: "M4", name: "PATCH with only a POST scope", method: "PATCH", target: A, token: tokA, status: 401},
		{id: "M4", name: "PUT with only a POST scope", method: "PUT", target: A, token: tokA, status: 401},
		{id: "M4", name: "DELETE on a GET-only path", method: "DELETE", target: "/api/v1/courses/7", token: tokA, status: 401},

		// --- H: header confusion ---
		{id: "H1", name: "X_Forwarded_For and Remote_User dropped", method: "GET", target: C, token: tokA, hdr: []string{"X_Forwarded_For: 10.0.0.1", "Remote_User: admin"}, status: 200, want: get(C)},
		{id: "H1+S3", name: "Content_Length dropped", method: "POST", target: A, token: tokA, hdr: []string{ctForm, "Content_Length: 100"}, body: "a=1", status: 200, want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		{id: "H1+S3", name: "Transfer_Encoding dropped", method: "POST", target: A, token: tokA, hdr: []string{ctForm, "Transfer_Encoding: chunked"}, body: "a=1", status: 200, want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		{id: "H1", name: "Content_Type dropped, the real one decides", method: "POST", target: A, token: tokA, hdr: []string{"Content_Type: text/plain", ctForm}, body: "include[]=enrollments&a=1", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA, ct: "application/x-www-form-urlencoded"}},
		{id: "H1", name: "dotted header name dropped", method: "POST", target: A, token: tokA, hdr: []string{"X.HTTP.Method.Override: DELETE"}, status: 200, want: &fwd{method: "POST", uri: A, auth: bA}},
		{id: "H2", name: "duplicate identical Authorization", method: "GET", target: C, token: tokA, hdr: []string{"Authorization: " + bA}, status: 400},
		{id: "H2", name: "duplicate Authorization, two keys", method: "GET", target: C, token: tokA, hdr: []string{"Authorization: Bearer " + tokSub}, status: 400},
		{id: "H2", name: "Authorization and authorization", method: "GET", target: C, token: tokA, hdr: []string{"authorization: Bearer " + tokSub}, status: 400},
		{id: "H2", name: "two tokens in one Authorization", method: "GET", target: C, hdr: []string{"Authorization: Bearer " + tokA + ", Bearer " + tokSub}, status: 401},
		{id: "H2", name: "duplicate Content-Type", method: "POST", target: A, token: tokA, hdr: []string{ctText, ctForm}, body: "include[]=enrollments", status: 400},
		{id: "H3", name: "Connection: Authorization keeps the scoped key's credential", method: "GET", target: C, token: tokA, hdr: []string{"Connection: Authorization"}, status: 200, want: get(C), h1only: true},
		{id: "H3", name: "Connection: Authorization keeps the injected credential", method: "GET", target: C, token: tokSub, hdr: []string{"Connection: keep-alive, Authorization"}, status: 200, want: &fwd{method: "GET", uri: C, auth: bU}, h1only: true},
		{id: "H3", name: "Connection: Content-Type cannot turn an opaque body into a form", method: "POST", target: A, token: tokSub, hdr: []string{ctText, "Connection: Content-Type"}, body: "_method=DELETE&as_user_id=1&include[]=enrollments", status: 200,
			want: &fwd{method: "POST", uri: A, body: "_method=DELETE&as_user_id=1&include[]=enrollments", auth: bU, ct: "text/plain"}, h1only: true},
		{id: "H3", name: "Connection: Content-Type on an anonymous non-API request", method: "POST", target: "/courses/7/files", hdr: []string{ctText, "Connection: Content-Type"}, body: "access_token=" + tokA, status: 200,
			want: &fwd{method: "POST", uri: "/courses/7/files", body: "access_token=" + tokA, ct: "text/plain"}, h1only: true},
		{id: "H3", name: "Connection: Cookie on a scoped key", method: "GET", target: C, token: tokA, hdr: []string{"Cookie: canvas_session=abc", "Connection: Cookie"}, status: 200, want: get(C), h1only: true},
		{id: "H3+H2", name: "two Connection headers naming Authorization", method: "GET", target: C, token: tokSub, hdr: []string{"Connection: close", "Connection: Authorization, X-Forwarded-For"}, status: 200, want: &fwd{method: "GET", uri: C, auth: bU}, h1only: true},
		{id: "H4", name: "Authorization spelled in two cases on a substitution key", method: "GET", target: C, token: tokSub, hdr: []string{"AUTHORIZATION: Bearer " + tokSub}, status: 400},
		{id: "H5", name: "trailing whitespace is trimmed by the server and forwarded trimmed", method: "GET", target: C, hdr: []string{"Authorization: Bearer " + tokA + " \t"}, status: 200, want: get(C), h1only: true},
		{id: "H5", name: "tab after Bearer, as Ruby's split", method: "GET", target: C, hdr: []string{"Authorization: Bearer\t" + tokA}, status: 200, want: &fwd{method: "GET", uri: C, auth: "Bearer\t" + tokA}, h1only: true},
		{id: "H", name: "hosted key on another Host", method: "GET", target: C, token: tokHosted, status: 401},
		{id: "H", name: "absolute-form target names a denied path", method: "GET", target: "http://canvas.example.edu/api/v1/accounts", token: tokA, status: 401, h1only: true},

		// --- hardening: encodings and trailers ---
		{id: "S/H", name: "gzip Content-Encoding on a form body", method: "POST", target: A, token: tokA, hdr: []string{ctForm, "Content-Encoding: gzip"}, body: "a=1", status: 400},
		{id: "S/H", name: "Content-Encoding on an opaque body streams", method: "POST", target: A, token: tokA, hdr: []string{"Content-Type: application/octet-stream", "Content-Encoding: gzip"}, body: "\x1f\x8b\x08", status: 200,
			want: &fwd{method: "POST", uri: A, body: "\x1f\x8b\x08", auth: bA, ct: "application/octet-stream"}},
	}
}

// rawCases are HTTP/1.1 byte streams Go's client would never send. Each
// holds the whole request; the upstream must get nothing or want.
type rawCase struct {
	id, name string
	raw      string
	status   int
	want     *fwd
}

func rawCases() []rawCase {
	const A = "/api/v1/courses/7/assignments"
	auth := "Authorization: Bearer " + tokA + "\r\n"
	return []rawCase{
		{id: "S1", name: "Content-Length with Transfer-Encoding: chunked", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n19\r\na=1&include[]=enrollments\r\n0\r\n\r\n", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		// Go (RFC 9112 §6.3) lets Transfer-Encoding win and deletes the
		// Content-Length before any handler runs; the upstream sees one
		// framing only.
		{id: "S1", name: "Content-Length with chunked opaque body", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/octet-stream\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200,
			want: &fwd{method: "POST", uri: A, body: "abc", auth: bA, ct: "application/octet-stream"}},
		{id: "S1", name: "chunked, chunked", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\na=1\r\n0\r\n\r\n", status: 501},
		{id: "S1", name: "space before the colon", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nTransfer-Encoding : chunked\r\n\r\n3\r\na=1\r\n0\r\n\r\n", status: 400},
		{id: "S1", name: "gzip, chunked", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\na=1\r\n0\r\n\r\n", status: 501},
		{id: "S1", name: "two different Content-Lengths", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nContent-Length: 3\r\nContent-Length: 25\r\n\r\na=1&include[]=enrollments", status: 400},
		{id: "S1", name: "chunked form body is filtered and re-framed", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nTransfer-Encoding: chunked\r\n\r\n19\r\na=1&include[]=enrollments\r\n0\r\n\r\n", status: 200,
			want: &fwd{method: "POST", uri: A, body: "a=1", auth: bA}},
		{id: "S2", name: "bare LF in a chunk-size line", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + ctForm + "\r\nTransfer-Encoding: chunked\r\n\r\n3\na=1\r\n0\r\n\r\n", status: 400},
		{id: "S/H", name: "request trailer announcing an override header", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/octet-stream\r\nTrailer: X-HTTP-Method-Override\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-HTTP-Method-Override: DELETE\r\n\r\n", status: 400},
		// Go unfolds obs-fold; the decision and the forwarded header are
		// the unfolded single line.
		{id: "S1", name: "obs-fold continuation line, denied path", raw: "GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\n" + "Authorization: Bearer\r\n " + tokA + "\r\n\r\n", status: 401},
		{id: "S1", name: "obs-fold continuation line, forwarded unfolded", raw: "GET /api/v1/courses HTTP/1.1\r\nHost: x\r\n" + "Authorization: Bearer\r\n " + tokA + "\r\n\r\n", status: 200, want: get("/api/v1/courses")},
		{id: "M4", name: "CONNECT authority-form", raw: "CONNECT canvas.example.edu:443 HTTP/1.1\r\nHost: canvas.example.edu:443\r\n" + auth + "\r\n", status: 400},
		{id: "M4", name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", status: 200},
		{id: "P", name: "space inside the request-target", raw: "GET /api/v1/courses /../accounts HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", status: 400},
		{id: "H5", name: "NUL in the Authorization value", raw: "GET /api/v1/courses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\x00\r\n\r\n", status: 400},
		{id: "S1", name: "pipelined request smuggled in a body", raw: "POST " + A + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabcGET /api/v1/accounts HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", status: 200,
			want: &fwd{method: "POST", uri: A, body: "abc", auth: bA, ct: "application/octet-stream"}},
	}
}

func startAdversarialGate(t *testing.T) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 0",
		Global:   "servers {\n\t\tprotocols h1 h2c\n\t}",
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	return in, up
}

// send1 writes one request as raw HTTP/1.1 and reads one response.
func (in *instance) send1(t *testing.T, raw, method string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (c advCase) raw1() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: canvas.test\r\n", c.method, c.target)
	if c.token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", c.token)
	}
	framed := false
	for _, h := range c.hdr {
		fmt.Fprintf(&b, "%s\r\n", h)
		n := strings.ToLower(h)
		if strings.HasPrefix(n, "content-length:") || strings.HasPrefix(n, "transfer-encoding:") {
			framed = true
		}
	}
	if c.body != "" && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.body))
	}
	b.WriteString("\r\n")
	b.WriteString(c.body)
	return b.String()
}

func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (in *instance) send2(t *testing.T, cl *http.Client, c advCase) (int, string) {
	t.Helper()
	path, query, _ := strings.Cut(c.target, "?")
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, in.base+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	req.URL.RawQuery = query
	if c.token != "" {
		req.Header.Add("Authorization", "Bearer "+c.token)
	}
	for _, h := range c.hdr {
		name, value, _ := strings.Cut(h, ":")
		req.Header[name] = append(req.Header[name], strings.TrimLeft(value, " "))
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("h2c request: %s", trunc(err.Error()))
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("the gate answered over HTTP/%d.%d, want HTTP/2", resp.ProtoMajor, resp.ProtoMinor)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkUpstream asserts nothing arrived (want == nil) or exactly want.
func checkUpstream(t *testing.T, up *upstream, want *fwd) {
	t.Helper()
	if want == nil {
		up.none(t)
		return
	}
	got := up.one(t)
	if got.Method != want.method {
		t.Errorf("upstream method %q, want %q", got.Method, want.method)
	}
	if got.RequestURI != want.uri {
		t.Errorf("upstream request-target %q, want %q", trunc(got.RequestURI), trunc(want.uri))
	}
	if string(got.Body) != want.body {
		t.Errorf("upstream body %q, want %q", trunc(string(got.Body)), trunc(want.body))
	}
	if len(got.Body) > 0 && len(got.TE) == 0 && got.CL != int64(len(got.Body)) {
		t.Errorf("upstream framing: Content-Length %d for %d body bytes", got.CL, len(got.Body))
	}
	auth := got.Header.Values("Authorization")
	switch {
	case want.auth == "" && len(auth) != 0:
		t.Errorf("upstream got an Authorization header, want none")
	case want.auth != "" && (len(auth) != 1 || auth[0] != want.auth):
		t.Errorf("upstream Authorization is not exactly the intended credential (%d values)", len(auth))
	}
	if want.ct != "" && got.Header.Get("Content-Type") != want.ct {
		t.Errorf("upstream Content-Type %q, want %q", got.Header.Get("Content-Type"), want.ct)
	}
	for name := range got.Header {
		switch {
		case strings.ContainsAny(name, "_."):
			t.Errorf("header %q reached the upstream", name)
		case name == "Cookie", name == "X-Http-Method-Override", name == "X-Http-Method", name == "X-Method-Override", name == "Trailer":
			t.Errorf("header %q reached the upstream", name)
		}
	}
	// No credential other than the intended one anywhere.
	var hdr strings.Builder
	for name, vs := range got.Header {
		for _, v := range vs {
			fmt.Fprintf(&hdr, "%s: %s\n", name, v)
		}
	}
	everything := got.RequestURI + "\n" + string(got.Body) + "\n" + hdr.String()
	for _, tok := range allTokens {
		n := strings.Count(everything, tok)
		if tok == upstreamTok && want.auth == bU {
			n-- // the one in Authorization
		}
		if n > 0 && !strings.Contains(want.uri+want.body+want.auth, tok) {
			t.Errorf("a credential that was not intended reached the upstream")
		}
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func TestAdversarial(t *testing.T) {
	in, up := startAdversarialGate(t)
	h2 := h2cClient()
	n := 0
	for _, c := range adversarialCases() {
		for _, proto := range []string{"h1", "h2"} {
			if proto == "h2" && c.h1only {
				continue
			}
			n++
			t.Run(fmt.Sprintf("%s/%s/%s", proto, c.id, c.name), func(t *testing.T) {
				var status int
				var body string
				if proto == "h1" {
					status, body = in.send1(t, c.raw1(), c.method)
				} else {
					status, body = in.send2(t, h2, c)
				}
				if status != c.status {
					t.Errorf("status %d, want %d; body %s", status, c.status, trunc(body))
				}
				if status >= 400 && c.method != "HEAD" && !strings.HasPrefix(body, `{`) {
					t.Errorf("the refusal is not a Canvas-shaped JSON error: %q", trunc(body))
				}
				checkUpstream(t, up, c.want)
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
			// The pipelined second request (if any) is answered on the
			// same connection; give it time to reach the upstream if
			// it wrongly would.
			time.Sleep(20 * time.Millisecond)
			checkUpstream(t, up, c.want)
		})
	}
	t.Logf("%d adversarial requests (h1 and h2c), %d distinct cases", n, len(adversarialCases())+len(rawCases()))
}

// TestAdversarialHTTP2Frames sends HTTP/2 requests Go's client refuses to
// build (S4: CR/LF and other bytes a downgrade to HTTP/1 could turn into
// new header lines or request lines; connection-specific headers), as raw
// h2c frames with prior knowledge. Go's server must reset them; nothing
// may reach the upstream.
func TestAdversarialHTTP2Frames(t *testing.T) {
	in, up := startAdversarialGate(t)
	good := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "canvas.test"}, {":path", "/api/v1/courses"}}
	with := func(extra ...[2]string) [][2]string { return append(append([][2]string{}, good...), extra...) }
	path := func(p string) [][2]string {
		h := append([][2]string{}, good...)
		h[3][1] = p
		return h
	}
	authz := [2]string{"authorization", "Bearer " + tokA}
	cases := []struct {
		id, name string
		fields   [][2]string
		ok       bool // the control: a well-formed request is forwarded
	}{
		{"S4", "control: well-formed h2 request", with(authz), true},
		{"S4", "CR LF in a header value", with(authz, [2]string{"x-a", "1\r\nX-HTTP-Method-Override: DELETE"}), false},
		{"S4", "LF in the authorization value", with([2]string{"authorization", "Bearer " + tokA + "\nX-HTTP-Method-Override: DELETE"}), false},
		{"S4", "space and HTTP version in :path", append(path("/api/v1/courses HTTP/1.1\r\nHost: x\r\n\r\nDELETE /api/v1/courses/7"), authz), false},
		{"S4+P1", "dot-dot in :path", append(path("/api/v1/courses/../accounts"), authz), false},
		{"S4+H3", "connection header", with(authz, [2]string{"connection", "authorization"}), false},
		{"S4+S1", "transfer-encoding header", with(authz, [2]string{"transfer-encoding", "chunked"}), false},
		{"S4", "upper-case header name", with([2]string{"Authorization", "Bearer " + tokA}), false},
		{"S4+H2", "two authorization fields", with(authz, [2]string{"authorization", "Bearer " + tokSub}), false},
		{"S4+H1", "underscore header name is dropped", with(authz, [2]string{"x_http_method_override", "DELETE"}), true},
	}
	for _, c := range cases {
		t.Run(c.id+"/"+c.name, func(t *testing.T) {
			status := h2Raw(t, in.httpPort, c.fields)
			if c.ok {
				if status != 200 {
					t.Fatalf("status %d, want 200", status)
				}
				checkUpstream(t, up, get("/api/v1/courses"))
				return
			}
			if status == 200 {
				t.Errorf("a malformed HTTP/2 request was answered 200")
			}
			checkUpstream(t, up, nil)
		})
	}
}

// h2Raw sends one HEADERS frame (END_STREAM) on a fresh h2c prior-knowledge
// connection and returns the response status, or 0 if the stream or
// connection was reset.
func h2Raw(t *testing.T, port int, fields [][2]string) int {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				var st int
				fmt.Sscan(f.PseudoValue("status"), &st)
				return st
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return 0
			}
		case *http2.GoAwayFrame:
			return 0
		}
	}
}

// TestAdversarialUnderscoreAllowlisted: Caddy drops '_' and '.' header
// names by default, but an operator may allow some with
// expected_underscore_headers / expected_dot_headers. The gate drops them
// anyway, because Canvas's Rack stack maps '_' and '-' to the same env key
// (SECURITY.md §6, H1 and S3).
func TestAdversarialUnderscoreAllowlisted(t *testing.T) {
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 0",
		Global:   "servers {\n\t\texpected_underscore_headers Remote_User X_HTTP_Method_Override Content_Type\n\t\texpected_dot_headers X.Forwarded.User\n\t}",
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	const A = "/api/v1/courses/7/assignments"
	for _, c := range []advCase{
		{id: "H1", name: "allowlisted Remote_User", method: "GET", target: "/api/v1/courses", token: tokA, hdr: []string{"Remote_User: admin"}, status: 200, want: get("/api/v1/courses")},
		{id: "H1", name: "allowlisted dotted header", method: "GET", target: "/api/v1/courses", token: tokSub, hdr: []string{"X.Forwarded.User: admin"}, status: 200, want: &fwd{method: "GET", uri: "/api/v1/courses", auth: bU}},
		{id: "M2+H1", name: "allowlisted X_HTTP_Method_Override", method: "POST", target: A, token: tokSub, hdr: []string{"X_HTTP_Method_Override: DELETE"}, status: 200, want: &fwd{method: "POST", uri: A, auth: bU}},
		// Allowlisting Content_Type makes Caddy drop the dashed
		// Content-Type; the gate drops Content_Type, so the POST has no
		// Content-Type, which Rack reads as a form: _method is refused.
		{id: "H1+M1", name: "allowlisted Content_Type: the body is read as the form Rack would see", method: "POST", target: A, token: tokSub, hdr: []string{"Content_Type: application/x-www-form-urlencoded", "Content-Type: text/plain"}, body: "_method=DELETE",
			status: 400},
	} {
		t.Run(c.id+"/"+c.name, func(t *testing.T) {
			status, body := in.send1(t, c.raw1(), c.method)
			if status != c.status {
				t.Errorf("status %d, want %d; body %s", status, c.status, trunc(body))
			}
			checkUpstream(t, up, c.want)
		})
	}
}
