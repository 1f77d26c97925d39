package params

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("want *Error %d, got %v", status, err)
	}
	if pe.Status != status {
		t.Fatalf("want status %d, got %d (%s)", status, pe.Status, pe.Message)
	}
}

// filterIncludes is what the gate does to the parameters of a request whose
// key has allow_includes=false (and, with strip, whose credential it
// substitutes): Inspect, then Rewrite. It returns the rewritten query or
// body and the number of include values removed, and checks that Rewrite's
// Changed flags say whether the query and body changed.
func filterIncludes(t testing.TB, req Request, strip bool) (Rewritten, error) {
	t.Helper()
	in, err := Inspect(req, DefaultLimits())
	if err != nil {
		return Rewritten{}, err
	}
	defer in.Release()
	rw, err := in.Rewrite(RewriteOptions{FilterIncludes: true, StripCredentials: strip})
	if err != nil {
		return Rewritten{}, err
	}
	if rw.IncludesRemoved < 0 {
		t.Fatalf("negative IncludesRemoved %d", rw.IncludesRemoved)
	}
	if rw.QueryChanged != (rw.RawQuery != req.RawQuery) || rw.BodyChanged != !bytes.Equal(rw.Body, req.Body) {
		t.Fatalf("Changed flags %v/%v for %q %q -> %q %q", rw.QueryChanged, rw.BodyChanged, req.RawQuery, req.Body, rw.RawQuery, rw.Body)
	}
	return rw, nil
}

// filterQuery applies the include filter to a query string.
func filterQuery(t testing.TB, raw string) (string, int, error) {
	t.Helper()
	rw, err := filterIncludes(t, Request{Method: "GET", RawQuery: raw}, false)
	return rw.RawQuery, rw.IncludesRemoved, err
}

// filterBody applies the include filter to a POST body of this Content-Type.
func filterBody(t testing.TB, contentType string, body []byte) ([]byte, int, error) {
	t.Helper()
	rw, err := filterIncludes(t, Request{Method: "POST", ContentType: contentType, Body: body}, false)
	return rw.Body, rw.IncludesRemoved, err
}

const (
	ctJSON      = "application/json"
	ctMultipart = "multipart/form-data; boundary=XyZ"
)

func TestFilterIncludesQuery(t *testing.T) {
	tests := []struct {
		in, out string
		removed int
		err     bool
	}{
		{"", "", 0, false},
		{"per_page=10", "per_page=10", 0, false},
		{"per_page=10&include[]=enrollments&include[]=uuid&page=2", "per_page=10&include[]=uuid&page=2", 1, false},
		{"include=uuid", "", 1, false},
		{"include%5B%5D=uuid", "include%5B%5D=uuid", 0, false},
		{"include%5b%5d=uu%69d&x=1", "include%5b%5d=uu%69d&x=1", 0, false},
		{"include[]=x", "", 1, false},
		{"include[]=x&include[]=uuid&include[]=uuid", "include[]=uuid", 2, false},
		{"include[]=uuid&include[]=uuid", "include[]=uuid", 1, false},
		{"include[0]=uuid&a=1", "a=1", 1, false},
		{"include[a]=uuid&a=1", "a=1", 1, false},
		{"a=1&include[][a]=uuid&include[]=uuid", "a=1", 2, false},
		{"[include][]=uuid&a=1", "a=1", 1, false},
		{"include]=uuid&a=1", "a=1", 1, false},
		{"Include[]=x", "Include[]=x", 0, false},
		{"include_avatar=1&exclude[]=x", "include_avatar=1&exclude[]=x", 0, false},
		{"includes[]=x&include[]=uuid", "include[]=uuid", 1, false},
		{"includes=x&includes[]=uuid", "", 0, true},
		{"include=uuid&include[]=x", "", 0, true},
		{"include[]=x&include=uuid", "", 0, true},
		{"include[a]=x&include=uuid", "", 2, false},
		{"a=1;include[]=x", "", 0, true},
		{"a=%zz", "", 0, true},
		{"a=%4", "", 0, true},
		{"a=\x01", "", 0, true},
		{"a=\xc3\xa9", "", 0, true},
		{"a=1&&include=x&b=2&", "a=1&&b=2&", 1, false},
		{"&include=x", "", 1, false},
		{"include=x&a=1", "a=1", 1, false},
		{"a=1&include=x", "a=1", 1, false},
		{"a=1& include[]=x&b", "", 0, true}, // Rack skips spaces after '&', Go does not
		{"include& &0000000", "", 0, true},  // fuzz finding: cutting the first pair changed how Rack reads " "
		{"a=1 &b= 2", "a=1 &b= 2", 0, false},
		{" include[]=x", " include[]=x", 0, false}, // but not at the start
		{"include+[]=x", "include+[]=x", 0, false},
		{"include[]", "", 1, false},
		{"include[]=uuid=", "", 1, false},
		{"a=%2B&include[]=%75uid&z=%26", "a=%2B&include[]=%75uid&z=%26", 0, false},
	}
	for _, tc := range tests {
		out, removed, err := filterQuery(t, tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%q: want error, got %q", tc.in, out)
				continue
			}
			wantStatus(t, err, 400)
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if out != tc.out || removed != tc.removed {
			t.Errorf("%q: got %q (%d), want %q (%d)", tc.in, out, removed, tc.out, tc.removed)
		}
	}
}

