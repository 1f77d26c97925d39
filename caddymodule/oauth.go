package caddymodule

// Machine-to-machine access: the OAuth2 client_credentials grant at Canvas's
// token endpoint for clients registered in the keys file, self-contained
// gateway tokens (package oauth), RFC 7662 introspection and RFC 7009
// revocation. Secrets and tokens are never logged: logs carry the client id
// (registered ids only) and the token's short id (a jti prefix).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// oauthGate is the per-config state of the OAuth endpoints; nil when
// token_signing_keys is not configured, in which case the gate answers no
// OAuth request and accepts no gateway token. Issuing, verifying and
// binding gateway tokens is gate.Gateway's; this file keeps the HTTP
// endpoints.
type oauthGate struct {
	gate.Gateway
	failDelay time.Duration
}

// Process-wide state, shared across config reloads: a reload must neither
// forget revocations nor reset an attacker's failure budget.
var (
	revocations = oauth.NewRevocations(maxRevocations, maxRevocationsPerClient)
	authLimiter = oauth.NewAuthLimiter(authFailureBurst, unknownClientFailureBurst, time.Minute, maxLimitedAddrs)
)

const (
	// maxRevocations bounds the revocation set (82 bytes each measured full:
	// 86 MB at the bound).
	maxRevocations = 1 << 20
	// maxRevocationsPerClient bounds one client's share: 16,384 revoked
	// tokens that have not expired yet, e.g. one revocation every 0.2 s
	// for a whole 1h token_ttl. A client at its share gets 503; 64 clients
	// would have to fill theirs before anyone else's revocation fails.
	maxRevocationsPerClient = maxRevocations / 64
	// authFailureBurst failed client authentications per minute, source
	// address and registered client id are tolerated; then that client id
	// gets 429 from that address (see oauth.AuthLimiter).
	authFailureBurst = 10
	// unknownClientFailureBurst failures per minute and source address with
	// unregistered client ids are tolerated; then unregistered ids get 429
	// from that address. Registered clients there are unaffected.
	unknownClientFailureBurst = 100
	maxLimitedAddrs           = 10000
	// authFailureDelay slows every failed client authentication.
	authFailureDelay = 250 * time.Millisecond
	// maxOAuthBody is the largest token, introspection or revocation
	// request body the gate reads.
	maxOAuthBody = 16 << 10
	basicRealm   = `Basic realm="canvas-scopes"`
)

var (
	oauthAuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "oauth_client_auth_failures_total",
		Help: "Failed OAuth2 client authentications at the gate, by client id (registered ids only, else \"unknown\").",
	}, []string{"client_id"})

	oauthTokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "oauth_tokens_issued_total",
		Help: "Gateway tokens issued by the client_credentials grant, by client id.",
	}, []string{"client_id"})

	oauthCollectors = []prometheus.Collector{oauthAuthFailures, oauthTokensIssued}
)

func init() {
	oauthAuthFailures.WithLabelValues(unknownKeyLabel)
}

// provisionOAuth resolves token_signing_keys ({env.*}, {file.*}) and
// registers the OAuth metrics. Errors never contain a key.
func (h *Handler) provisionOAuth(ctx caddy.Context) error {
	if len(h.TokenSigningKeys) == 0 {
		h.oauth = nil
		return nil
	}
	keys := make([][]byte, 0, len(h.TokenSigningKeys))
	for i, raw := range h.TokenSigningKeys {
		v, err := resolveSecret(raw)
		if err != nil {
			return fmt.Errorf("canvas_scopes: token_signing_keys: key %d cannot be resolved: %v", i+1, err)
		}
		keys = append(keys, []byte(v))
	}
	signer, err := oauth.NewSigner(keys)
	if err != nil {
		return fmt.Errorf("canvas_scopes: token_signing_keys: %v", err)
	}
	h.oauth = &oauthGate{Gateway: gate.Gateway{Signer: signer, Revocations: revocations}, failDelay: authFailureDelay}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range oauthCollectors {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return err
				}
			}
		}
	}
	return nil
}

// serveOAuth answers the gate's OAuth requests. It reports false, with the
// request (and its body) untouched, for everything else: the caller then
// carries on as for any request.
func (h *Handler) serveOAuth(w http.ResponseWriter, r *http.Request, canonical string) (bool, error) {
	if canonical == oauth.TokenPath {
		return h.serveTokenPath(w, r), nil
	}
	if h.oauth == nil {
		return false, nil
	}
	switch canonical {
	case oauth.IntrospectPath, oauth.RevokePath:
		h.serveClientEndpoint(w, r, canonical)
		return true, nil
	}
	return false, nil
}

