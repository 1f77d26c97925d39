package params

import (
	"net/http"
	"testing"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[http.CanonicalHeaderKey(kv[i])] = append(h[http.CanonicalHeaderKey(kv[i])], kv[i+1])
	}
	return h
}

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		v      []string
		tok    string
		bearer bool
		err    bool
	}{
		{nil, "", false, false},
		{[]string{"Bearer abc"}, "abc", true, false},
		{[]string{"Bearer  abc"}, "abc", true, false},
		{[]string{"Bearer\tabc"}, "abc", true, false},
		{[]string{" \t Bearer \v\f abc"}, "abc", true, false},
		{[]string{"Bearer abc def "}, "abc def ", true, false},
		{[]string{"Bearer"}, "", true, false},
		{[]string{"Bearer "}, "", true, false},
		{[]string{"bearer abc"}, "", false, false},
		{[]string{"BEARER abc"}, "", false, false},
		{[]string{"Basic abc"}, "", false, false},
		{[]string{""}, "", false, false},
		{[]string{"Bearerabc"}, "", false, false},
		{[]string{"Bearer a", "Bearer a"}, "", false, true},
	}
	for _, tc := range tests {
		tok, bearer, err := ParseAuthorization(tc.v)
		if tc.err {
			wantStatus(t, err, 400)
			if err.Error() != MsgDuplicateAuthorization {
				t.Errorf("%q: message %q", tc.v, err)
			}
			continue
		}
		if err != nil || tok != tc.tok || bearer != tc.bearer {
			t.Errorf("%q: got %q %v %v, want %q %v", tc.v, tok, bearer, err, tc.tok, tc.bearer)
		}
	}
}

