package params

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// refTopName is an independent reading of Rack 2's top-level name of a raw
// query pair (spaces after '&' skipped, key form-decoded once).
var refNameRE = regexp.MustCompile(`\A[\[\]]*([^\[\]]+)`)

func refTopName(seg string, first bool) (string, bool) {
	if !first {
		seg = strings.TrimLeft(seg, " ")
	}
	if seg == "" {
		return "", false
	}
	k, _, _ := strings.Cut(seg, "=")
	dk, err := url.QueryUnescape(k)
	if err != nil {
		return "", false
	}
	m := refNameRE.FindStringSubmatch(dk)
	if m == nil {
		return "", true
	}
	return m[1], true
}

// keptPairs lists the raw segments whose top-level name is not include or includes.
func keptPairs(raw string) []string {
	var out []string
	for i, seg := range strings.Split(raw, "&") {
		name, ok := refTopName(seg, i == 0)
		if ok && name != "include" && name != "includes" {
			out = append(out, seg)
		}
	}
	return out
}

func FuzzFilterIncludesQuery(f *testing.F) {
	for _, s := range []string{
		"", "per_page=10&include[]=enrollments&include[]=uuid&page=2", "include=uuid", "include%5B%5D=uuid",
		"a=1;include[]=x", "include=uuid&include[]=x", "a=1&&include=x&b=2&", "a=1& include[]=x", "include[][a]=uuid&include[]=uuid",
		"[include][]=x&includes[]=uuid&includes[]=uuid", "a=%zz", "a+b=c%20d&include[0]=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, removed, err := FilterIncludesQuery(raw)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if removed < 0 {
			t.Fatal("negative removed")
		}
		want := keptPairs(raw)
		got := keptPairs(out)
		if len(want) != len(got) {
			t.Fatalf("kept pairs differ:\n in %q\nout %q", raw, out)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("pair %d changed: %q -> %q (in %q out %q)", i, want[i], got[i], raw, out)
			}
		}
		out2, removed2, err := FilterIncludesQuery(out)
		if err != nil || out2 != out || removed2 != 0 {
			t.Fatalf("not idempotent: %q -> %q -> %q (%d, %v)", raw, out, out2, removed2, err)
		}
		if _, err := url.ParseQuery(raw); err == nil {
			if _, err := url.ParseQuery(out); err != nil {
				t.Fatalf("output does not parse: %q: %v", out, err)
			}
		}
		if removed == 0 && out != raw {
			t.Fatalf("changed without removing: %q -> %q", raw, out)
		}
	})
}

func isIncludeName(n string) bool { return n == "include" || n == "includes" }

func FuzzFilterIncludesJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"include":"x","b":[1]}`, `{"include":["x","uuid","uuid"]}`, `{"include":["x"]}`, `{ "include" : [ "uuid" ] , "z" : {"include":1} }`,
		`["include"]`, `{"a":1,"a":2}`, `{"\u0069nclude":"x","a":"\ud800"}`, `{}`, ` 1 `, `{"a":[[[[]]]],"includes":null}`, `{"a":1,}`,
		"{\"a\":\"\xc3\xa9\xed\xa0\x80\"}", "{\"include\":[\"uuid\"]}\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out, removed, err := FilterIncludesJSON(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if !json.Valid(in) || !utf8.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		if !json.Valid(out) {
			t.Fatalf("output invalid: %q -> %q", in, out)
		}
		if removed == 0 && !bytes.Equal(in, out) {
			t.Fatalf("changed without removing: %q -> %q", in, out)
		}
		// Span scanner view.
		ti, e1 := scanJSON(in, 64)
		to, e2 := scanJSON(out, 64)
		if e1 != nil || e2 != nil {
			t.Fatalf("rescan failed: %v %v", e1, e2)
		}
		keep := func(b []byte, t jsonTop) []string {
			var r []string
			for i, n := range t.names {
				if !isIncludeName(n) {
					m := t.members[i]
					r = append(r, string(b[m.start:m.end]))
				}
			}
			return r
		}
		ki, ko := keep(in, ti), keep(out, to)
		if strings.Join(ki, "\x00") != strings.Join(ko, "\x00") || len(ki) != len(ko) {
			t.Fatalf("non-include members changed: %q -> %q", in, out)
		}
		// encoding/json view.
		var mi, mo map[string]json.RawMessage
		if json.Unmarshal(in, &mi) == nil {
			if err := json.Unmarshal(out, &mo); err != nil {
				t.Fatalf("output not an object: %q", out)
			}
			for k, v := range mi {
				if isIncludeName(k) {
					continue
				}
				if !bytes.Equal(mo[k], v) {
					t.Fatalf("member %q changed: %q -> %q", k, v, mo[k])
				}
			}
			for k := range mo {
				if _, ok := mi[k]; !ok {
					t.Fatalf("member %q appeared", k)
				}
			}
			for _, k := range []string{"include", "includes"} {
				v, ok := mo[k]
				if !ok {
					continue
				}
				var arr []string
				if json.Unmarshal(v, &arr) != nil || len(arr) > 1 || (len(arr) == 1 && arr[0] != "uuid") {
					t.Fatalf("%s not filtered: %q", k, v)
				}
			}
		}
		out2, removed2, err := FilterIncludesJSON(out)
		if err != nil || !bytes.Equal(out2, out) || removed2 != 0 {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, out2)
		}
	})
}

type rawPart struct {
	name    string
	content string
}

func goParts(body []byte, boundary string) ([]rawPart, error) {
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var ps []rawPart
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return ps, nil
		}
		if err != nil {
			return nil, err
		}
		c, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		ps = append(ps, rawPart{p.FormName(), string(c)})
	}
}

// partHead is the header block of the part whose delimiter line starts at
// start, without the CRLF that ends its last line.
func partHead(body []byte, boundary string, start int) string {
	hs := start + len("--"+boundary+"\r\n")
	he := bytes.Index(body[hs:], []byte("\r\n\r\n"))
	return string(body[hs : hs+he])
}

func FuzzFilterIncludesMultipart(f *testing.F) {
	file := "Content-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream"
	empty := `Content-Disposition: form-data; name=""`
	for _, s := range []string{
		mp(cdn("a"), "1", cdn("include[]"), "x", file, "\x00\r\n--Xy", cdn("include[]"), "uuid"),
		mp(cdn("include"), "uuid"), mp("Content-Disposition: form-data; name=includes[]", "uuid"),
		mp(`Content-Disposition: form-data; filename="x; name=include"; name="a"`, "1"),
		"--XyZ--", "--XyZ\r\n\r\n\r\n--XyZ--",
		mp(empty+"\r\nContent-Type: include", "uuid", cdn("include[]"), "x"),
		mp(empty+"\r\nX-Content-Type: include", "x", empty+"\r\nContent-Type:  include", "x"),
		mp(empty+`; filename="include%5B%5D"`, "x", empty+"\r\nContent-Type: text/plain; filename=include", "x"),
		mp(cdn("a")+"\r\nContent-ID: include[]", "x", `Content-Disposition: form-data; NAME="include"; p1=v`, "x"),
		mp(`Content-Disposition: form-data; name=include ; x=1`, "x", cdn("a")+"\r\nX: a; filename=\"\"", "uuid"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := FilterIncludesMultipart(in, "XyZ")
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		pi, err := goParts(in, "XyZ")
		if err != nil {
			t.Fatalf("accepted input Go cannot parse: %q: %v", in, err)
		}
		po, err := goParts(out, "XyZ")
		if err != nil {
			t.Fatalf("output does not parse: %q -> %q: %v", in, out, err)
		}
		// Each accepted part: its form name and content as Go reads them,
		// and its parameter name as Rack 2.2 and Rack 3.1+ give it.
		type namedPart struct{ name, head, content string }
		named := func(body []byte, goPs []rawPart) []namedPart {
			ours, _, e := scanMultipart(body, "XyZ", DefaultLimits().MaxParams)
			if e != nil {
				t.Fatalf("accepted body not scanned: %q: %v", body, e)
			}
			if len(ours) != len(goPs) {
				t.Fatalf("part count: ours %d, Go %d: %q", len(ours), len(goPs), body)
			}
			var r []namedPart
			for i, p := range ours {
				if p.formName != goPs[i].name || string(p.content) != goPs[i].content {
					t.Fatalf("part %d: ours %q/%q, Go %q/%q", i, p.formName, p.content, goPs[i].name, goPs[i].content)
				}
				head := partHead(body, "XyZ", p.start)
				n2, file2 := refRack2Name(head)
				n3, file3 := refRack3Name(head)
				if p.name != n2 || p.name != n3 {
					t.Fatalf("part %d %q named %q, Rack 2.2 %q, Rack 3 %q", i, head, p.name, n2, n3)
				}
				if (file2 != nil || file3) && !p.hasFile {
					t.Fatalf("part %d %q: Rack sees a file, the gate does not", i, head)
				}
				r = append(r, namedPart{p.name, head, string(p.content)})
			}
			return r
		}
		ni, no := named(in, pi), named(out, po)
		isInclude := func(p namedPart) bool {
			n, _ := classifyKey(p.name)
			return n == nmInclude || n == nmIncludes
		}
		var ki, ko []namedPart
		for _, p := range ni {
			if !isInclude(p) {
				ki = append(ki, p)
			}
		}
		kept := map[uint8]bool{}
		for _, p := range no {
			if !isInclude(p) {
				ko = append(ko, p)
				continue
			}
			// What survives is one include[]=uuid (or includes[]) that is
			// not a file, as Rack 2.2 reads the part.
			n, form := classifyKey(p.name)
			if _, file := refRack2Name(p.head); form != fmArray || p.content != "uuid" || file != nil || kept[n] {
				t.Fatalf("include part %q=%q kept: %q -> %q", p.name, p.content, in, out)
			}
			kept[n] = true
		}
		if len(ki) != len(ko) {
			t.Fatalf("non-include parts changed: %q -> %q", in, out)
		}
		for i := range ki {
			if ki[i] != ko[i] {
				t.Fatalf("part %d changed: %+v -> %+v", i, ki[i], ko[i])
			}
		}
		out2, removed2, err := FilterIncludesMultipart(out, "XyZ")
		if err != nil || !bytes.Equal(out2, out) || removed2 != 0 {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, out2)
		}
	})
}

// refCredential is a straightforward reimplementation of Canvas's credential choice (it does
// not check for conflicts; it only says which token wins).
func refCredential(auth []string, rawQuery, ct string, body []byte) (string, bool) {
	if len(auth) == 1 {
		f := strings.FieldsFunc(auth[0], func(r rune) bool { return strings.ContainsRune(" \t\n\v\f\r", r) })
		if len(f) > 0 && f[0] == "Bearer" {
			rest := strings.TrimLeft(auth[0], " \t\n\v\f\r")[len("Bearer"):]
			return strings.TrimLeft(rest, " \t\n\v\f\r"), true
		}
	}
	formTok := func(raw string) (string, bool) {
		for i, seg := range strings.Split(raw, "&") {
			if i > 0 {
				seg = strings.TrimLeft(seg, " ")
			}
			k, v, _ := strings.Cut(seg, "=")
			dk, err := url.QueryUnescape(k)
			if err != nil {
				return "", false
			}
			if dk == "access_token" {
				dv, err := url.QueryUnescape(v)
				if err != nil {
					return "", false
				}
				if dv != "" {
					return dv, true
				}
			}
		}
		return "", true
	}
	tok, ok := formTok(rawQuery)
	if !ok {
		return "", false
	}
	if tok != "" {
		return tok, true
	}
	kind, boundary := BodyKindOf("POST", ct, body != nil)
	switch kind {
	case BodyForm:
		return formTok(string(body))
	case BodyJSON:
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return "", false
		}
		var s string
		if v, ok := m["access_token"]; ok && json.Unmarshal(v, &s) == nil {
			return s, true
		}
	case BodyMultipart:
		ps, err := goParts(body, boundary)
		if err != nil {
			return "", false
		}
		for _, p := range ps {
			if p.name == "access_token" && p.content != "" {
				return p.content, true
			}
		}
	}
	return "", true
}

func FuzzCredential(f *testing.F) {
	cts := []string{"", "application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=XyZ", "text/plain"}
	f.Add("Bearer abc", false, "a=1", uint8(0), []byte("access_token=abc"))
	f.Add("Bearer  abc def", true, "", uint8(0), []byte(nil))
	f.Add("bearer abc", false, "access_token=q", uint8(1), []byte("access_token=b"))
	f.Add("", false, "access_token=", uint8(1), []byte("access_token=b"))
	f.Add("Basic x", false, "", uint8(2), []byte(`{"access_token":"j"}`))
	f.Add("Bearer", false, "access_token=q", uint8(3), []byte(mp(cdn("access_token"), "m")))
	f.Add("Bearer 0123456789abcdef", false, "access_token=fedcba9876543210", uint8(0), []byte(nil))
	f.Fuzz(func(t *testing.T, auth string, twoAuth bool, rawQuery string, ctSel uint8, body []byte) {
		h := http.Header{}
		if auth != "" {
			h["Authorization"] = []string{auth}
			if twoAuth {
				h["Authorization"] = append(h["Authorization"], auth)
			}
		}
		ct := cts[int(ctSel)%len(cts)]
		req := Request{Method: "POST", Header: h, RawQuery: rawQuery, ContentType: ct, Body: body}
		in, err := Inspect(req, DefaultLimits())
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != 400 {
				t.Fatalf("bad error %v", err)
			}
			known := false
			for _, m := range ErrorMessages {
				known = known || m == pe.Message
			}
			if !known {
				t.Fatalf("unknown error message %q", pe.Message)
			}
			return
		}
		if in.Token == "" {
			if in.TokenSource != SourceNone {
				t.Fatal("source without token")
			}
		} else {
			ref, ok := refCredential(h["Authorization"], rawQuery, ct, body)
			if ok && ref != in.Token {
				t.Fatalf("token %q (%v), reference %q", in.Token, in.TokenSource, ref)
			}
		}
		// Rewrite must not fail, and stripping leaves no access_token.
		res, err := in.Rewrite(RewriteOptions{FilterIncludes: true, StripCredentials: true})
		if err != nil {
			t.Fatal(err)
		}
		in2, err := Inspect(Request{Method: "POST", RawQuery: res.RawQuery, ContentType: ct, Body: res.Body}, DefaultLimits())
		if err != nil {
			t.Fatalf("rewritten request refused: %v\n%q %q -> %q %q", err, rawQuery, body, res.RawQuery, res.Body)
		}
		if in2.Token != "" {
			t.Fatalf("token survived stripping: %q %q -> %q %q", rawQuery, body, res.RawQuery, res.Body)
		}
	})
}
