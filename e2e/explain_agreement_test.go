package e2e

import (
	"strings"
	"testing"
)

// The gate and `caddy canvas-scopes explain` make one decision (both call
// gate.Decide): for every request of the decision, canonical-path, include
// and masquerade tests that explain can express (a method, a URL and a
// token), the decision the gate records in its placeholder, whether it
// forwards, and what it forwards are what explain prints.
func TestExplainAgreesWithGate(t *testing.T) {
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Site:     "header >X-Gate {http.canvas_scopes.decision}",
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	type request struct{ method, target, token string }
	var reqs []request
	for _, c := range decisionCases {
		if c.token != "" { // explain decides for a token
			reqs = append(reqs, request{c.method, c.target, c.token})
		}
	}
	for _, target := range []string{
		"/api/v1//courses/1%2f2/", "/api/v1/courses/sis_course_id:A.B", "/api/v1/courses/7/assignments?per_page=10&page=2",
		"/api/v1/courses/../accounts", "/api/v1/courses/%2e%2e/accounts", "/api/v1/courses%5c7", "/api/v1/courses/7;x",
		"/api/v1/courses?per_page=10&include[]=enrollments&include[]=uuid&includes=term&page=2",
		"/api/v1/courses?_method=DELETE", "/api/v1/courses?as_user_id=5",
	} {
		reqs = append(reqs, request{"GET", target, tokA})
	}
	reqs = append(reqs,
		request{"GET", "/api/v1/courses?include[]=enrollments", tokIncludes},
		request{"GET", "/api/v1/courses?as_user_id=5", tokMasq},
		request{"GET", "/api/v1/courses?page=2", tokSub},
		request{"GET", "/api/v1/courses", tokReport},
	)
	for _, rq := range reqs {
		raw := rq.method + " " + rq.target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + rq.token + "\r\nConnection: close\r\n\r\n"
		resp := in.rawRequest(raw)
		gateDecision := ""
		for _, line := range strings.Split(resp, "\r\n") {
			if v, ok := strings.CutPrefix(line, "X-Gate: "); ok {
				gateDecision = v
			}
		}
		forwarded := up.take()

		out, _, code := runCLI(t, "", "explain", "--keys", in.keysPath, "--token-sha256", sha(rq.token), rq.method, rq.target)
		f := explainLines(out)
		decision := f["decision"]
		if enforced, ok := strings.CutPrefix(decision, "would_deny (report mode: enforce would answer "); ok {
			decision = strings.TrimSuffix(enforced, ")")
		}
		if decision != gateDecision {
			t.Errorf("%s %s: explain says %q, the gate decided %q", rq.method, rq.target, f["decision"], gateDecision)
		}
		if (code == 0) != (len(forwarded) == 1) {
			t.Errorf("%s %s: explain exit %d, the gate forwarded %d request(s)", rq.method, rq.target, code, len(forwarded))
			continue
		}
		if code == 0 && f["forwarded as"] != rq.method+" "+forwarded[0].RequestURI {
			t.Errorf("%s %s: explain forwards as %q, the gate forwarded %s %s", rq.method, rq.target, f["forwarded as"], rq.method, forwarded[0].RequestURI)
		}
	}
}