func TestInspectCredential(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name string
		req  Request
		tok  string
		src  Source
		err  string
	}{
		{"header", Request{Method: "GET", Header: hdr("Authorization", "Bearer abc")}, "abc", SourceHeader, ""},
		{"header two spaces", Request{Method: "GET", Header: hdr("Authorization", "Bearer  abc")}, "abc", SourceHeader, ""},
		{"header tab", Request{Method: "GET", Header: hdr("Authorization", "Bearer\tabc")}, "abc", SourceHeader, ""},
		{"bare Bearer ignores param", Request{Method: "GET", Header: hdr("Authorization", "Bearer"), RawQuery: "access_token=q"}, "", SourceNone, ""},
		{"lowercase bearer falls back", Request{Method: "GET", Header: hdr("Authorization", "bearer abc"), RawQuery: "access_token=q"}, "q", SourceQuery, ""},
		{"lowercase bearer alone", Request{Method: "GET", Header: hdr("Authorization", "bearer abc")}, "", SourceNone, ""},
		{"basic falls back to body", Request{Method: "POST", Header: hdr("Authorization", "Basic x"), ContentType: form, Body: []byte("access_token=b")}, "b", SourceBody, ""},
		{"query", Request{Method: "GET", RawQuery: "a=1&access_token=a%2Bb+c"}, "a+b c", SourceQuery, ""},
		{"query empty is absent", Request{Method: "GET", RawQuery: "access_token="}, "", SourceNone, ""},
		{"query repeated same", Request{Method: "GET", RawQuery: "access_token=x&access_token=%78"}, "x", SourceQuery, ""},
		{"query repeated different", Request{Method: "GET", RawQuery: "access_token=x&access_token=y"}, "", SourceNone, MsgAmbiguousAccessToken},
		{"query bracket", Request{Method: "GET", RawQuery: "access_token[]=x"}, "", SourceNone, MsgAmbiguousAccessToken},
		{"query bracket 2", Request{Method: "GET", RawQuery: "access_token%5Bx%5D=x"}, "", SourceNone, MsgAmbiguousAccessToken},
		{"query bracket 3", Request{Method: "GET", RawQuery: "[access_token]=x"}, "", SourceNone, MsgAmbiguousAccessToken},
		{"header and query same", Request{Method: "GET", Header: hdr("Authorization", "Bearer abc"), RawQuery: "access_token=abc"}, "abc", SourceHeader, ""},
		{"header and query different", Request{Method: "GET", Header: hdr("Authorization", "Bearer abc"), RawQuery: "access_token=def"}, "", SourceNone, MsgConflictingCredentials},
		{"header and body different", Request{Method: "POST", Header: hdr("Authorization", "Bearer abc"), Body: []byte("access_token=def")}, "", SourceNone, MsgConflictingCredentials},
		{"query and body different", Request{Method: "POST", RawQuery: "access_token=abc", Body: []byte("access_token=def")}, "", SourceNone, MsgConflictingCredentials},
		{"query and body same", Request{Method: "POST", RawQuery: "access_token=abc", Body: []byte("access_token=abc")}, "abc", SourceQuery, ""},
		{"empty query hides body", Request{Method: "POST", RawQuery: "access_token=", Body: []byte("access_token=abc")}, "", SourceNone, MsgConflictingCredentials},
		{"POST without content type is a form", Request{Method: "POST", Body: []byte("access_token=abc")}, "abc", SourceBody, ""},
		{"PUT without content type is opaque", Request{Method: "PUT", Body: []byte("access_token=abc")}, "", SourceNone, ""},
		{"json", Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"access_token":"j\u0031"}`)}, "j1", SourceBody, ""},
		{"json empty string", Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"access_token":""}`)}, "", SourceNone, ""},
		{"json not a string", Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"access_token":1}`)}, "", SourceNone, MsgAmbiguousAccessToken},
		{"json null", Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"access_token":null}`)}, "", SourceNone, MsgAmbiguousAccessToken},
		{"json bracket", Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"access_token[]":"x"}`)}, "", SourceNone, MsgAmbiguousAccessToken},
		{"json top-level array", Request{Method: "POST", ContentType: "application/json", Body: []byte(`[{"access_token":"x"}]`)}, "", SourceNone, ""},
		{"multipart", Request{Method: "POST", ContentType: "multipart/form-data; boundary=XyZ", Body: []byte(mp(cdn("access_token"), "m"))}, "m", SourceBody, ""},
		{"multipart file", Request{Method: "POST", ContentType: "multipart/form-data; boundary=XyZ", Body: []byte(mp(cdn("access_token")+`; filename="t"`, "m"))}, "", SourceNone, MsgAmbiguousAccessToken},
		{"multipart two", Request{Method: "POST", ContentType: "multipart/form-data; boundary=XyZ", Body: []byte(mp(cdn("access_token"), "m", cdn("access_token"), "n"))}, "", SourceNone, MsgAmbiguousAccessToken},
		{"duplicate header", Request{Method: "GET", Header: hdr("Authorization", "Bearer a", "Authorization", "Bearer a")}, "", SourceNone, MsgDuplicateAuthorization},
		{"multipart no boundary", Request{Method: "POST", ContentType: "multipart/form-data", Body: []byte("a=1")}, "", SourceNone, MsgInvalidMultipart},
	}
	for _, tc := range tests {
		in, err := Inspect(tc.req, DefaultLimits())
		if tc.err != "" {
			if err == nil {
				t.Errorf("%s: want %q, got token %q", tc.name, tc.err, in.Token)
				continue
			}
			wantStatus(t, err, 400)
			if err.Error() != tc.err {
				t.Errorf("%s: got %q, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if in.Token != tc.tok || in.TokenSource != tc.src {
			t.Errorf("%s: got %q/%v, want %q/%v", tc.name, in.Token, in.TokenSource, tc.tok, tc.src)
		}
	}
}

func TestInspectOverrideMasquerade(t *testing.T) {
	tests := []struct {
		req      Request
		override string
		masq     bool
	}{
		{Request{Method: "GET"}, "", false},
		{Request{Method: "POST", Body: []byte("_method=DELETE")}, "_method", false},
		{Request{Method: "GET", RawQuery: "_method%5B%5D=x"}, "_method", false},
		{Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"_method":"DELETE"}`)}, "_method", false},
		{Request{Method: "POST", ContentType: "multipart/form-data; boundary=XyZ", Body: []byte(mp(cdn("_method"), "PUT"))}, "_method", false},
		{Request{Method: "POST", Header: hdr("X-HTTP-Method-Override", "")}, "X-HTTP-Method-Override", false},
		{Request{Method: "POST", Header: hdr("X-HTTP-Method", "PUT")}, "X-HTTP-Method", false},
		{Request{Method: "POST", Header: hdr("X-Method-Override", "PUT")}, "X-Method-Override", false},
		{Request{Method: "POST", Header: http.Header{"X_http_method_override": {"PUT"}}}, "X-HTTP-Method-Override", false},
		{Request{Method: "POST", Header: http.Header{"X-Method-Override": {"PUT"}, "X_http_method": {"PUT"}}}, "X-HTTP-Method", false},
		{Request{Method: "POST", Header: http.Header{"X-Method-Override": {"PUT"}, "X-Http-Method": {"PUT"}}}, "X-HTTP-Method", false},
		{Request{Method: "POST", Header: http.Header{"Accept": {"*/*"}}}, "", false},
		{Request{Method: "POST", RawQuery: "_method=PUT", Header: hdr("X-HTTP-Method-Override", "PUT")}, "_method", false},
		{Request{Method: "GET", RawQuery: "as_user_id=1"}, "", true},
		{Request{Method: "GET", RawQuery: "as_user_id[]=1"}, "", true},
		{Request{Method: "GET", RawQuery: "as%5Fuser%5Fid=1"}, "", true},
		{Request{Method: "POST", Body: []byte("a=1&as_user_id=sis_user_id:x")}, "", true},
		{Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"as_user_id":1}`)}, "", true},
		{Request{Method: "GET", RawQuery: "as_user_ids=1&As_user_id=2"}, "", false},
	}
	for i, tc := range tests {
		in, err := Inspect(tc.req, DefaultLimits())
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if in.MethodOverride != tc.override || in.Masquerade != tc.masq {
			t.Errorf("%d: got %q %v, want %q %v", i, in.MethodOverride, in.Masquerade, tc.override, tc.masq)
		}
	}
}

func TestRewrite(t *testing.T) {
	both := RewriteOptions{FilterIncludes: true, StripCredentials: true}
	inc := RewriteOptions{FilterIncludes: true}
	strip := RewriteOptions{StripCredentials: true}
	tests := []struct {
		name      string
		req       Request
		opt       RewriteOptions
		query     string
		body      string
		qc, bc    bool
		removed   int
		inspErr   bool
		bodyIsNil bool
	}{
		{"nothing", Request{Method: "GET", RawQuery: "a=1"}, both, "a=1", "", false, false, 0, false, true},
		{"query filter", Request{Method: "GET", RawQuery: "per_page=10&include[]=enrollments&include[]=uuid&page=2"}, inc, "per_page=10&include[]=uuid&page=2", "", true, false, 1, false, true},
		{"options off", Request{Method: "GET", RawQuery: "include=x&access_token=t"}, RewriteOptions{}, "include=x&access_token=t", "", false, false, 0, false, true},
		{"strip only", Request{Method: "GET", RawQuery: "include=x&access_token=t&b"}, strip, "include=x&b", "", true, false, 0, false, true},
		{"both", Request{Method: "GET", RawQuery: "access_token=t&include=x&b=%20"}, both, "b=%20", "", true, false, 1, false, true},
		{"query wins: body include dropped", Request{Method: "POST", RawQuery: "include[]=uuid", Body: []byte("include[]=uuid&a=1")}, inc, "include[]=uuid", "a=1", false, true, 1, false, false},
		{"query wins per name", Request{Method: "POST", RawQuery: "includes=x", Body: []byte("include[]=uuid&includes[]=uuid&a=1")}, inc, "", "include[]=uuid&a=1", true, true, 2, false, false},
		{"body filtered", Request{Method: "POST", ContentType: "application/x-www-form-urlencoded", Body: []byte("a=1&include[]=x&include[]=uuid")}, inc, "", "a=1&include[]=uuid", false, true, 1, false, false},
		{"body strip", Request{Method: "POST", Body: []byte("access_token=x&a=1")}, strip, "", "a=1", false, true, 0, false, false},
		{"body conflict", Request{Method: "POST", Body: []byte("include=uuid&include[]=x")}, inc, "", "", false, false, 0, true, false},
		{"semicolon in body", Request{Method: "POST", Body: []byte("a=1;include[]=x")}, inc, "", "", false, false, 0, true, false},
		{"control byte in body", Request{Method: "POST", Body: []byte("a=1\r\n")}, inc, "", "", false, false, 0, true, false},
		{"utf-8 in body ok", Request{Method: "POST", Body: []byte("a=\xc3\xa9&include=x")}, inc, "", "a=\xc3\xa9", false, true, 1, false, false},
		{"json", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"a":1,"include":"x","b":[1]}`)}, inc, "", `{"a":1,"b":[1]}`, false, true, 1, false, false},
		{"json query wins", Request{Method: "PUT", RawQuery: "include[]=uuid", ContentType: "application/json", Body: []byte(`{"include":["uuid"], "a":1}`)}, inc, "include[]=uuid", `{"a":1}`, false, true, 1, false, false},
		{"json strip", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"access_token":"x", "include":["uuid","x"]}`)}, strip, "", `{"include":["uuid","x"]}`, false, true, 0, false, false},
		{"json both", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"access_token":"x", "include":["uuid","x"]}`)}, both, "", `{"include":["uuid"]}`, false, true, 1, false, false},
		{"json unchanged", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"include":["uuid"]}`)}, both, "", `{"include":["uuid"]}`, false, false, 0, false, false},
		{"json invalid", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"a":}`)}, both, "", "", false, false, 0, true, false},
		{"json duplicate", Request{Method: "PUT", ContentType: "application/json", Body: []byte(`{"a":1,"a":1}`)}, both, "", "", false, false, 0, true, false},
		{"json empty body", Request{Method: "PUT", ContentType: "application/json", Body: []byte{}}, both, "", "", false, false, 0, false, false},
		{"multipart", Request{Method: "POST", RawQuery: "include[]=x", ContentType: "multipart/form-data; boundary=XyZ",
			Body: []byte(mp(cdn("include[]"), "uuid", cdn("access_token"), "t", `Content-Disposition: form-data; name="f"; filename="a"`, "data"))},
			both, "", mp(`Content-Disposition: form-data; name="f"; filename="a"`, "data"), true, true, 2, false, false},
	}
	for _, tc := range tests {
		in, err := Inspect(tc.req, DefaultLimits())
		if tc.inspErr {
			if err == nil {
				t.Errorf("%s: want error", tc.name)
			} else {
				wantStatus(t, err, 400)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for round := 0; round < 2; round++ { // Rewrite may be called twice
			res, err := in.Rewrite(tc.opt)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res.RawQuery != tc.query || string(res.Body) != tc.body || res.QueryChanged != tc.qc || res.BodyChanged != tc.bc || res.IncludesRemoved != tc.removed {
				t.Errorf("%s: got %q %q %v %v %d, want %q %q %v %v %d", tc.name, res.RawQuery, res.Body, res.QueryChanged, res.BodyChanged, res.IncludesRemoved,
					tc.query, tc.body, tc.qc, tc.bc, tc.removed)
			}
			if tc.bodyIsNil && res.Body != nil {
				t.Errorf("%s: body not nil", tc.name)
			}
			if !res.BodyChanged && tc.req.Body != nil && len(tc.req.Body) > 0 && &res.Body[0] != &tc.req.Body[0] {
				t.Errorf("%s: unchanged body was copied", tc.name)
			}
		}
	}
}

func TestInspectAllocs(t *testing.T) {
	req := Request{Method: "GET", Header: hdr("Authorization", "Bearer 1~abcdefghijklmnopqrstuvwxyz", "Accept", "application/json"), RawQuery: ""}
	opt := RewriteOptions{FilterIncludes: true, StripCredentials: true}
	n := testing.AllocsPerRun(200, func() {
		in, err := Inspect(req, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Rewrite(opt); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Errorf("Inspect+Rewrite header-only: %v allocs", n)
	}
	req.RawQuery = "per_page=50&page=2&sort=name"
	n = testing.AllocsPerRun(200, func() {
		in, _ := Inspect(req, DefaultLimits())
		in.Rewrite(opt)
	})
	if n > 1 {
		t.Errorf("Inspect+Rewrite plain query: %v allocs", n)
	}
}

func BenchmarkInspectHeaderOnly(b *testing.B) {
	req := Request{Method: "GET", Header: hdr("Authorization", "Bearer 1~abcdefghijklmnopqrstuvwxyz", "Accept", "application/json", "User-Agent", "x")}
	opt := RewriteOptions{FilterIncludes: true, StripCredentials: true}
	b.ReportAllocs()
	for b.Loop() {
		in, err := Inspect(req, DefaultLimits())
		if err != nil {
			b.Fatal(err)
		}
		in.Rewrite(opt)
	}
}

func BenchmarkFilterQuery(b *testing.B) {
	for _, q := range []string{
		"per_page=50&page=2&sort=name&order=asc",
		"per_page=10&include[]=enrollments&include[]=uuid&include%5B%5D=total_scores&page=2",
	} {
		b.Run(q[:12], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in, err := Inspect(Request{Method: "GET", RawQuery: q}, DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				in.Rewrite(RewriteOptions{FilterIncludes: true})
				in.Release()
			}
		})
	}
}

// A released Inspection keeps its JSON slices for the next request, emptied:
// nothing of one request's body shows in the next, and the names (copies of
// request data) are cleared at release.
func TestReleasedInspectionKeepsNoRequestData(t *testing.T) {
	first := Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"include":["secret_thing"],"access_token":"t1","name":"x"}`)}
	in, err := Inspect(first, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if rw, err := in.Rewrite(RewriteOptions{FilterIncludes: true, StripCredentials: true}); err != nil || string(rw.Body) != `{"include":[],"name":"x"}` {
		t.Fatalf("first rewrite %q %v", rw.Body, err)
	}
	names := in.jsonTop.names
	in.Release()
	for i, n := range names[:cap(names)] {
		if n != "" {
			t.Errorf("name %d %q still held after Release", i, n)
		}
	}
	for range 20 { // the pool may hand back this Inspection or another
		second := Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"assignment":{"name":"y"}}`)}
		in, err = Inspect(second, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if len(in.jsonTop.names) != 1 || in.jsonTop.names[0] != "assignment" || len(in.jsonMembers) != 0 || in.Token != "" {
			t.Fatalf("second inspection sees %q, %d include/credential members, token %q", in.jsonTop.names, len(in.jsonMembers), in.Token)
		}
		rw, err := in.Rewrite(RewriteOptions{FilterIncludes: true, StripCredentials: true})
		if err != nil || rw.BodyChanged {
			t.Fatalf("second rewrite changed the body: %q %v", rw.Body, err)
		}
		in.Release()
	}
}

// Inspect's pass over the header names finds the first override header
// present, in the order X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override, for every set of these names and near misses.
func TestOverrideHeaderEveryNameSet(t *testing.T) {
	names := []string{"Accept", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Http-Method-Overrid", "X-Method", "Content-Type"}
	reported := map[string]string{"X-Http-Method-Override": "X-HTTP-Method-Override", "X-Http-Method": "X-HTTP-Method", "X-Method-Override": "X-Method-Override"}
	for set := range 1 << len(names) {
		h := http.Header{}
		for i, n := range names {
			if set&(1<<i) != 0 {
				h[n] = []string{"PUT"}
			}
		}
		want := ""
		for _, n := range names[1:4] {
			if _, ok := h[n]; ok {
				want = reported[n]
				break
			}
		}
		if got := overrideHeader(Request{Header: h}); got != want {
			t.Fatalf("headers %v: found %q, want %q", h, got, want)
		}
		// The look-up by key (canonical names promised) finds the same.
		if got := overrideHeader(Request{Header: h, CanonicalNames: true}); got != want {
			t.Fatalf("headers %v, canonical names: found %q, want %q", h, got, want)
		}
	}
}
