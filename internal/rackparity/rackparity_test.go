package rackparity

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

var (
	sharedOnce   sync.Once
	sharedOracle *Oracle
	sharedErr    error
)

func oracle(t *testing.T) *Oracle {
	t.Helper()
	Require(t)
	sharedOnce.Do(func() { sharedOracle, sharedErr = StartOracle() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedOracle
}

const mpCT = "multipart/form-data; boundary=B"

func part(headers, content string) string {
	return "--B\r\n" + headers + "\r\n\r\n" + content + "\r\n"
}

// The readings below are facts of Rack 2.2 and Rails 6.1 the gate's
// parity depends on; each fails if the oracle reads the request any other
// way (a broken env, a missing middleware, another credential rule).
func TestOracleReadsAsRails(t *testing.T) {
	o := oracle(t)
	cases := []struct {
		name  string
		req   Request
		check func(t *testing.T, r Reading)
	}{
		{"an unnamed part is named by its Content-Type", Request{Method: "POST", Target: "/x", Header: [][2]string{{"Content-Type", mpCT}},
			Body: []byte(part("Content-Disposition: form-data; name=\"\"\r\nContent-Type: include", "teachers") + "--B--\r\n")},
			func(t *testing.T, r Reading) {
				if got := r.ForeignIncludes("include"); len(got) != 1 || got[0] != "teachers" {
					t.Errorf("include = %v, want [teachers]", r.Params["include"])
				}
			}},
		{"_method in a POST form body overrides the method", Request{Method: "POST", Target: "/x", Header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}},
			Body: []byte("_method=delete")},
			func(t *testing.T, r Reading) {
				if r.RequestMethod != "DELETE" || r.OriginalMethod != "POST" || !r.Overridden {
					t.Errorf("request_method %q method %q overridden %v", r.RequestMethod, r.OriginalMethod, r.Overridden)
				}
			}},
		{"_method in the query does not", Request{Method: "POST", Target: "/x?_method=DELETE"},
			func(t *testing.T, r Reading) {
				if r.RequestMethod != "POST" || r.Overridden {
					t.Errorf("request_method %q overridden %v", r.RequestMethod, r.Overridden)
				}
			}},
		{"query wins over the body; Bearer header wins over both", Request{Method: "POST", Target: "/x?access_token=q&a=1",
			Header: [][2]string{{"Authorization", "Bearer  h x"}, {"Content-Type", "application/x-www-form-urlencoded"}}, Body: []byte("access_token=b&a=2")},
			func(t *testing.T, r Reading) {
				if tok, _ := r.CredentialString(); tok != "h x" || r.CredentialSource != "header" || r.Params["access_token"] != "q" || r.Params["a"] != "1" {
					t.Errorf("credential %q from %q, params %v", tok, r.CredentialSource, r.Params)
				}
			}},
		{"a bare Bearer hides the parameter", Request{Method: "GET", Target: "/x?access_token=q", Header: [][2]string{{"Authorization", "Bearer"}}},
			func(t *testing.T, r Reading) {
				if r.Credential != nil || r.CredentialSource != "header" {
					t.Errorf("credential %v from %q", r.Credential, r.CredentialSource)
				}
			}},
		{"a lower-case bearer falls back to the parameter", Request{Method: "GET", Target: "/x?access_token=q", Header: [][2]string{{"Authorization", "bearer h"}}},
			func(t *testing.T, r Reading) {
				if tok, _ := r.CredentialString(); tok != "q" || r.CredentialSource != "params" {
					t.Errorf("credential %v from %q", r.Credential, r.CredentialSource)
				}
			}},
		{"JSON members are parameters", Request{Method: "POST", Target: "/x", Header: [][2]string{{"Content-Type", "application/json"}}, Body: []byte(`{"\u0069nclude":["x"],"as_user_id":1}`)},
			func(t *testing.T, r Reading) {
				if _, ok := r.Param("as_user_id"); !ok || len(r.ForeignIncludes("include")) != 1 {
					t.Errorf("params %v", r.Params)
				}
			}},
		{"the host is the last X-Forwarded-Host entry", Request{Method: "GET", Target: "/x", Header: [][2]string{{"Host", "canvas.test:1,evil.test"}, {"X-Forwarded-Host", "a.test, b.test:8080"}}},
			func(t *testing.T, r Reading) {
				if r.Host != "b.test" || r.HostWithPort != "b.test:8080" {
					t.Errorf("host %q host_with_port %q", r.Host, r.HostWithPort)
				}
			}},
		{"a scalar then an array of one name is refused", Request{Method: "GET", Target: "/x?include=a&include[]=b"},
			func(t *testing.T, r Reading) {
				if r.Raised == "" {
					t.Errorf("not refused: %v", r.Params)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := o.Read(c.req)
			if err != nil {
				t.Fatal(err)
			}
			if r.Raised != "" && !strings.Contains(c.name, "refused") {
				t.Fatalf("Rack raised %s: %s", r.Raised, r.Message)
			}
			c.check(t, r)
		})
	}
}

func TestStandInServesTheReading(t *testing.T) {
	Require(t)
	s, err := StartStandIn()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/courses?include[]=x", strings.NewReader("_method=PUT&access_token=b"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"request_method":"PUT"`) {
		t.Errorf("answer %s", body)
	}
	got, err := s.Take()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RequestMethod != "PUT" || got[0].Host != "127.0.0.1" || len(got[0].ForeignIncludes("include")) != 1 {
		t.Fatalf("readings %+v", got)
	}
	if tok, _ := got[0].CredentialString(); tok != "b" {
		t.Errorf("credential %v", got[0].Credential)
	}
	if again, _ := s.Take(); len(again) != 0 {
		t.Errorf("Take did not clear: %d left", len(again))
	}
}
