package caddymodule

// Machine-to-machine access: the OAuth2 client_credentials grant at Canvas's
// token endpoint for clients registered in the keys file, self-contained
// gateway tokens (package oauth), RFC 7662 introspection and RFC 7009
// revocation. Secrets and tokens are never logged: logs carry the client id
// (registered ids only) and the token's short id (a jti prefix).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// oauthGate is the per-config state of the OAuth endpoints; nil when
// token_signing_keys is not configured, in which case the gate answers no
// OAuth request and accepts no gateway token.
type oauthGate struct {
	signer    *oauth.Signer
	failDelay time.Duration

	// views caches, per compiled client (immutable for the life of its
	// store), the prepared view and the compiled sets of the scope lists
	// its tokens carry. It is cleared when the store changes.
	viewsOf atomic.Pointer[policy.Store]
	views   sync.Map // *policy.ClientEntry -> *clientCache
}

type clientCache struct {
	view *oauth.ClientView
	mu   sync.Mutex
	sets map[string]*matcher.Set // by the token's scope references
}

// maxCachedSets bounds the scope sets cached per client (one per distinct
// scope request).
const maxCachedSets = 64

func (g *oauthGate) clientCache(store *policy.Store, cl *policy.ClientEntry) *clientCache {
	if g.viewsOf.Load() != store {
		g.views.Clear()
		g.viewsOf.Store(store)
	}
	if v, ok := g.views.Load(cl); ok {
		return v.(*clientCache)
	}
	cc := &clientCache{view: (&oauth.ClientView{
		ClientID: cl.ClientID, SecretSHA256: cl.SecretSHA256, KeyID: cl.Key.ID,
		KeyRequireScopes: cl.Key.RequireScopes, KeyScopes: cl.Key.Scopes, ClientScopes: cl.Scopes,
	}).Prepare(), sets: map[string]*matcher.Set{}}
	v, _ := g.views.LoadOrStore(cl, cc)
	return v.(*clientCache)
}

// set returns the compiled set for a token's scopes, cached by its
// references.
func (cc *clientCache) set(store *policy.Store, c *oauth.Claims, scopes []string) (*matcher.Set, error) {
	id := refsKey(c.Scopes)
	cc.mu.Lock()
	set, ok := cc.sets[id]
	cc.mu.Unlock()
	if ok {
		return set, nil
	}
	set, err := store.ScopeSet(scopes)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	if len(cc.sets) < maxCachedSets {
		cc.sets[id] = set
	}
	cc.mu.Unlock()
	return set, nil
}

func refsKey(refs []oauth.ScopeRef) string {
	b := make([]byte, 0, 8*len(refs))
	for _, r := range refs {
		b = append(b, r[:]...)
	}
	return string(b)
}

// Process-wide state, shared across config reloads: a reload must neither
// forget revocations nor reset an attacker's failure budget.
var (
	revocations = oauth.NewRevocations(maxRevocations)
	authLimiter = oauth.NewLimiter(authFailureBurst, time.Minute, maxLimitedAddrs)
)

