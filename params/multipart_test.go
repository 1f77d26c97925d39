package params

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// mp builds a multipart body with boundary "XyZ" from (headers, content) pairs.
func mp(parts ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		b.WriteString("--XyZ\r\n" + parts[i] + "\r\n\r\n" + parts[i+1] + "\r\n")
	}
	b.WriteString("--XyZ--\r\n")
	return b.String()
}

func cdn(name string) string { return `Content-Disposition: form-data; name="` + name + `"` }

func TestFilterIncludesMultipart(t *testing.T) {
	file := "Content-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream"
	fileData := "\x00\x01--Xy\r\n\r\nbinary\r\n"
	tests := []struct {
		in, out string
		removed int
		err     bool
	}{
		{mp(cdn("a"), "1"), mp(cdn("a"), "1"), 0, false},
		{mp(cdn("a"), "1", cdn("include[]"), "x", file, fileData, cdn("include[]"), "uuid"),
			mp(cdn("a"), "1", file, fileData, cdn("include[]"), "uuid"), 1, false},
		{mp(cdn("include"), "uuid", file, fileData), mp(file, fileData), 1, false},
		{mp(cdn("include[]"), "x"), "--XyZ--\r\n", 1, false},
		{mp("Content-Disposition: form-data; name=include", "uuid", cdn("b"), ""), mp(cdn("b"), ""), 1, false},
		{mp(cdn("include[]"), "uuid", "Content-Disposition: form-data; name=\"include[]\"; filename=\"uuid\"", "uuid"),
			mp(cdn("include[]"), "uuid"), 1, false},
		{mp(cdn("include"), "uuid", cdn("include[]"), "x"), "", 0, true},
		{"--XyZ--", "--XyZ--", 0, false},
		{"--XyZ--\r\nepilogue", "--XyZ--\r\nepilogue", 0, false},
		{"--XyZ--0", "", 0, true}, // fuzz finding: Go needs CRLF or EOF after the close delimiter
		{"--XyZ-- \r\n", "", 0, true},
		// malformed / ambiguous
		{"preamble\r\n" + mp(cdn("a"), "1"), "", 0, true},
		{strings.ReplaceAll(mp(cdn("a"), "1"), "\r\n", "\n"), "", 0, true},
		{mp(cdn("a"), "x--XyZ\r\n"), "", 0, true},
		{mp("Content-Disposition: form-data", "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; name="a"; name="b"`, "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; filename="x; name=include"; name="a"`, "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; name="a"; name*=UTF-8''include`, "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; name="a\"b"`, "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; name = "a"`, "1"), "", 0, true},
		{mp(cdn("a")+"\r\nX-A: content-disposition: form-data; name=include", "1"), "", 0, true},
		{mp(cdn("a")+"\r\nContent-Disposition: form-data; name=b", "1"), "", 0, true},
		{mp(cdn("a")+"\r\n folded", "1"), "", 0, true},
		{mp(`Content-Disposition: attachment; name="a"`, "1"), "", 0, true},
		{mp(`Content-Disposition: form-data; name=include[]`, "1"), "", 0, true},
		{mp(cdn("a"), "1") + "--XyZ\r\n", "", 0, true},
		{"--XyZ\r\n" + cdn("a") + "\r\n\r\n1", "", 0, true},
		{"--XyZ  \r\n" + cdn("a") + "\r\n\r\n1\r\n--XyZ--", "", 0, true},
	}
	for i, tc := range tests {
		out, removed, err := FilterIncludesMultipart([]byte(tc.in), "XyZ")
		if tc.err {
			if err == nil {
				t.Errorf("%d %q: want error, got %q", i, tc.in, out)
				continue
			}
			wantStatus(t, err, 400)
			continue
		}
		if err != nil {
			t.Errorf("%d %q: %v", i, tc.in, err)
			continue
		}
		if string(out) != tc.out || removed != tc.removed {
			t.Errorf("%d %q: got %q (%d), want %q (%d)", i, tc.in, out, removed, tc.out, tc.removed)
		}
	}
}