// serveTokenPath answers a request to Canvas's token endpoint that names a
// client registered in the keys file (its id as HTTP Basic user, or a
// client_id parameter in the query or a form, JSON or multipart body), and
// reports false, with the request untouched, for every other one: Canvas's
// own clients, LTI client assertions, unknown ids. A request naming a
// registered client is never forwarded, whatever its method, grant type,
// body type or size, so that client's secret never reaches Canvas: it gets
// a token or an RFC 6749 error from the gate. Without token_signing_keys
// the error is unauthorized_client.
func (h *Handler) serveTokenPath(w http.ResponseWriter, r *http.Request) bool {
	store := h.keystore.current.Load()
	ct := r.Header.Get("Content-Type")
	kind, boundary := params.BodyKindOf(r.Method, ct, hasBody(r))
	var body []byte
	bodyRead := true
	if kind == params.BodyForm || kind == params.BodyMultipart || kind == params.BodyJSON {
		// Up to the limit the gate reads any body to: a larger one is
		// refused with 413 by the caller, not forwarded.
		body, bodyRead = peekBody(r, max(h.MaxBodySize, maxOAuthBody))
	}
	named := false
	for _, id := range oauth.ClientIDsIn(r.Header, r.URL.RawQuery, kind, boundary, body) {
		if store.Client(id) != nil {
			named = true
			break
		}
	}
	if !named {
		return false
	}
	fail := func(status int, code, desc string) bool {
		writeOAuthError(w, &oauth.Error{Status: status, Code: code, Description: desc})
		return true
	}
	switch {
	case h.oauth == nil:
		return fail(http.StatusBadRequest, "unauthorized_client", "the gate does not issue tokens: token_signing_keys is not configured")
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "invalid_request", "a token request must be a POST")
	case !bodyRead || len(body) > maxOAuthBody:
		return fail(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
	case kind != params.BodyForm || !oauth.IsFormRequest(ct):
		return fail(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_request", "malformed form body")
	}
	tr, ours, oerr := oauth.ClassifyTokenRequest(r.Header, r.URL.RawQuery, form, func(id string) bool { return store.Client(id) != nil })
	if !ours {
		if g := form["grant_type"]; len(g) > 0 && !slices.Contains(g, "client_credentials") {
			return fail(http.StatusBadRequest, "unsupported_grant_type", "the gate's clients use grant_type=client_credentials")
		}
		return fail(http.StatusBadRequest, "invalid_request", "send grant_type=client_credentials and the client's id and secret in the form body (client_id, client_secret) or in HTTP Basic")
	}
	h.serveToken(w, r, store, tr, oerr)
	return true
}

// serveToken answers a client_credentials request from a registered client.
func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request, store *policy.Store, tr *oauth.TokenRequest, oerr *oauth.Error) {
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	client, ok := h.authenticateClient(w, r, store, tr.Cred)
	if !ok {
		return
	}
	tok, c, scopes, oerr := h.oauth.Issue(client, tr.Scopes, tr.HasScope, h.now())
	if oerr != nil {
		h.oauthLog(zap.WarnLevel, "oauth token refused", client.ClientID, zap.String("developer_key", client.Key.ID),
			zap.String("reason", oerr.Description))
		writeOAuthError(w, oerr)
		return
	}
	oauthTokensIssued.WithLabelValues(client.ClientID).Inc()
	h.oauthLog(zap.InfoLevel, "oauth token issued", client.ClientID,
		zap.String("developer_key", c.KeyID), zap.String("token_id", c.ShortID()),
		zap.Time("expires_at", c.ExpiresAt), zap.Int("scopes", len(scopes)))
	writeOAuthJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(c.ExpiresAt.Sub(c.IssuedAt) / time.Second),
		"scope":        strings.Join(scopes, " "),
	})
}

