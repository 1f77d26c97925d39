package params

import (
	"net/http"
	"slices"
	"testing"
)

func TestEachParam(t *testing.T) {
	collect := func(r Request) []string {
		in, err := Inspect(r, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		in.EachParam(func(k, v string) bool { out = append(out, k+"="+v); return true })
		return out
	}
	got := collect(Request{Method: "PUT", Header: http.Header{}, RawQuery: "a=1&course%5Baccount_id%5D=sis_account_id%3AX+Y",
		ContentType: "application/x-www-form-urlencoded", Body: []byte("settings[source_course_id]=7&&b")})
	want := []string{"a=1", "course[account_id]=sis_account_id:X Y", "settings[source_course_id]=7", "b="}
	if !slices.Equal(got, want) {
		t.Errorf("form: %q, want %q", got, want)
	}
	got = collect(Request{Method: "PUT", Header: http.Header{}, ContentType: "application/json",
		Body: []byte(`{"course":{"account_id":"9","x":[1,{"y":true}],"n":null},"account_id":12345678901234567890}`)})
	want = []string{"course[account_id]=9", "course[x][]=1", "course[x][][y]=true", "account_id=12345678901234567890"}
	if !slices.Equal(got, want) {
		t.Errorf("json: %q, want %q", got, want)
	}
	body := "--XX\r\nContent-Disposition: form-data; name=\"course[account_id]\"\r\n\r\n5\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nfile\r\n--XX--\r\n"
	got = collect(Request{Method: "POST", Header: http.Header{}, ContentType: "multipart/form-data; boundary=XX", Body: []byte(body)})
	want = []string{"course[account_id]=5"}
	if !slices.Equal(got, want) {
		t.Errorf("multipart: %q, want %q", got, want)
	}
}
