// Package caddymodule is the Caddy shell around the policy core: the
// http.handlers.canvas_scopes handler, its Caddyfile directive, the
// hot-reloaded key store, metrics and admin endpoints.
package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
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
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler holds every request that carries a registered gateway token to its
// Canvas developer key's scopes, exactly as Canvas would, before the request
// reaches reverse_proxy. Allowed requests are forwarded with the canonical
// path Canvas matches on, with disallowed include params removed and, when
// the key has an upstream_token, with the client's credential replaced.
//
// It sets the placeholders {http.canvas_scopes.developer_key},
// {http.canvas_scopes.token_id}, {http.canvas_scopes.decision} and
// {http.canvas_scopes.scope}.
type Handler struct {
	// KeysFile is the path of the JSON keys file (developer keys, token
	// hashes, clients). Required unless database is set.
	KeysFile string `json:"keys_file,omitempty"`

	// FleetConfig: database, max_staleness, stale_policy, snapshot_file
	// (see fleet.go).
	FleetConfig

	// UnknownTokens says what to do with a credential that is not in the
	// keys file: "deny" (401 Invalid access token.) or "pass" (forward it
	// untouched, for a transparent front where Canvas checks its own
	// tokens). Default: deny.
	UnknownTokens string `json:"unknown_tokens,omitempty"`

	// Anonymous says what to do with a request on an /api/ path that has
	// no credential: "deny" (Canvas's 401 user authorization required) or
	// "pass". Default: deny.
	Anonymous string `json:"anonymous,omitempty"`

	// AllowUnknownScopes accepts scopes missing from the embedded Canvas
	// catalogue (newer Canvas versions, plugins). Default: false.
	AllowUnknownScopes bool `json:"allow_unknown_scopes,omitempty"`

	// ReloadInterval is how often the keys file is checked for changes.
	// 0 turns polling off; negative is invalid. Default: 2s.
	ReloadInterval *caddy.Duration `json:"reload_interval,omitempty"`

	// MaxBodySize is the largest form, multipart or JSON body the gate
	// reads to find credentials and include params; larger bodies get 413.
	// Default: 10MB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Mode is "enforce" (default) or "report": in report mode every
	// decision is made, logged and counted (would_deny), but requests are
	// forwarded without denial or include filtering.
	Mode string `json:"mode,omitempty"`

	// LogAllowed is the fraction (0 to 1) of allowed requests to log.
	// Denials are always logged. Default: 0.
	LogAllowed float64 `json:"log_allowed,omitempty"`

	// Metrics controls metric labels.
	Metrics *MetricsConfig `json:"metrics,omitempty"`

	// TokenSigningKeys turn on machine-to-machine access: the
	// client_credentials grant for the keys file's clients, gateway
	// tokens, introspection and revocation. Each key is usually an
	// {env.*} or {file.*} placeholder resolved in Provision and must be
	// at least 32 bytes. The first key signs; all keys verify.
	TokenSigningKeys []string `json:"token_signing_keys,omitempty"`

	keystore   *keystore
	poolKey    string
	logger     *zap.Logger
	reportOnly bool
	perKey     bool
	limits     params.Limits
	now        func() time.Time
	counters   *counterCache
	oauth      *oauthGate
}

