package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Canvas's exact messages (docs/canvas-semantics.md#error-bodies). Clients match on them.
const (
	msgInsufficient = "Insufficient scopes on access token."
	msgInvalid      = "Invalid access token."
	msgExpired      = "Expired access token."
	msgRevoked      = "Revoked access token."
	msgNoUser       = "user authorization required"
	wwwAuthenticate = `Bearer realm="canvas-lms"`
	jsonContentType = "application/json; charset=utf-8"
)

// Pre-rendered bodies: a denial costs no encoding work.
var (
	bodyInsufficient = []byte(`{"errors":[{"message":"` + msgInsufficient + `"}]}`)
	bodyInvalid      = []byte(`{"errors":[{"message":"` + msgInvalid + `"}]}`)
	bodyRevoked      = []byte(`{"errors":[{"message":"` + msgRevoked + `"}]}`)
	bodyNoUser       = []byte(`{"status":"unauthenticated","errors":[{"message":"` + msgNoUser + `"}]}`)
)

// writeDenial answers a denied decision exactly as Canvas would. Token
// problems carry WWW-Authenticate; a scope miss deliberately does not.
func writeDenial(w http.ResponseWriter, d policy.Decision) {
	switch d.Outcome {
	case policy.InsufficientScope:
		writeJSON(w, http.StatusUnauthorized, bodyInsufficient, false)
	case policy.Expired:
		body, _ := json.Marshal(map[string][]map[string]string{"errors": {{
			"message":    msgExpired,
			"expired_at": d.Token.ExpiresAt.UTC().Format(time.RFC3339),
		}}})
		writeJSON(w, http.StatusUnauthorized, body, true)
	case policy.Revoked:
		writeJSON(w, http.StatusUnauthorized, bodyRevoked, true)
	default: // InvalidToken, UnknownToken
		writeJSON(w, http.StatusUnauthorized, bodyInvalid, true)
	}
}

// writeNoCredential is Canvas's answer to an API request without a user.
func writeNoCredential(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, bodyNoUser, true)
}

// writeClientError answers a request the gate refuses to interpret (bad
// path, ambiguous parameters, too large) in Canvas's error shape.
func writeClientError(w http.ResponseWriter, status int, message string) {
	body, _ := json.Marshal(map[string][]map[string]string{"errors": {{"message": message}}})
	writeJSON(w, status, body, false)
}

func writeJSON(w http.ResponseWriter, status int, body []byte, challenge bool) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if challenge {
		h.Set("WWW-Authenticate", wwwAuthenticate)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
