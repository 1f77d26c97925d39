package params

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// manyParamsBody builds a body of about size bytes made of many small
// top-level parameters, far more than DefaultLimits().MaxParams, in the
// given body kind ("json", "form" or "multipart", boundary "XyZ").
func manyParamsBody(kind string, size int) (contentType string, body []byte) {
	var b strings.Builder
	b.Grow(size + 64)
	switch kind {
	case "json":
		contentType = "application/json"
		b.WriteByte('{')
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%07d":1`, i)
		}
		b.WriteByte('}')
	case "form":
		contentType = "application/x-www-form-urlencoded"
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteByte('&')
			}
			fmt.Fprintf(&b, "k%07d=1", i)
		}
	case "multipart":
		contentType = "multipart/form-data; boundary=XyZ"
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"k%07d\"\r\n\r\n1\r\n", i)
		}
		b.WriteString("--XyZ--\r\n")
	default:
		panic(kind)
	}
	return contentType, []byte(b.String())
}

var boundedBodySizes = []struct {
	name string
	size int
}{{"100KB", 100 << 10}, {"1MB", 1 << 20}, {"10MB", 10 << 20}}

// Refusing a body for too many parameters costs about the same whatever
// the body's size: the scan counts as it goes and stops at the limit, so a
// 10 MB body of a million members is not read (or copied, or split into a
// million names) before the refusal. Measured as bytes allocated per
// refusal, which before the scans counted as they went grew with the body
// (about 120 MB for 10 MB of JSON members, the body's size for a form).
func TestRefusalForTooManyParamsIsBounded(t *testing.T) {
	const maxAllocated = 256 << 10
	for _, kind := range []string{"json", "form", "multipart"} {
		for _, sz := range boundedBodySizes {
			ct, body := manyParamsBody(kind, sz.size)
			req := Request{Method: "POST", ContentType: ct, Body: body}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Inspect(req, DefaultLimits())
			runtime.ReadMemStats(&after)
			var pe *Error
			if !errors.As(err, &pe) || pe.Message != MsgTooManyParams {
				t.Fatalf("%s %s: want %q, got %v", kind, sz.name, MsgTooManyParams, err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > maxAllocated {
				t.Errorf("%s %s: refusing allocated %d bytes, want at most %d", kind, sz.name, got, maxAllocated)
			}
		}
	}
}

// BenchmarkInspectRefusedTooManyParams shows that time and allocated bytes
// per refused body stay flat as a body of many small parameters grows.
func BenchmarkInspectRefusedTooManyParams(b *testing.B) {
	for _, kind := range []string{"json", "form", "multipart"} {
		for _, sz := range boundedBodySizes {
			ct, body := manyParamsBody(kind, sz.size)
			req := Request{Method: "POST", ContentType: ct, Body: body}
			b.Run(kind+"/"+sz.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := Inspect(req, DefaultLimits()); err == nil {
						b.Fatal("accepted")
					}
				}
			})
		}
	}
}

// BenchmarkInspectAcceptedBody is the accepted path for typical bodies, so
// the bounded scans can be checked not to slow it down.
func BenchmarkInspectAcceptedBody(b *testing.B) {
	bodies := []struct{ name, ct, body string }{
		{"json", "application/json", `{"assignment":{"name":"Essay","points_possible":10,"submission_types":["online_text_entry"]},"include":["uuid","submission"],"per_page":50,"access_token":"1~abcdefghijklmnopqrstuvwxyz"}`},
		{"form", "application/x-www-form-urlencoded", "assignment%5Bname%5D=Essay&assignment%5Bpoints_possible%5D=10&include%5B%5D=uuid&include%5B%5D=submission&per_page=50&access_token=1~abcdefghijklmnopqrstuvwxyz"},
		{"multipart", "multipart/form-data; boundary=XyZ", mp(cdn("assignment[name]"), "Essay", cdn("assignment[points_possible]"), "10",
			cdn("include[]"), "uuid", cdn("include[]"), "submission", cdn("access_token"), "1~abcdefghijklmnopqrstuvwxyz",
			"Content-Disposition: form-data; name=\"attachment\"; filename=\"a.txt\"\r\nContent-Type: text/plain", strings.Repeat("x", 2048))},
	}
	opt := RewriteOptions{FilterIncludes: true, StripCredentials: true}
	for _, bd := range bodies {
		req := Request{Method: "POST", Header: hdr("Accept", "application/json"), RawQuery: "per_page=10&page=2", ContentType: bd.ct, Body: []byte(bd.body)}
		b.Run(bd.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in, err := Inspect(req, DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := in.Rewrite(opt); err != nil {
					b.Fatal(err)
				}
				in.Release()
			}
		})
	}
}

// The limit counts query and body together, exactly: the scans that stop
// early stop at the same pair as the count did.
func TestParamLimitSpansQueryAndBody(t *testing.T) {
	lim := Limits{MaxParams: 5}
	bodies := map[string]func(n int) (string, string){
		"form": func(n int) (string, string) {
			var p []string
			for i := range n {
				p = append(p, fmt.Sprintf("b%d=1", i))
			}
			return "application/x-www-form-urlencoded", "&" + strings.Join(p, "&&") + "&"
		},
		"json": func(n int) (string, string) {
			var p []string
			for i := range n {
				p = append(p, fmt.Sprintf(`"b%d":{"x":1,"y":2}`, i))
			}
			return "application/json", "{" + strings.Join(p, ",") + "}"
		},
		"multipart": func(n int) (string, string) {
			var p []string
			for i := range n {
				p = append(p, cdn(fmt.Sprintf("b%d", i)), "1")
			}
			return "multipart/form-data; boundary=XyZ", mp(p...)
		},
	}
	for kind, body := range bodies {
		for q := 0; q <= 5; q++ {
			var qs []string
			for i := range q {
				qs = append(qs, fmt.Sprintf("q%d=1", i))
			}
			for b := 0; b <= 6-q; b++ {
				ct, bd := body(b)
				_, err := Inspect(Request{Method: "POST", RawQuery: strings.Join(qs, "&"), ContentType: ct, Body: []byte(bd)}, lim)
				var pe *Error
				tooMany := errors.As(err, &pe) && pe.Message == MsgTooManyParams
				if want := q+b > 5; tooMany != want || !want && err != nil {
					t.Errorf("%s: %d query + %d body parameters: got %v, want too many: %v", kind, q, b, err, want)
				}
			}
		}
	}
	// The query alone.
	if _, err := Inspect(Request{Method: "GET", RawQuery: "a=1&&b=2&c&d=&e=5&"}, lim); err != nil {
		t.Errorf("5 query pairs (and empty segments): %v", err)
	}
	if _, err := Inspect(Request{Method: "GET", RawQuery: "a=1&b=2&c&d=&e=5&f"}, lim); err == nil {
		t.Error("6 query pairs accepted")
	}
}