// MetricsConfig controls the gate's Prometheus labels.
type MetricsConfig struct {
	// PerKey labels request and include metrics with the developer key
	// id. Turn it off for very many keys. Default: true.
	PerKey *bool `json:"per_key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.canvas_scopes",
		New: func() caddy.Module { return new(Handler) },
	}
}

const (
	defaultReloadInterval = 2 * time.Second
	defaultMaxBodySize    = 10 << 20
)

// Provision compiles the keys file (or joins the already-loaded store for
// the same file) and registers metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	h.counters = &counterCache{}
	h.limits = params.DefaultLimits()
	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBodySize
	}
	h.reportOnly = h.Mode == "report"
	h.perKey = h.Metrics == nil || h.Metrics.PerKey == nil || *h.Metrics.PerKey
	if err := h.validateConfig(); err != nil {
		return err
	}
	// Build the shared catalogue tree now, not on the first request.
	matcher.CatalogueSet()
	if h.Database != "" {
		if err := h.provisionDatabase(ctx); err != nil {
			return err
		}
		if err := h.provisionOAuth(ctx); err != nil {
			return err
		}
		return registerMetrics(ctx.GetMetricsRegistry())
	}
	interval := defaultReloadInterval
	if h.ReloadInterval != nil {
		interval = time.Duration(*h.ReloadInterval)
	}
	path, err := filepath.Abs(h.KeysFile)
	if err != nil {
		return fmt.Errorf("keys_file: %v", err)
	}
	parse := policy.ParseOptions{AllowUnknownScopes: h.AllowUnknownScopes}
	h.poolKey = keystoreID(path, parse, interval)
	v, loaded, err := keystores.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return openKeystore(path, parse, interval)
	})
	if err != nil {
		return err
	}
	h.keystore = v.(*keystore)
	if loaded {
		// `caddy reload --force` must pick up an edited keys file even
		// when the config itself is unchanged.
		if _, err := h.keystore.reload(false); err != nil {
			return err
		}
	}
	if err := h.provisionOAuth(ctx); err != nil {
		return err
	}
	return registerMetrics(ctx.GetMetricsRegistry())
}

func (h *Handler) validateConfig() error {
	if (h.KeysFile == "") == (h.Database == "") {
		return errors.New("canvas_scopes: exactly one of keys_file and database is required")
	}
	for name, v := range map[string]string{"unknown_tokens": h.UnknownTokens, "anonymous": h.Anonymous} {
		if v != "" && v != "deny" && v != "pass" {
			return fmt.Errorf("canvas_scopes: %s must be deny or pass, got %q", name, v)
		}
	}
	if h.Mode != "" && h.Mode != "enforce" && h.Mode != "report" {
		return fmt.Errorf("canvas_scopes: mode must be enforce or report, got %q", h.Mode)
	}
	if h.ReloadInterval != nil && *h.ReloadInterval < 0 {
		return errors.New("canvas_scopes: reload_interval must not be negative (0 turns polling off)")
	}
	if h.MaxBodySize < 0 {
		return errors.New("canvas_scopes: max_body_size must be positive")
	}
	if h.LogAllowed < 0 || h.LogAllowed > 1 {
		return fmt.Errorf("canvas_scopes: log_allowed must be between 0 and 1, got %v", h.LogAllowed)
	}
	return nil
}

// Cleanup releases this config's reference to the shared key store.
func (h *Handler) Cleanup() error {
	if h.fleetKey != "" {
		return h.cleanupDatabase()
	}
	if h.poolKey != "" {
		_, err := keystores.Delete(h.poolKey)
		return err
	}
	return nil
}

// ServeHTTP runs one request through the gate: canonical path, credential,
// key, decision, rewrite, next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	headers, status, msg := hardenRequest(r)
	if status != 0 {
		return h.refuse(w, r, next, start, status, msg)
	}
	canonical, err := matcher.Canonicalize(r.URL.EscapedPath())
	if err != nil {
		return h.refuse(w, r, next, start, http.StatusBadRequest, "refused path: "+err.Error())
	}
	if done, err := h.serveOAuth(w, r, canonical); done {
		return err
	}

	body, kind, status, err := readInspectableBody(r, headers.contentType, h.MaxBodySize)
	if status == http.StatusRequestEntityTooLarge && h.mayStreamUninspected(r, canonical) {
		// A large upload with no credential in the header or query, off
		// /api/: Canvas reads no token from such a body, so neither do we.
		return next.ServeHTTP(w, r)
	}
	if err != nil {
		return h.refuse(w, r, next, start, status, err.Error())
	}
	restoreBody(r, body, kind)
	insp, err := params.Inspect(params.Request{
		Method: r.Method, Header: r.Header, RawQuery: r.URL.RawQuery,
		ContentType: headers.contentType, Body: body,
		HeaderNamesScanned: true, OverrideHeaders: headers.overrideHeaders,
	}, h.limits)
	if err != nil {
		var pe *params.Error
		if errors.As(err, &pe) {
			return h.refuse(w, r, next, start, pe.Status, pe.Message)
		}
		return h.refuse(w, r, next, start, http.StatusBadRequest, "malformed request parameters")
	}
	defer insp.Release()

	if insp.Token == "" {
		return h.serveAnonymous(w, r, next, start, canonical, body, kind)
	}
	if insp.MethodOverride != "" {
		return h.refuse(w, r, next, start, http.StatusBadRequest, insp.MethodOverride+" is not allowed: the gate checks the request method Canvas routes on")
	}

	if stale, err := h.refuseStale(w, r, next, start); stale {
		return err
	}
	store := h.keystore.current.Load()
	preq := policy.Request{
		Method: r.Method, Path: canonical, Host: r.Host,
		Masquerade: insp.Masquerade, Now: start, // expiry is judged at arrival
	}
	d, gateway := h.decideGatewayToken(store, insp.Token, preq)
	if !gateway {
		d = store.Decide(insp.Token, preq)
	}
	tokenID := ""
	if d.Token != nil {
		tokenID = d.Token.ID
	} else {
		tokenID = policy.TokenID(policy.HashToken(insp.Token))
	}
	h.setPlaceholders(r, d, tokenID)

	if d.Outcome == policy.UnknownToken && h.UnknownTokens == "pass" {
		// A transparent front: Canvas checks its own tokens. The canonical
		// path is still what we forward, so what Canvas routes is what a
		// scoped token would have been matched on.
		if err := setCanonicalPath(r, canonical); err != nil {
			return h.refuse(w, r, next, start, http.StatusBadRequest, err.Error())
		}
		restoreBody(r, body, kind)
		h.count(nil, decPassthrough, start)
		return next.ServeHTTP(w, r)
	}

	if d.Outcome != policy.Allowed {
		key := d.Key()
		if h.reportOnly || (key != nil && key.Mode == policy.ModeReport) {
			h.logDecision(zap.WarnLevel, "request would be denied (report mode)", r, canonical, d, tokenID, true)
			h.count(key, decWouldDeny, start)
			return h.forward(w, r, next, start, canonical, body, kind, insp, d, false)
		}
		h.logDecision(zap.InfoLevel, "request denied", r, canonical, d, tokenID, false)
		h.count(key, decisionLabel(d.Outcome), start)
		writeDenial(w, d)
		return nil
	}

	key := d.Key()
	filter := key.RequireScopes && !key.AllowIncludes && !h.reportOnly && key.Mode != policy.ModeReport
	if h.LogAllowed > 0 && rand.Float64() < h.LogAllowed {
		h.logDecision(zap.InfoLevel, "request allowed", r, canonical, d, tokenID, false)
	}
	return h.forward(w, r, next, start, canonical, body, kind, insp, d, filter)
}

// forward rewrites an allowed (or report-mode) request and hands it on.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, start time.Time, canonical string, body []byte, kind params.BodyKind, insp *params.Inspection, d policy.Decision, filterIncludes bool) error {
	key := d.Key()
	upstream, substitute := "", false
	if key != nil {
		upstream, substitute = key.UpstreamToken()
	}
	rw, err := insp.Rewrite(params.RewriteOptions{FilterIncludes: filterIncludes, StripCredentials: substitute})
	if err != nil {
		var pe *params.Error
		status, msg := http.StatusBadRequest, "malformed request parameters"
		if errors.As(err, &pe) {
			status, msg = pe.Status, pe.Message
		}
		return h.refuse(w, r, next, start, status, msg)
	}
	if err := setCanonicalPath(r, canonical); err != nil {
		return h.refuse(w, r, next, start, http.StatusBadRequest, err.Error())
	}
	if rw.QueryChanged {
		r.URL.RawQuery = rw.RawQuery
		r.RequestURI = r.URL.RequestURI()
	}
	if rw.BodyChanged {
		setBody(r, rw.Body)
	} else {
		restoreBody(r, body, kind)
	}
	stripHopByHopNames(r.Header)
	// A credentialed request carries exactly one credential upstream:
	// session cookies are unscoped (SECURITY.md §6, Q7), so they never go along.
	delete(r.Header, "Cookie") // canonical key: Header.Del would canonicalise it again
	if substitute {
		r.Header.Set("Authorization", "Bearer "+upstream)
	}
	if rw.IncludesRemoved > 0 {
		includesFiltered.WithLabelValues(h.keyLabel(key)).Add(float64(rw.IncludesRemoved))
	}
	if d.Outcome == policy.Allowed {
		h.count(key, decAllowed, start)
	}
	return next.ServeHTTP(w, r)
}

// serveAnonymous handles a request without a credential: Canvas's 401 on
// /api/ paths (unless anonymous pass), untouched elsewhere.
func (h *Handler) serveAnonymous(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, start time.Time, canonical string, body []byte, kind params.BodyKind) error {
	setUndecidedPlaceholders(r, noCredentialValue)
	if !isAPIPath(canonical) {
		restoreBody(r, body, kind)
		return next.ServeHTTP(w, r)
	}
	if h.Anonymous != "pass" && h.reportOnly {
		h.count(nil, decWouldDeny, start)
		if ce := h.logger.Check(zap.WarnLevel, "request would be denied (report mode)"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("path", canonical),
				zap.String("decision", decNoCredential), zap.String("reason", "no credential on an API path"))
		}
		return next.ServeHTTP(w, r)
	}
	if h.Anonymous != "pass" {
		h.count(nil, decNoCredential, start)
		if ce := h.logger.Check(zap.InfoLevel, "request denied"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("path", canonical),
				zap.String("decision", decNoCredential), zap.String("reason", "no credential on an API path"))
		}
		writeNoCredential(w)
		return nil
	}
	if err := setCanonicalPath(r, canonical); err != nil {
		return h.refuse(w, r, next, start, http.StatusBadRequest, err.Error())
	}
	restoreBody(r, body, kind)
	h.count(nil, decPassthrough, start)
	return next.ServeHTTP(w, r)
}

// refuse answers a request the gate will not interpret with a Canvas-shaped
// error and counts it as bad_request. In handler-wide report mode it is
// logged and counted as would_deny and forwarded as received instead.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, start time.Time, status int, msg string) error {
	setUndecidedPlaceholders(r, badRequestValue)
	if h.reportOnly {
		h.count(nil, decWouldDeny, start)
		if ce := h.logger.Check(zap.WarnLevel, "request would be refused (report mode)"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.Int("status", status),
				zap.String("decision", decBadRequest), zap.String("reason", msg))
		}
		return next.ServeHTTP(w, r)
	}
	h.count(nil, decBadRequest, start)
	if ce := h.logger.Check(zap.InfoLevel, "request refused"); ce != nil {
		ce.Write(zap.String("method", r.Method), zap.Int("status", status),
			zap.String("decision", decBadRequest), zap.String("reason", msg))
	}
	writeClientError(w, status, msg)
	return nil
}

func isAPIPath(p string) bool { return strings.HasPrefix(p, "/api/") }

func decisionLabel(o policy.Outcome) string {
	switch o {
	case policy.Allowed:
		return decAllowed
	case policy.InsufficientScope:
		return decInsufficient
	case policy.Expired:
		return decExpired
	case policy.Revoked:
		return decRevoked
	}
	return decInvalid
}

func (h *Handler) keyLabel(k *policy.Key) string {
	if !h.perKey {
		return ""
	}
	if k == nil {
		return unknownKeyLabel
	}
	return k.ID
}

func (h *Handler) count(k *policy.Key, decision string, start time.Time) {
	h.requestCounter(k, decision).Inc()
	if !start.IsZero() {
		decisionSeconds.Observe(time.Since(start).Seconds())
	}
}

func (h *Handler) setPlaceholders(r *http.Request, d policy.Decision, tokenID string) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	// Values are pre-boxed: storing a string as an any allocates.
	// Every placeholder is set on every decision: an unset one renders as
	// its own {name} text in headers and logs.
	if k := d.Key(); k != nil {
		repl.Set("http.canvas_scopes.developer_key", k.IDValue())
	} else {
		repl.Set("http.canvas_scopes.developer_key", emptyValue)
	}
	if d.Token != nil && d.Token.ID == tokenID {
		repl.Set("http.canvas_scopes.token_id", d.Token.IDValue())
	} else {
		repl.Set("http.canvas_scopes.token_id", tokenID)
	}
	repl.Set("http.canvas_scopes.decision", outcomeValue(d.Outcome))
	repl.Set("http.canvas_scopes.scope", scopeValue(d.Scope))
}

// emptyValue is "" boxed once.
var emptyValue any = ""

// Decision placeholder values for requests without a policy decision.
var (
	noCredentialValue any = decNoCredential
	badRequestValue   any = decBadRequest
)

// setUndecidedPlaceholders sets the decision placeholder for a request the
// policy did not decide (no credential, or refused as malformed), keeping
// the key and token placeholders if a decision had set them and setting
// them empty otherwise.
func setUndecidedPlaceholders(r *http.Request, decision any) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.canvas_scopes.decision", decision)
	for _, name := range [...]string{"http.canvas_scopes.developer_key", "http.canvas_scopes.token_id", "http.canvas_scopes.scope"} {
		if _, set := repl.Get(name); !set {
			repl.Set(name, emptyValue)
		}
	}
}

// outcomeValues are the decision placeholder values, boxed once.
var outcomeValues = func() (v [policy.UnknownToken + 1]any) {
	for i := range v {
		v[i] = policy.Outcome(i).String()
	}
	return v
}()

func outcomeValue(o policy.Outcome) any {
	if int(o) < len(outcomeValues) {
		return outcomeValues[o]
	}
	return o.String()
}

// scopeValues are the catalogue scopes (what Set.Match returns for them),
// boxed once.
var scopeValues = sync.OnceValue(func() map[string]any {
	m := map[string]any{"": "", matcher.AlwaysAllowedPath: matcher.AlwaysAllowedPath}
	for _, s := range matcher.Catalogue() {
		m[s] = s
	}
	return m
})

func scopeValue(scope string) any {
	if v, ok := scopeValues()[scope]; ok {
		return v
	}
	return scope
}

// logDecision writes one decision line. It never includes a token: only the
// short token id (a hash prefix).
func (h *Handler) logDecision(level zapcore.Level, msg string, r *http.Request, canonical string, d policy.Decision, tokenID string, report bool) {
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	keyID := unknownKeyLabel
	if k := d.Key(); k != nil {
		keyID = k.ID
	}
	fields := []zap.Field{
		zap.String("developer_key", keyID),
		zap.String("token_id", tokenID),
		zap.String("method", r.Method),
		zap.String("path", canonical),
		zap.String("decision", decisionLabel(d.Outcome)),
		zap.String("reason", d.Reason),
	}
	if d.Scope != "" {
		fields = append(fields, zap.String("scope", d.Scope))
	}
	if report || d.Outcome == policy.InsufficientScope {
		// Name the route template (catalogue scope) the request needed.
		if needed, ok := matcher.CatalogueSet().Match(r.Method, canonical); ok {
			fields = append(fields, zap.String("needed_scope", needed))
		}
	}
	ce.Write(fields...)
}

// readInspectableBody buffers bodies Rails would parse for params (form,
// multipart, JSON) up to max; others stream untouched. A body over max is
// reported with 413 and left readable from its start, so the caller may
// still stream it on.
func readInspectableBody(r *http.Request, ct string, max int64) ([]byte, params.BodyKind, int, error) {
	kind, _ := params.BodyKindOf(r.Method, ct, hasBody(r))
	if kind != params.BodyForm && kind != params.BodyMultipart && kind != params.BodyJSON {
		return nil, kind, 0, nil
	}
	tooLarge := func() error { return fmt.Errorf("request body is larger than the %d bytes the gate inspects", max) }
	if r.ContentLength > max {
		return nil, kind, http.StatusRequestEntityTooLarge, tooLarge()
	}
	var data []byte
	var err error
	if r.ContentLength > 0 {
		// Framed by Content-Length (≤ max, checked above): Go's server
		// ends the body there, so one exact read is the whole body.
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, max+1))
	}
	if err != nil {
		_ = r.Body.Close()
		return nil, kind, http.StatusBadRequest, errors.New("could not read the request body")
	}
	if int64(len(data)) > max {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
		return nil, kind, http.StatusRequestEntityTooLarge, tooLarge()
	}
	_ = r.Body.Close()
	return data, kind, 0, nil
}

// mayStreamUninspected reports whether an over-large body can go upstream
// unread: neither the header nor the query carries a credential and the
// path is one where Canvas reads no token from a body — off /api/, not
// /login/session_token, and not a path any catalogue scope names (the
// token-authenticated file downloads, /login/oauth2/token). The query is
// read by params, so encoded keys such as %61ccess_token count too.
func (h *Handler) mayStreamUninspected(r *http.Request, canonical string) bool {
	if isAPIPath(canonical) || canonical == "/login/session_token" || len(r.Header.Values("Authorization")) > 0 {
		return false
	}
	if _, named := matcher.CatalogueSet().Match(r.Method, canonical); named {
		return false
	}
	insp, err := params.Inspect(params.Request{Method: r.Method, Header: r.Header, RawQuery: r.URL.RawQuery}, h.limits)
	return err == nil && insp.Token == "" && insp.MethodOverride == ""
}

// restoreBody puts an unchanged buffered body back on the request.
func restoreBody(r *http.Request, body []byte, kind params.BodyKind) {
	if body == nil && kind != params.BodyForm && kind != params.BodyMultipart && kind != params.BodyJSON {
		return
	}
	setBody(r, body)
}

// setBody replaces the request body and fixes its framing: a rewritten body
// goes upstream with an exact Content-Length and no chunking.
func setBody(r *http.Request, body []byte) {
	r.Body = newBufferedBody(body)
	r.GetBody = func() (io.ReadCloser, error) { return newBufferedBody(body), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	delete(r.Header, "Transfer-Encoding")
	// Most bodies go on as the client framed them: keep its header.
	if cl := r.Header["Content-Length"]; len(cl) != 1 || cl[0] != strconv.Itoa(len(body)) {
		r.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
}

// bufferedBody is io.NopCloser(bytes.NewReader(b)) in one allocation.
type bufferedBody struct{ bytes.Reader }

func newBufferedBody(b []byte) *bufferedBody {
	bb := &bufferedBody{}
	bb.Reset(b)
	return bb
}

func (*bufferedBody) Close() error { return nil }

// setCanonicalPath makes every view of the path (Path, RawPath, RequestURI)
// the canonical form the decision was made on, and verifies that Go will
// forward exactly those bytes.
func setCanonicalPath(r *http.Request, canonical string) error {
	if r.URL.EscapedPath() == canonical {
		// Go may have re-encoded bytes the client sent raw (a '"' or a
		// byte >= 0x80): keep RequestURI, which placeholders and logs
		// read, on the bytes that are matched and forwarded.
		if uri := r.RequestURI; len(uri) < len(canonical) || uri[:len(canonical)] != canonical || (len(uri) > len(canonical) && uri[len(canonical)] != '?') {
			r.RequestURI = r.URL.RequestURI()
		}
		return nil
	}
	decoded, err := url.PathUnescape(canonical)
	if err != nil {
		return fmt.Errorf("refused path: %v", err)
	}
	r.URL.Path = decoded
	r.URL.RawPath = canonical
	if r.URL.EscapedPath() != canonical {
		return errors.New("refused path: it contains characters that must be percent-encoded")
	}
	r.RequestURI = r.URL.RequestURI()
	return nil
}

// stripHopByHopNames removes headers a client named in Connection: the
// reverse proxy would drop them after we set them (SECURITY.md §6, H3), so a
// client could make it strip the Authorization we inject.
func stripHopByHopNames(h http.Header) {
	// Fast path for the common request without Connection: the key is
	// already canonical, so a map lookup equals h.Values("Connection")
	// without canonicalising the name twice per request.
	if _, ok := h["Connection"]; !ok {
		return
	}
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	h.Del("Connection")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// counterCache keeps requestsTotal series by (developer key, decision), so
// the hot path neither hashes label values nor takes the vector's lock on
// every request. It belongs to one store snapshot: a reload starts afresh,
// so keys of old snapshots are not kept alive.
type counterCache struct {
	cur atomic.Pointer[counterSnapshot]
}

type counterSnapshot struct {
	store *policy.Store
	// byKey[k.Index()] holds key k's series; the last element is for no
	// key (or every key, with per_key off).
	byKey []decisionCounters
}

// cachedDecisions are the decisions with a cache slot; others go straight to
// the vector.
var cachedDecisions = [...]string{decAllowed, decInsufficient, decInvalid, decExpired, decRevoked, decNoCredential, decBadRequest, decWouldDeny, decPassthrough}

type decisionCounters [len(cachedDecisions)]atomic.Pointer[prometheus.Counter]

func (h *Handler) requestCounter(k *policy.Key, decision string) prometheus.Counter {
	i := slices.Index(cachedDecisions[:], decision)
	if h.counters == nil || h.keystore == nil || i < 0 {
		return requestsTotal.WithLabelValues(h.keyLabel(k), decision)
	}
	if !h.perKey {
		k = nil // one label value for every key
	}
	store := h.keystore.current.Load()
	snap := h.counters.cur.Load()
	if snap == nil || snap.store != store {
		fresh := &counterSnapshot{store: store, byKey: make([]decisionCounters, len(store.Keys())+1)}
		if h.counters.cur.CompareAndSwap(snap, fresh) {
			snap = fresh
		} else {
			snap = h.counters.cur.Load()
		}
	}
	if snap.store != store {
		return requestsTotal.WithLabelValues(h.keyLabel(k), decision) // a reload is under way
	}
	j := len(snap.byKey) - 1
	if k != nil {
		if keys := store.Keys(); k.Index() >= len(keys) || keys[k.Index()] != k {
			// A key of an earlier store: a reload raced this request.
			return requestsTotal.WithLabelValues(h.keyLabel(k), decision)
		}
		j = k.Index()
	}
	slot := &snap.byKey[j][i]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := requestsTotal.WithLabelValues(h.keyLabel(k), decision)
	slot.Store(&c)
	return c
}
