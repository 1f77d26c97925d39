// Package gate is the one decision of the canvas_scopes handler, free of
// Caddy: what the shell read from a request goes in, with the current state,
// and a verdict comes out. The handler acts on the verdict; `caddy
// canvas-scopes explain` prints it. Because both call Decide, the gate and
// the CLI cannot disagree.
package gate

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/confine"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Label is a decision label: one vocabulary for the
// {http.canvas_scopes.decision} placeholder, the requests_total metric,
// log lines and explain. It is a small number so that recording a
// decision indexes arrays instead of hashing strings.
type Label uint8

const (
	LabelAllowed Label = iota
	LabelInsufficient
	LabelInvalid
	LabelExpired
	LabelRevoked
	LabelNoCredential
	LabelBadRequest
	LabelWouldDeny
	LabelPassthrough
	// LabelOutsideAccounts: a confined key's request touches an object
	// outside its accounts (or one Canvas says does not exist).
	LabelOutsideAccounts
	// LabelLookupFailed: the confinement could not ask Canvas.
	LabelLookupFailed
	// NumLabels is the number of labels.
	NumLabels
)

var labelNames = [NumLabels]string{"allowed", "insufficient_scope", "invalid_token", "expired", "revoked",
	"no_credential", "bad_request", "would_deny", "passthrough", "outside_accounts", "lookup_failed"}

// String is the label's name, as metrics, logs and placeholders show it.
func (l Label) String() string { return labelNames[l] }

// Action is what the shell does with a request.
type Action uint8

const (
	// Deny answers with Canvas's 401 for the verdict's label.
	Deny Action = iota
	// Refuse answers Status (400 or 413) with the constant Message: the
	// gate will not interpret the request.
	Refuse
	// Pass forwards the request without a decision on a credential
	// (CanonicalPath says whether its path is first set to the canonical
	// form).
	Pass
	// Forward sends the decided request on, rewritten as the verdict says.
	Forward
	// AnswerTokenEndpoint: the gate answers a request to Canvas's token
	// endpoint itself, because the credential it would forward is the
	// key's upstream_token (see IsTokenEndpoint).
	AnswerTokenEndpoint
)

var actionNames = [...]string{"deny", "refuse", "pass", "forward", "answer at the token endpoint"}

func (a Action) String() string { return actionNames[a] }

// Refusal is a request the shell could not read safely: a constant message
// and the status to answer it with.
type Refusal struct {
	Status  int
	Message string
	// Streamable marks a body over the inspection limit that Canvas reads
	// no credential from: it may go upstream unread.
	Streamable bool
	// Always: not forwarded even in report mode (a tunnel would carry
	// bytes nothing checks).
	Always bool
}

// Facts are what the shell read from one request.
type Facts struct {
	Method string
	// Path is the canonical escaped path (matcher.Canonicalize).
	Path string
	// Host is the validated Host the key's hosts are checked against.
	Host string
	// Refusal, when set, is why the request cannot be read; the other
	// fields may then be incomplete.
	Refusal *Refusal
	// PathRefusal, when set, says the canonical path cannot be forwarded
	// byte for byte: a verdict that forwards the canonical path refuses.
	PathRefusal *Refusal
	// Params is the parameter inspection (credential, as_user_id, method
	// override, include params).
	Params *params.Inspection
	// Token is the credential's text and TokenHash its SHA-256; both are
	// empty without a credential. explain knows only the hash: it leaves
	// Token empty (gateway tokens are then not recognised).
	Token     string
	TokenHash [32]byte
	HasToken  bool
	// Now is the request's arrival time: expiry is judged then.
	Now time.Time
}

// SetCredential records the request's credential (empty: none).
func (f *Facts) SetCredential(token string) {
	if token != "" {
		f.Token, f.TokenHash, f.HasToken = token, policy.HashToken(token), true
	}
}

// Config is the handler configuration the decision depends on.
type Config struct {
	// ReportOnly is handler-wide report mode: decide, count, log, but
	// forward unchanged.
	ReportOnly bool
	// UnknownTokensPass forwards unregistered credentials untouched.
	UnknownTokensPass bool
	// AnonymousPass forwards API requests without a credential.
	AnonymousPass bool
}

// TokenDecider decides a request carrying a gateway (OAuth) token. ok is
// false when the token is not one, and the keys file decides instead.
type TokenDecider interface {
	DecideGatewayToken(store *policy.Store, token string, req policy.Request) (d policy.Decision, ok bool)
}

// State is the current state a decision reads.
type State struct {
	Store   *policy.Store
	Gateway TokenDecider // nil: gateway tokens are off
	// Stale: the store is older than the operator trusts (a database
	// source past max_staleness with stale_policy deny); credentialed
	// requests are refused with 503 rather than decided on it.
	Stale bool
}