const (
	// maxRevocations bounds the revocation set (about 50 bytes each).
	maxRevocations = 1 << 20
	// authFailureBurst failed client authentications per minute and
	// source address are tolerated; then the address gets 429.
	authFailureBurst = 10
	maxLimitedAddrs  = 10000
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
	repl := caddy.NewReplacer()
	keys := make([][]byte, 0, len(h.TokenSigningKeys))
	for i, raw := range h.TokenSigningKeys {
		v, err := repl.ReplaceOrErr(raw, true, true)
		if err != nil {
			what := "its placeholder is unknown or empty"
			if isPlaceholder(raw) {
				what = raw + " is unknown or empty"
			}
			return fmt.Errorf("canvas_scopes: token_signing_keys: key %d cannot be resolved: %s", i+1, what)
		}
		keys = append(keys, []byte(v))
	}
	signer, err := oauth.NewSigner(keys)
	if err != nil {
		return fmt.Errorf("canvas_scopes: token_signing_keys: %v", err)
	}
	h.oauth = &oauthGate{signer: signer, failDelay: authFailureDelay}
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

var placeholderRE = regexp.MustCompile(`^\{(env|file)\.[^{}]+\}$`)

func isPlaceholder(s string) bool { return placeholderRE.MatchString(s) }

// serveOAuth answers the gate's OAuth requests. It reports false, with the
// request (and its body) untouched, for everything else: the caller then
// carries on as for any request.
func (h *Handler) serveOAuth(w http.ResponseWriter, r *http.Request, canonical string) (bool, error) {
	if h.oauth == nil {
		return false, nil
	}
	switch canonical {
	case oauth.TokenPath:
		if r.Method != http.MethodPost || !oauth.IsFormRequest(r.Header.Get("Content-Type")) {
			return false, nil
		}
		body, ok := peekBody(r, maxOAuthBody)
		if !ok {
			return false, nil
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return false, nil
		}
		store := h.keystore.current.Load()
		tr, ours, oerr := oauth.ClassifyTokenRequest(r.Header, r.URL.RawQuery, form, func(id string) bool { return store.Client(id) != nil })
		if !ours {
			return false, nil
		}
		h.serveToken(w, r, store, tr, oerr)
		return true, nil
	case oauth.IntrospectPath, oauth.RevokePath:
		h.serveClientEndpoint(w, r, canonical)
		return true, nil
	}
	return false, nil
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
	key := client.Key
	if _, ok := key.UpstreamToken(); !ok {
		// A gateway token is not a Canvas token: without the key's
		// upstream_token there is nothing to forward.
		h.oauthLog(zap.WarnLevel, "oauth token refused", client.ClientID, zap.String("developer_key", key.ID),
			zap.String("reason", "developer key has no upstream_token"))
		writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "unauthorized_client",
			Description: "this client's developer key has no upstream_token, so the gate cannot issue tokens for it"})
		return
	}
	if !key.Enabled {
		writeOAuthError(w, &oauth.Error{Status: http.StatusBadRequest, Code: "unauthorized_client",
			Description: "this client's developer key is disabled"})
		return
	}
	clientScopes := client.Scopes
	if clientScopes == nil {
		clientScopes = key.Scopes
	}
	scopes, serr := oauth.GrantScopes(tr.Scopes, tr.HasScope, clientScopes)
	if serr != nil {
		writeOAuthError(w, serr)
		return
	}
	ttl := client.TokenTTL.Round(time.Second)
	if ttl < time.Second {
		ttl = time.Second
	}
	now := h.now().Truncate(time.Second)
	c := oauth.Claims{
		KeyID: key.ID, ClientID: client.ClientID, Scopes: oauth.Refs(scopes),
		IssuedAt: now, ExpiresAt: now.Add(ttl), SecretGen: oauth.GenOf(client.SecretSHA256),
	}
	if _, err := rand.Read(c.ID[:]); err != nil {
		writeOAuthError(w, &oauth.Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "no randomness"})
		return
	}
	tok, err := h.oauth.signer.Issue(c)
	if err != nil {
		writeOAuthError(w, &oauth.Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "the token could not be issued"})
		return
	}
	oauthTokensIssued.WithLabelValues(client.ClientID).Inc()
	h.oauthLog(zap.InfoLevel, "oauth token issued", client.ClientID,
		zap.String("developer_key", key.ID), zap.String("token_id", c.ShortID()),
		zap.Time("expires_at", c.ExpiresAt), zap.Int("scopes", len(scopes)))
	writeOAuthJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(ttl / time.Second),
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
	claims, entry, _, verr := h.verifyGatewayToken(store, toks[0], now)
	own := verr == nil && claims.ClientID == client.ClientID
	if path == oauth.RevokePath {
		if own && now.Before(claims.ExpiresAt) {
			if !h.shareRevocation(w, r, &claims) {
				return
			}
			if err := revocations.Add(claims.ID, claims.ExpiresAt, now); err != nil {
				h.oauthLog(zap.ErrorLevel, "oauth revocation refused", client.ClientID, zap.String("token_id", claims.ShortID()), zap.Error(err))
				w.Header().Set("Retry-After", "60")
				writeOAuthError(w, &oauth.Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the revocation set is full"})
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

// authenticateClient checks the client's secret in constant time (with a
// dummy comparison for unknown ids), under the per-address failure limit.
// On failure it has written the answer: 429 when the address is limited,
// else 401 invalid_client after a delay.
func (h *Handler) authenticateClient(w http.ResponseWriter, r *http.Request, store *policy.Store, cred oauth.Credentials) (*policy.ClientEntry, bool) {
	addr := clientAddr(r)
	if ok, retry := authLimiter.Allow(addr, time.Now()); !ok {
		secs := int64((retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeOAuthError(w, &oauth.Error{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable",
			Description: "too many failed client authentications from this address; retry later"})
		return nil, false
	}
	client := store.Client(cred.ClientID)
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
	authLimiter.Fail(addr, time.Now())
	h.oauthLog(zap.InfoLevel, "oauth client authentication failed", label, zap.String("remote_ip", addr))
	sleepCtx(r.Context(), h.oauth.failDelay)
	w.Header().Set("WWW-Authenticate", basicRealm)
	writeOAuthError(w, oauth.InvalidClient())
	return nil, false
}

// decideGatewayToken decides a request carrying a gateway-format token.
// ok is false when the token is not one (or OAuth is off): the caller then
// looks the token up in the keys file as usual. Otherwise the token is
// verified, turned into a TokenEntry and evaluated by policy.Evaluate
// exactly as a file token, held to the token's own scopes.
func (h *Handler) decideGatewayToken(store *policy.Store, token string, req policy.Request) (d policy.Decision, ok bool) {
	if h.oauth == nil || !oauth.IsGatewayToken(token) {
		return policy.Decision{}, false
	}
	_, e, tokenSet, err := h.verifyGatewayToken(store, token, req.Now)
	if err != nil {
		return policy.Decision{Outcome: policy.InvalidToken, Reason: err.Error()}, true
	}
	if tokenSet != nil {
		e.HoldTo(tokenSet)
	}
	d = policy.Evaluate(e, req)
	return d, true
}

// verifyGatewayToken checks a gateway token's signature and binds it to
// the current store. err means "Invalid access token." (bad form or
// signature, developer key gone, or a key without upstream_token); a token
// that verified but no longer stands comes back with entry.Revoked set.
func (h *Handler) verifyGatewayToken(store *policy.Store, token string, now time.Time) (oauth.Claims, *policy.TokenEntry, *matcher.Set, error) {
	if !oauth.IsGatewayToken(token) {
		return oauth.Claims{}, nil, nil, oauth.ErrMalformed
	}
	c, err := h.oauth.signer.Verify(token)
	if err != nil {
		return oauth.Claims{}, nil, nil, err
	}
	key := store.Key(c.KeyID)
	if key == nil {
		return oauth.Claims{}, nil, nil, fmt.Errorf("developer key %q no longer exists", c.KeyID)
	}
	if _, ok := key.UpstreamToken(); !ok {
		return oauth.Claims{}, nil, nil, fmt.Errorf("developer key %q has no upstream_token", c.KeyID)
	}
	var view *oauth.ClientView
	var cache *clientCache
	if cl := store.Client(c.ClientID); cl != nil {
		if cl.Key == key {
			cache = h.oauth.clientCache(store, cl)
			view = cache.view
		} else {
			// The client moved to another key: Check reports it.
			view = &oauth.ClientView{ClientID: cl.ClientID, SecretSHA256: cl.SecretSHA256, KeyID: cl.Key.ID,
				KeyRequireScopes: key.RequireScopes, KeyScopes: key.Scopes, ClientScopes: cl.Scopes}
		}
	}
	scopes, reason := oauth.Check(&c, view, revocations.Has(c.ID))
	e := &policy.TokenEntry{
		ID: c.ShortID(), Key: key, Label: "oauth client " + c.ClientID,
		Scopes: scopes, ExpiresAt: c.ExpiresAt,
		Revoked: reason != "", RevokedReason: reason,
	}
	if e.Revoked {
		return c, e, nil, nil
	}
	set, err := cache.set(store, &c, scopes)
	if err != nil {
		return oauth.Claims{}, nil, nil, fmt.Errorf("token scopes do not compile: %v", err)
	}
	return c, e, set, nil
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

func writeOAuthJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	hd := w.Header()
	hd.Set("Content-Type", jsonContentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
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

// peekBody reads up to max bytes of the body and puts everything back, so
// a request the gate does not answer goes on unchanged. ok is false when
// the body is larger than max or unreadable.
func peekBody(r *http.Request, max int64) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body = &rewoundBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	if err != nil || int64(len(buf)) > max {
		return nil, false
	}
	return buf, true
}

type rewoundBody struct {
	io.Reader
	io.Closer
}

func readAllLimited(r *http.Request, max int64) ([]byte, bool) {
	if r.Body == nil {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	return buf, err == nil && int64(len(buf)) <= max
}