func TestBodyKindOf(t *testing.T) {
	tests := []struct {
		method, ct string
		has        bool
		kind       BodyKind
		boundary   string
	}{
		{"POST", "", false, BodyNone, ""},
		{"POST", "", true, BodyForm, ""},
		{"PUT", "", true, BodyOpaque, ""},
		{"PUT", "application/x-www-form-urlencoded; charset=utf-8", true, BodyForm, ""},
		{"GET", "Application/X-WWW-Form-Urlencoded", true, BodyForm, ""},
		{"POST", "multipart/form-data; boundary=abc", true, BodyMultipart, "abc"},
		{"POST", `multipart/form-data; charset=utf-8; boundary="a b:c"`, true, BodyMultipart, "a b:c"},
		{"POST", "Multipart/Form-Data;BOUNDARY=abc", true, BodyMultipart, "abc"},
		{"POST", "multipart/form-data", true, BodyMultipart, ""},
		{"POST", " multipart/form-data; boundary=abc", true, BodyMultipart, ""},
		{"POST", "multipart/form-data; boundary=abc; boundary=def", true, BodyMultipart, ""},
		{"POST", `multipart/form-data; boundary="abc;def"`, true, BodyMultipart, ""},
		{"POST", `multipart/form-data; x="boundary=a"; boundary=b`, true, BodyMultipart, ""},
		{"POST", "multipart/mixed; boundary=abc", true, BodyMultipart, "abc"},
		{"POST", "application/json", true, BodyJSON, ""},
		{"PATCH", "application/json; charset=utf-8", true, BodyJSON, ""},
		{"POST", "text/x-json", true, BodyJSON, ""},
		{"POST", "application/jsonrequest", true, BodyJSON, ""},
		{"POST", "application/vnd.api+json", true, BodyJSON, ""},
		{"POST", "text/json", true, BodyJSON, ""},
		{"POST", "application/json, text/plain", true, BodyJSON, ""},
		{"POST", "text/plain", true, BodyOpaque, ""},
		{"POST", "application/octet-stream", true, BodyOpaque, ""},
	}
	for _, tc := range tests {
		k, b := BodyKindOf(tc.method, tc.ct, tc.has)
		if k != tc.kind || b != tc.boundary {
			t.Errorf("%s %q %v: got %v %q, want %v %q", tc.method, tc.ct, tc.has, k, b, tc.kind, tc.boundary)
		}
	}
}