// Verdict is the decision for one request.
type Verdict struct {
	Action Action
	// Label is the decision label (would_deny when report mode let a
	// denial or refusal through).
	Label Label
	// Enforced is the label enforce mode gives: Label, except for
	// would_deny, where it names what was not enforced.
	Enforced Label
	// Status and Message answer a refusal.
	Status  int
	Message string
	// Policy is the policy's decision for a credentialed request.
	Policy policy.Decision
	// TokenID is the short id of the credential (never the credential).
	TokenID string
	// Reason explains the decision for logs and explain.
	Reason string
	// CanonicalPath: forward with the canonical path.
	CanonicalPath bool
	// FilterIncludes: remove include values Canvas would drop.
	FilterIncludes bool
	// Upstream, when not empty, replaces the client's credential.
	Upstream string
	// Rewrite is the parameter rewrite to apply (include filtering,
	// credential stripping), computed for Forward.
	Rewrite params.Rewritten
	// Confine: an allowed request of a key confined to accounts; the
	// shell asks the confinement step (which looks objects up on Canvas)
	// and hands its answer to Confine before acting.
	Confine bool
	// Confinement is the confinement step's answer when it kept the
	// request out (for the log line).
	Confinement *confine.Result
	// Moves: the forwarded request may move objects between accounts,
	// so their cached accounts are dropped once it is forwarded.
	Moves bool
	// Unrecorded: a request the gate has no business with (no credential,
	// off /api/), neither counted nor logged.
	Unrecorded bool
}

// Key returns the verdict's developer key, or nil.
func (v *Verdict) Key() *policy.Key { return v.Policy.Key() }

// Reasons for requests without a policy decision.
const (
	ReasonNoCredential  = "no credential on an API path"
	ReasonNotAPI        = "no credential, not an API path"
	ReasonAnonymousPass = "no credential; anonymous pass"
	ReasonUnknownPass   = "token is not registered; unknown_tokens pass"
	// MsgMethodOverrideSuffix follows the override's name in a refusal.
	MsgMethodOverrideSuffix = " is not allowed: the gate checks the request method Canvas routes on"
	// MsgStale refuses a credentialed request when State.Stale.
	MsgStale = "the key store is older than max_staleness"
	// MsgMalformedParams refuses parameters that are not a *params.Error.
	MsgMalformedParams = "malformed request parameters"
)

// Decide is the gate's decision. It never touches the request.
func Decide(f *Facts, st State, cfg Config) (v Verdict) {
	// decide fills v in place: a Verdict is a few hundred bytes, and
	// returning it through each step copied it on the hot path.
	decide(f, st, cfg, &v)
	if v.Action == Forward {
		rw, err := f.Params.Rewrite(params.RewriteOptions{FilterIncludes: v.FilterIncludes, StripCredentials: v.Upstream != ""})
		if err != nil {
			return refuse(ParamsRefusal(err), cfg)
		}
		v.Rewrite = rw
	}
	if v.CanonicalPath && f.PathRefusal != nil {
		return refuse(f.PathRefusal, cfg)
	}
	return v
}

func decide(f *Facts, st State, cfg Config, v *Verdict) {
	if f.Refusal != nil {
		if f.Refusal.Streamable {
			*v = Verdict{Action: Pass, Label: LabelPassthrough, Enforced: LabelPassthrough, Unrecorded: true,
				Reason: "body over the inspection limit on a path where Canvas reads no credential from it"}
			return
		}
		*v = refuse(f.Refusal, cfg)
		return
	}
	if !f.HasToken {
		*v = anonymous(f, cfg)
		return
	}
	if st.Stale {
		*v = refuse(&Refusal{Status: http.StatusServiceUnavailable, Message: MsgStale}, cfg)
		return
	}
	if f.Params.MethodOverride != "" {
		// MethodOverride names the override (a parameter or header name
		// from a fixed list), never a request value.
		*v = refuse(&Refusal{Status: http.StatusBadRequest, Message: f.Params.MethodOverride + MsgMethodOverrideSuffix}, cfg)
		return
	}

	req := policy.Request{Method: f.Method, Path: f.Path, Host: f.Host, Masquerade: f.Params.Masquerade, Now: f.Now}
	var d policy.Decision
	gateway := false
	if st.Gateway != nil && f.Token != "" {
		d, gateway = st.Gateway.DecideGatewayToken(st.Store, f.Token, req)
	}
	if !gateway {
		d = st.Store.DecideHash(f.TokenHash, req)
	}
	v.Policy, v.Reason = d, d.Reason
	if d.Token != nil {
		v.TokenID = d.Token.ID
	} else {
		v.TokenID = policy.TokenID(f.TokenHash)
	}
	if d.Outcome == policy.UnknownToken && cfg.UnknownTokensPass {
		// A transparent front: Canvas checks its own tokens. The
		// canonical path is still what goes on, so what Canvas routes is
		// what a scoped token would have been matched on.
		v.Action, v.Label, v.Enforced, v.CanonicalPath = Pass, LabelPassthrough, LabelPassthrough, true
		v.Reason = ReasonUnknownPass
		return
	}
	key := d.Key()
	report := cfg.ReportOnly || (key != nil && key.Mode == policy.ModeReport)
	v.Enforced = OutcomeLabel(d.Outcome)
	if key != nil {
		v.Upstream, _ = key.UpstreamToken()
	}
	if v.Upstream != "" && IsTokenEndpoint(f.Path) {
		// Never forwarded with the key's credential: Canvas would act on
		// the upstream token (DELETE there deletes it, for every client
		// of the key). The gate answers for the client's own credential,
		// after the policy, in report mode too.
		v.Action, v.Label, v.Upstream = AnswerTokenEndpoint, v.Enforced, ""
		return
	}
	if d.Outcome != policy.Allowed {
		if !report {
			v.Action, v.Label, v.Upstream = Deny, v.Enforced, ""
			return
		}
		// Report mode forwards what enforce would deny, unfiltered, but
		// still with the key's credential and canonical path.
		v.Action, v.Label, v.CanonicalPath = Forward, LabelWouldDeny, true
		return
	}
	v.Action, v.Label, v.CanonicalPath = Forward, LabelAllowed, true
	v.FilterIncludes = key.RequireScopes && !key.AllowIncludes && !report
	v.Confine = key.Confined()
}

