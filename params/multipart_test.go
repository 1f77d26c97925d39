package params

import (
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