// serveClientEndpoint answers introspection (RFC 7662) and revocation
// (RFC 7009). Both are client-authenticated, and a client only ever sees
// or revokes its own tokens.
func (h *Handler) serveClientEndpoint(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, &oauth.Error{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"})
		return
	}
	if !oauth.IsFormRequest(r.Header.Get("Content-Type")) {
		writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the body must be application/x-www-form-urlencoded"})
		return
	}
	body, ok := readAllLimited(r, maxOAuthBody)
	if !ok {
		writeOAuthError(w, &oauth.Error{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: "request body too large"})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.URL.RawQuery != "" {
		writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed form body, or parameters in the query string"})
		return
	}
	cred, oerr := oauth.ExtractCredentials(r.Header["Authorization"], form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	store := h.keystore.current.Load()
	client, ok := h.authenticateClient(w, r, store, cred)
	if !ok {
		return
	}
	toks := form["token"]
	if len(toks) != 1 || toks[0] == "" {
		writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: "exactly one token parameter is required"})
		return
	}
	now := h.now()
	claims, entry, _, verr := h.oauth.Verify(store, toks[0], now)
	own := verr == nil && claims.ClientID == client.ClientID
	if path == oauth.RevokePath {
		if own && now.Before(claims.ExpiresAt) {
			if err := revocations.Add(client.ClientID, claims.ID, claims.ExpiresAt, now); err != nil {
				h.oauthLog(zap.ErrorLevel, "oauth revocation refused", client.ClientID, zap.String("token_id", claims.ShortID()), zap.Error(err))
				writeRevocationFull(w, err)
				return
			}
			if !h.shareRevocation(w, r, &claims) {
				return
			}
			h.oauthLog(zap.InfoLevel, "oauth token revoked", client.ClientID, zap.String("token_id", claims.ShortID()))
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	active := own && !entry.Revoked && now.Before(entry.ExpiresAt) && entry.Key.Enabled
	if !active {
		writeOAuthJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeOAuthJSON(w, http.StatusOK, map[string]any{
		"active":        true,
		"scope":         strings.Join(entry.Scopes, " "),
		"client_id":     claims.ClientID,
		"sub":           claims.ClientID,
		"token_type":    "Bearer",
		"exp":           claims.ExpiresAt.Unix(),
		"iat":           claims.IssuedAt.Unix(),
		"jti":           claims.JTI(),
		"developer_key": claims.KeyID,
	})
}

// writeRevocationFull answers a revocation the set cannot hold (RFC 7009
// §2.2.1: 503 with Retry-After).
func writeRevocationFull(w http.ResponseWriter, err error) {
	desc := "the revocation set is full"
	if errors.Is(err, oauth.ErrClientRevocationsFull) {
		desc = "this client has too many revoked tokens that have not expired yet; retry later or rotate its secret"
	}
	w.Header().Set("Retry-After", "60")
	writeOAuthError(w, &oauth.Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: desc})
}

// authenticateClient checks the client's secret in constant time (with a
// dummy comparison for unknown ids), under the failure limit per address
// and client id. On failure it has written the answer: 429 when that
// client id is limited at that address, else 401 invalid_client after a
// delay.
func (h *Handler) authenticateClient(w http.ResponseWriter, r *http.Request, store *policy.Store, cred oauth.Credentials) (*policy.ClientEntry, bool) {
	addr := clientAddr(r)
	client := store.Client(cred.ClientID)
	registered := client != nil
	if ok, retry := authLimiter.Allow(addr, cred.ClientID, registered, time.Now()); !ok {
		secs := int64((retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeOAuthError(w, &oauth.Error{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable",
			Description: "too many failed authentications for this client from this address; retry later"})
		return nil, false
	}
	var want *[32]byte
	if client != nil {
		want = &client.SecretSHA256
	}
	// Always hash and compare, even without a secret or a client.
	if oauth.SecretMatches(cred.Secret, want) && cred.HasSecret {
		return client, true
	}
	label := unknownKeyLabel
	if client != nil {
		label = client.ClientID
	}
	oauthAuthFailures.WithLabelValues(label).Inc()
	authLimiter.Fail(addr, cred.ClientID, registered, time.Now())
	h.oauthLog(zap.InfoLevel, "oauth client authentication failed", label, zap.String("remote_ip", addr))
	sleepCtx(r.Context(), h.oauth.failDelay)
	w.Header().Set("WWW-Authenticate", basicRealm)
	writeOAuthError(w, oauth.InvalidClient())
	return nil, false
}

// oauthLog writes one OAuth log line. clientID must be a registered id (or
// "unknown"): an unregistered "id" may be a mistyped secret.
func (h *Handler) oauthLog(level zapcore.Level, msg, clientID string, fields ...zap.Field) {
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	ce.Write(append([]zap.Field{zap.String("client_id", clientID)}, fields...)...)
}

func writeOAuthError(w http.ResponseWriter, e *oauth.Error) {
	if e.Challenge() && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", basicRealm)
	}
	writeOAuthJSON(w, e.Status, map[string]string{"error": e.Code, "error_description": e.Description})
}

// writeOAuthJSON is writeJSON with the no-cache header RFC 6749 asks of
// token responses.
func writeOAuthJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, body, false)
}

// clientAddr is the client IP as Caddy determined it (honouring
// trusted_proxies), else the connection's remote address.
func clientAddr(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Answers at Canvas's token endpoint for a substituted credential. They
// are constants: nothing of the request is echoed.
const (
	msgKeysFileTokenLogout  = "this token is registered with the gate and cannot delete itself here; ask the gate's operator to revoke it"
	msgTokenEndpointMethod  = "the gate does not forward requests to /login/oauth2/token with this credential; use DELETE to log out"
	descTokenRequestBearer  = "a token request must not carry a bearer credential of the gate; use client authentication"
	msgRevocationSetFull    = "the gate cannot record more revocations now; retry later"
	msgClientRevocationFull = "this client has too many revoked tokens that have not expired yet; retry later"
)

// serveSubstitutedTokenEndpoint answers a request to Canvas's token endpoint
// that carries a credential the gate would replace with the key's
// upstream_token. It is never forwarded: Canvas would act on the upstream
// token (DELETE deletes it, for every client of the key). The gate answers
// for what the client's own credential means instead:
//
//   - DELETE with a gateway (OAuth) token revokes that token at the gate
//     and answers as Canvas does on logout: 200 {}.
//   - DELETE with a keys-file token: the gate cannot delete an entry of the
//     operator's file, and an in-memory mark would not survive a restart or
//     reach other instances, so it says so (400, Canvas's logout error
//     shape) rather than pretend.
//   - POST: a token request (RFC 6749) never needs a bearer credential:
//     400 invalid_request.
//   - Other methods: 405.
//
// A request the policy did not allow (only in report mode does it get
// here) is answered with the denial: the gate cannot forward it.
func (h *Handler) serveSubstitutedTokenEndpoint(w http.ResponseWriter, r *http.Request, start time.Time, d policy.Decision, token string) error {
	key := d.Key()
	if d.Outcome != policy.Allowed {
		writeDenial(w, d)
		return nil
	}
	refuse := func(status int, reason string, write func()) error {
		setDecisionPlaceholder(r, gate.LabelBadRequest)
		h.count(key, gate.LabelBadRequest, start)
		if ce := h.logger.Check(zap.InfoLevel, "request refused"); ce != nil {
			ce.Write(zap.String("developer_key", key.ID), zap.String("token_id", d.Token.ID),
				zap.String("method", r.Method), zap.Int("status", status),
				zap.Stringer("decision", gate.LabelBadRequest), zap.String("reason", reason))
		}
		write()
		return nil
	}
	switch r.Method {
	case http.MethodDelete:
	case http.MethodPost:
		return refuse(http.StatusBadRequest, "token request with a substituted credential", func() {
			writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: descTokenRequestBearer})
		})
	default:
		return refuse(http.StatusMethodNotAllowed, "token endpoint with a substituted credential", func() {
			w.Header().Set("Allow", "POST, DELETE")
			writeClientError(w, http.StatusMethodNotAllowed, msgTokenEndpointMethod)
		})
	}
	if h.oauth == nil || !oauth.IsGatewayToken(token) {
		return refuse(http.StatusBadRequest, "a keys-file token cannot delete itself", func() {
			body, _ := json.Marshal(map[string]string{"message": msgKeysFileTokenLogout})
			writeJSON(w, http.StatusBadRequest, body, false)
		})
	}
	now := h.now()
	claims, _, _, err := h.oauth.Verify(h.keystore.current.Load(), token, now)
	if err != nil {
		// The policy allowed it a moment ago; a reload may have removed
		// the key since. Canvas's answer for a token that does not stand.
		writeDenial(w, policy.Decision{Outcome: policy.InvalidToken})
		return nil
	}
	if err := revocations.Add(claims.ClientID, claims.ID, claims.ExpiresAt, now); err != nil {
		h.oauthLog(zap.ErrorLevel, "oauth revocation refused", claims.ClientID, zap.String("token_id", claims.ShortID()), zap.Error(err))
		msg := msgRevocationSetFull
		if errors.Is(err, oauth.ErrClientRevocationsFull) {
			msg = msgClientRevocationFull
		}
		w.Header().Set("Retry-After", "60")
		writeClientError(w, http.StatusServiceUnavailable, msg)
		return nil
	}
	if err := h.storeRevocation(r.Context(), &claims); err != nil { // database source: fleet.go
		w.Header().Set("Retry-After", "5")
		writeClientError(w, http.StatusServiceUnavailable, msgRevocationNotStored)
		return nil
	}
	h.oauthLog(zap.InfoLevel, "oauth token revoked", claims.ClientID, zap.String("token_id", claims.ShortID()),
		zap.String("reason", "DELETE on the token endpoint (logout)"))
	h.count(key, gate.LabelAllowed, start)
	writeJSON(w, http.StatusOK, []byte(`{}`), false)
	return nil
}