func TestFilterIncludesQueryNoAlloc(t *testing.T) {
	raw := "per_page=10&page=2&sort=name"
	n := testing.AllocsPerRun(100, func() {
		in, err := Inspect(Request{Method: "GET", RawQuery: raw}, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		rw, err := in.Rewrite(RewriteOptions{FilterIncludes: true})
		if err != nil || rw.RawQuery != raw {
			t.Fatal("changed")
		}
		in.Release()
	})
	if n > 1 {
		t.Errorf("allocs = %v", n)
	}
}

func TestClassifyKey(t *testing.T) {
	tests := []struct {
		key        string
		name, form uint8
	}{
		{"include", nmInclude, fmScalar},
		{"include[]", nmInclude, fmArray},
		{"include[0]", nmInclude, fmOther},
		{"include[a]", nmInclude, fmOther},
		{"[include][]", nmInclude, fmOther},
		{"include]", nmInclude, fmScalar},
		{"[include]", nmInclude, fmScalar},
		{"include[", nmInclude, fmOther},
		{"include[][a]", nmInclude, fmOther},
		{"includes[]", nmIncludes, fmArray},
		{"Include[]", nmOther, 0},
		{"includex[]", nmOther, 0},
		{"[]", nmOther, 0},
		{"", nmOther, 0},
		{"access_token", nmAccessToken, fmScalar},
		{"_method[x]", nmMethod, fmOther},
		{"[[as_user_id", nmAsUserID, fmScalar},
	}
	for _, tc := range tests {
		n, f := classifyKey(tc.key)
		if n != tc.name || f != tc.form {
			t.Errorf("%q: got %d/%d want %d/%d", tc.key, n, f, tc.name, tc.form)
		}
		n, f = classifyKey([]byte(tc.key))
		if n != tc.name || f != tc.form {
			t.Errorf("%q bytes: got %d/%d want %d/%d", tc.key, n, f, tc.name, tc.form)
		}
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxParams: 3, MaxKeyBytes: 8}
	if _, err := Inspect(Request{Method: "GET", RawQuery: "a=1&b=2&c=3"}, lim); err != nil {
		t.Fatal(err)
	}
	_, err := Inspect(Request{Method: "GET", RawQuery: "a=1&b=2&c=3&d=4"}, lim)
	wantStatus(t, err, 400)
	// query + body together
	_, err = Inspect(Request{Method: "POST", RawQuery: "a=1&b=2", Body: []byte("c=3&d=4")}, lim)
	wantStatus(t, err, 400)
	if _, err := Inspect(Request{Method: "GET", RawQuery: "abcdefgh=1&%61bcdefgh=1"}, lim); err != nil {
		t.Fatal(err)
	}
	_, err = Inspect(Request{Method: "GET", RawQuery: "abcdefghi=1"}, lim)
	wantStatus(t, err, 400)
	_, err = Inspect(Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"abcdefghi":1}`)}, lim)
	wantStatus(t, err, 400)
	lim.MaxJSONDepth = 2
	if _, err := Inspect(Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"a":[1]}`)}, lim); err != nil {
		t.Fatal(err)
	}
	_, err = Inspect(Request{Method: "POST", ContentType: "application/json", Body: []byte(`{"a":[[1]]}`)}, lim)
	wantStatus(t, err, 400)
	d := DefaultLimits()
	if d.MaxParams != 1000 || d.MaxKeyBytes != 1024 || d.MaxJSONDepth != 64 {
		t.Fatal(d)
	}
	// Zero limits mean defaults.
	if _, err := Inspect(Request{Method: "GET", RawQuery: strings.Repeat("a=1&", 999) + "a=1"}, Limits{}); err != nil {
		t.Fatal(err)
	}
	_, err = Inspect(Request{Method: "GET", RawQuery: strings.Repeat("a=1&", 1000) + "a=1"}, Limits{})
	wantStatus(t, err, 400)
}
