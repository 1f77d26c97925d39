// Command authz is what a Caddy user would build today instead of the
// canvas_scopes handler: a small authorization service behind Caddy's
// forward_auth, making the same decision with the same matcher and policy.
// forward_auth sends the original method and URI in X-Forwarded-Method and
// X-Forwarded-Uri and copies the client's headers (Authorization among
// them); authz answers 200 (allowed) or 401 with Canvas's error body. It
// cannot rewrite the request, so it does no include filtering and no
// credential substitution: scenario F measures the decision alone.
//
//	authz -listen 127.0.0.1:9001 -keys keys.json
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address")
	keys := flag.String("keys", "keys.json", "keys file")
	flag.Parse()
	data, err := os.ReadFile(*keys)
	if err != nil {
		log.Fatal(err)
	}
	store, err := policy.Load(*keys, data, policy.ParseOptions{}, policy.CompileOptions{})
	if err != nil {
		log.Fatal(err)
	}
	limits := params.DefaultLimits()
	deny := func(w http.ResponseWriter, msg string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"message":"` + msg + `"}]}`))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Header.Get("X-Forwarded-Method")
		path, query, _ := strings.Cut(r.Header.Get("X-Forwarded-Uri"), "?")
		canonical, err := matcher.Canonicalize(path)
		if err != nil || method == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// The credential from the header or the query string, as Canvas
		// reads it (a body credential never reaches forward_auth).
		insp, err := params.Inspect(params.Request{Method: method, Header: r.Header, RawQuery: query}, limits)
		if err != nil || insp.Token == "" {
			deny(w, "user authorization required")
			return
		}
		d := store.Decide(insp.Token, policy.Request{
			Method: method, Path: canonical, Host: r.Header.Get("X-Forwarded-Host"),
			Masquerade: insp.Masquerade, Now: time.Now(),
		})
		switch d.Outcome {
		case policy.Allowed:
			w.WriteHeader(http.StatusOK)
		case policy.InsufficientScope:
			deny(w, "Insufficient scopes on access token.")
		default:
			deny(w, "Invalid access token.")
		}
	})
	log.Printf("authz: %d keys, %d tokens, on %s", len(store.Keys()), store.TokenCount(), *listen)
	log.Fatal(http.ListenAndServe(*listen, h))
}