// Each part is named as Rack 2.2 names it, and a body in which Rack 2.2,
// Rack 3.1+ and the gate could name a part differently is refused. Rack
// names a part whose name is empty after its filename or Content-Type, so
// name="" with Content-Type: include is include[] (checked against Rack
// 2.2.22's parser).
func TestMultipartPartNamesAsRack(t *testing.T) {
	const empty = `Content-Disposition: form-data; name=""`
	long := func(n int) string {
		// A Content-Disposition whose value after the colon is n bytes.
		pre := ` form-data; name="include"; x="`
		return "Content-Disposition:" + pre + strings.Repeat("y", n-len(pre)-1) + `"`
	}
	params := func(n int) string {
		cd := `Content-Disposition: form-data; name="include"`
		for i := 1; i < n; i++ {
			cd += fmt.Sprintf("; p%d=v", i)
		}
		return cd
	}
	tests := []struct {
		name    string
		in, out string // out "" means refused
		removed int
	}{
		// Named from the Content-Type when the name is empty.
		{"empty name, Content-Type include is include[]", mp(cdn("a"), "1", empty+"\r\nContent-Type: include", "x", cdn("b"), "2"), mp(cdn("a"), "1", cdn("b"), "2"), 1},
		{"header names in any case", mp("CONTENT-DISPOSITION: form-data; name=\"\"\r\ncontent-type: include", "x"), "--XyZ--\r\n", 1},
		{"include[] from the Content-Type is the one uuid kept", mp(empty+"\r\nContent-Type: include", "uuid", cdn("include[]"), "uuid"), mp(empty+"\r\nContent-Type: include", "uuid"), 1},
		{"the value is the whole line", mp(empty+"\r\nContent-Type: include[]", "uuid"), "--XyZ--\r\n", 1},
		{"includes from the Content-Type", mp(empty+"\r\nX-A: b\r\nContent-Type: includes", "x", cdn("c"), "3"), mp(cdn("c"), "3"), 1},
		{"text/plain[] without a Content-Type", mp(empty, "x"), mp(empty, "x"), 0},
		{"a Content-Type with parameters is not include", mp(empty+"\r\nContent-Type: include; charset=utf-8", "x"), mp(empty+"\r\nContent-Type: include; charset=utf-8", "x"), 0},
		// Read differently by Rack 2.2 (anywhere, one space) and Rack 3.1+
		// (line start, any spaces).
		{"Content-Type inside another header", mp(empty+"\r\nX-Content-Type: include", "x"), "", 0},
		{"Content-Type without a space", mp(empty+"\r\nContent-Type:include", "x"), "", 0},
		{"Content-Type with two spaces", mp(empty+"\r\nContent-Type:  include", "x"), "", 0},
		{"Content-Type with a tab", mp(empty+"\r\nContent-Type: \tinclude", "x"), "", 0},
		{"two Content-Types", mp(empty+"\r\nContent-Type: include\r\nContent-Type: text/plain", "x"), "", 0},
		{"Content-Type in the disposition", mp(empty+`; x="Content-Type: include"`, "x"), "", 0},
		{"empty Content-Type", mp(empty+"\r\nContent-Type: ", "x"), "", 0},
		// Named from a filename when the name is empty: Rack 2.2 finds it
		// in any header line and unescapes it, Rack 3.1+ takes its base name.
		{"empty name with a filename", mp(empty+`; filename="include"`, "x"), "", 0},
		{"empty name with an escaped filename", mp(empty+`; filename="include%5B%5D"`, "x"), "", 0},
		{"empty name with filename*", mp(empty+`; filename*=UTF-8''include`, "x"), "", 0},
		{"empty name, filename in another header", mp(empty+"\r\nContent-Type: text/plain; filename=include", "x"), "", 0},
		// Content-ID: Rack names a part from it when it finds no disposition
		// name (Rack 3.1+ also when the disposition is too long).
		{"Content-ID", mp(cdn("a")+"\r\nContent-ID: include[]", "x"), "", 0},
		{"Content-ID inside another header", mp(cdn("a")+"\r\nX-Content-ID: include[]", "x"), "", 0},
		// Rack 3.1+'s limits and case rules.
		{"disposition of 1,536 bytes", mp(long(1536), "x"), "--XyZ--\r\n", 1},
		{"disposition of 1,537 bytes", mp(long(1537), "x"), "", 0},
		{"16 disposition parameters", mp(params(16), "x"), "--XyZ--\r\n", 1},
		{"17 disposition parameters", mp(params(17), "x"), "", 0},
		{"upper-case name parameter", mp(`Content-Disposition: form-data; NAME="include"`, "x"), "", 0},
		{"mixed-case name parameter", mp(`Content-Disposition: form-data; Name="a"`, "x"), "", 0},
		{"upper-case other parameter", mp(`Content-Disposition: form-data; name="a"; FileName="b"`, "x"), "", 0},
		{"unquoted name followed by a space", mp(`Content-Disposition: form-data; name=include ; x=1`, "x"), "", 0},
		{"unquoted name followed by a space at the end", mp(`Content-Disposition: form-data; name=include `, "x"), "--XyZ--\r\n", 1},
	}
	for _, tc := range tests {
		out, removed, err := FilterIncludesMultipart([]byte(tc.in), "XyZ")
		if tc.out == "" {
			if err == nil {
				t.Errorf("%s: want refusal, got %q", tc.name, out)
				continue
			}
			wantStatus(t, err, 400)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(out) != tc.out || removed != tc.removed {
			t.Errorf("%s: got %q (%d), want %q (%d)", tc.name, out, removed, tc.out, tc.removed)
		}
	}
}

// The other names the gate acts on reach it through the same fallback:
// _method[], as_user_id[] and access_token[] named from a Content-Type.
func TestMultipartFallbackNamesSignal(t *testing.T) {
	body := func(ct string) []byte {
		return []byte(mp(cdn("a"), "1", `Content-Disposition: form-data; name=""`+"\r\nContent-Type: "+ct, "x"))
	}
	inspect := func(ct string) (*Inspection, error) {
		return Inspect(Request{Method: "POST", Header: hdr("Authorization", "Bearer t"), ContentType: "multipart/form-data; boundary=XyZ", Body: body(ct)}, DefaultLimits())
	}
	if in, err := inspect("_method"); err != nil || in.MethodOverride != "_method" {
		t.Errorf("_method[]: got %v; want the _method override", err)
	}
	if in, err := inspect("as_user_id"); err != nil || !in.Masquerade {
		t.Errorf("as_user_id[]: got %v; want masquerade", err)
	}
	_, err := inspect("access_token")
	var pe *Error
	if !errors.As(err, &pe) || pe.Message != MsgAmbiguousAccessToken {
		t.Errorf("access_token[]: got %v, want %q", err, MsgAmbiguousAccessToken)
	}
	if in, err := inspect("text/plain"); err != nil || in.MethodOverride != "" || in.Masquerade || in.Token != "t" {
		t.Errorf("text/plain[]: got %v; want the header token and nothing signalled", err)
	}
}