// Confine applies the confinement step's answer to a verdict that asked for
// it (Verdict.Confine). Inside, the verdict stands. Outside, or when the
// look-up failed, the request is denied (Canvas's 401 for a permission
// failure, or 503), or in report mode forwarded as would_deny.
func Confine(v Verdict, res confine.Result, cfg Config) Verdict {
	v.Confine = false
	if res.Outcome == confine.Inside {
		v.Moves = res.Moves || confine.MovesObjects(v.Policy.Scope)
		return v
	}
	// A copy taken here, so that only this path allocates it (taking the
	// parameter's address would move it to the heap on every call).
	kept := res
	v.Confinement, v.Reason = &kept, res.Reason
	v.Enforced = LabelOutsideAccounts
	if res.Outcome == confine.Failed {
		v.Enforced = LabelLookupFailed
	}
	if cfg.ReportOnly || v.Key().Mode == policy.ModeReport {
		v.Label = LabelWouldDeny // forwarded, as report mode forwards it unfiltered
		return v
	}
	v.Action, v.Label, v.Upstream = Deny, v.Enforced, ""
	return v
}

// anonymous decides a request without a credential: Canvas's 401 on /api/
// paths (unless anonymous pass), untouched elsewhere.
func anonymous(f *Facts, cfg Config) Verdict {
	if !IsAPIPath(f.Path) {
		return Verdict{Action: Pass, Label: LabelNoCredential, Enforced: LabelNoCredential, Reason: ReasonNotAPI, Unrecorded: true}
	}
	if cfg.AnonymousPass {
		return Verdict{Action: Pass, Label: LabelPassthrough, Enforced: LabelPassthrough, CanonicalPath: true, Reason: ReasonAnonymousPass}
	}
	v := Verdict{Action: Deny, Label: LabelNoCredential, Enforced: LabelNoCredential, Reason: ReasonNoCredential}
	if cfg.ReportOnly {
		v.Action, v.Label = Pass, LabelWouldDeny
	}
	return v
}

// refuse is the verdict for a request the gate will not interpret. In
// handler-wide report mode it is forwarded as received instead, unless
// the refusal holds always.
func refuse(r *Refusal, cfg Config) Verdict {
	v := Verdict{Action: Refuse, Label: LabelBadRequest, Enforced: LabelBadRequest,
		Status: r.Status, Message: r.Message, Reason: r.Message}
	if cfg.ReportOnly && !r.Always {
		v.Action, v.Label = Pass, LabelWouldDeny
	}
	return v
}

// ParamsRefusal is the refusal for a parameter error: its own status and
// constant message when it is a *params.Error.
func ParamsRefusal(err error) *Refusal {
	var pe *params.Error
	if errors.As(err, &pe) {
		return &Refusal{Status: pe.Status, Message: pe.Message}
	}
	return &Refusal{Status: http.StatusBadRequest, Message: MsgMalformedParams}
}

// IsAPIPath reports whether a canonical path is under /api/.
func IsAPIPath(p string) bool { return len(p) >= 5 && p[:5] == "/api/" }

// OutcomeLabel is the decision label of a policy outcome when enforced.
func OutcomeLabel(o policy.Outcome) Label {
	switch o {
	case policy.Allowed:
		return LabelAllowed
	case policy.InsufficientScope:
		return LabelInsufficient
	case policy.Expired:
		return LabelExpired
	case policy.Revoked:
		return LabelRevoked
	}
	return LabelInvalid
}

// IsTokenEndpoint reports whether a canonical path is, or could be read as,
// Canvas's token endpoint, where DELETE makes the presented token delete
// itself: /login/oauth2/token with Rails' optional format suffix
// (".json"), and, to be safe, any spelling that decodes, once lower-cased
// and with repeated or trailing slashes removed, to one of those.
func IsTokenEndpoint(canonical string) bool {
	p := canonical
	if strings.IndexByte(p, '%') >= 0 {
		if dec, err := url.PathUnescape(p); err == nil {
			p = dec
		}
	}
	p = strings.ToLower(p)
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	p = strings.TrimSuffix(p, "/")
	rest, ok := strings.CutPrefix(p, oauth.TokenPath)
	return ok && (rest == "" || rest[0] == '.')
}
