package params

import "sync"

// Inspection is the result of Inspect.
type Inspection struct {
	Token          string // the credential Canvas would use; "" if none. NEVER log or print it.
	TokenSource    Source
	MethodOverride string // the first method-override signal found ("_method", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"), or ""
	Masquerade     bool   // an as_user_id parameter (any bracket form) is present in the query or body

	rawQuery string
	body     []byte
	kind     BodyKind
	q, b     container
	// JSON bodies
	jsonTop     jsonTop
	jsonMembers []jsonMember
	// multipart bodies
	mpParts []mpPart
	mpClose int

	itemBuf [8]item
	scratch [64]byte
}

// inspections recycles Inspections: one is about 900 bytes, and the gate
// makes one per request.
var inspections = sync.Pool{New: func() any { return new(Inspection) }}

// Release zeroes the Inspection (so no request data lingers) and returns it
// for reuse by a later Inspect. Call it once nothing reads the Inspection or
// its Rewrite results' internals any more; strings it handed out, such as
// Token, stay valid. Releasing is optional.
func (in *Inspection) Release() {
	if in == nil {
		return
	}
	// The JSON scan's slices are kept for the next request, emptied: names
	// are copies of request data, so they are cleared; spans and member
	// records hold offsets only. Slices grown by an unusually large body
	// are not kept.
	members, names, jm := in.jsonTop.members, in.jsonTop.names, in.jsonMembers
	clear(names)
	*in = Inspection{}
	if cap(names) <= maxPooledJSONMembers && cap(members) <= maxPooledJSONMembers && cap(jm) <= maxPooledJSONMembers {
		in.jsonTop.members, in.jsonTop.names, in.jsonMembers = members[:0], names[:0], jm[:0]
	}
	inspections.Put(in)
}

const maxPooledJSONMembers = 64

// Method-override header names, as reported in MethodOverride.
var overrideHeaders = [...]string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// Inspect parses the query and the body once. Errors are *Error (400 for
// malformed or ambiguous input).
//
// The body is read according to BodyKindOf(req.Method, req.ContentType,
// req.Body != nil): a nil Body means there is no buffered body. An empty
// JSON body is no body (Rails skips JSON parsing when Content-Length is 0).
func Inspect(req Request, lim Limits) (*Inspection, error) {
	lim = lim.norm()
	in := inspections.Get().(*Inspection)
	in.rawQuery, in.body = req.RawQuery, req.Body
	in.q.items = in.itemBuf[:0:4]
	in.b.items = in.itemBuf[4:4:8]
	scratch := in.scratch[:0]
	count := 0

	if req.RawQuery != "" {
		if e := validatePairs(req.RawQuery, true, lim.MaxParams); e != nil {
			return nil, e
		}
		if e := in.q.scanPairs(req.RawQuery, lim, &count, &scratch); e != nil {
			return nil, e
		}
	}

	kind, boundary := BodyKindOf(req.Method, req.ContentType, req.Body != nil)
	in.kind = kind
	switch kind {
	case BodyForm:
		if e := validatePairs(req.Body, false, lim.MaxParams-count); e != nil {
			return nil, e
		}
		s := string(req.Body)
		if e := in.b.scanPairs(s, lim, &count, &scratch); e != nil {
			return nil, e
		}
	case BodyMultipart:
		if boundary == "" {
			return nil, badRequest(MsgInvalidMultipart)
		}
		parts, closeAt, e := scanMultipart(req.Body, boundary, lim.MaxParams-count)
		if e != nil {
			return nil, e
		}
		in.mpParts, in.mpClose = parts, closeAt
		if e := multipartItems(parts, lim, &count, &in.b); e != nil {
			return nil, e
		}
	case BodyJSON:
		if len(req.Body) == 0 {
			in.kind = BodyNone
			break
		}
		if e := in.scanJSONBody(req.Body, lim, &count); e != nil {
			return nil, e
		}
	}

	if e := in.q.checkIncludeForms(); e != nil {
		return nil, e
	}
	if e := in.b.checkIncludeForms(); e != nil {
		return nil, e
	}

	hdrTok, isBearer, err := ParseAuthorization(req.Header["Authorization"])
	if err != nil {
		return nil, err
	}
	// Parameter credential: the query wins over the body in Rails' merge.
	var paramTok string
	var paramSrc Source
	switch {
	case in.q.tokSet && in.q.tok != "":
		paramTok, paramSrc = in.q.tok, SourceQuery
		if in.b.tok != "" && in.b.tok != in.q.tok {
			return nil, badRequest(MsgConflictingCredentials)
		}
	case in.q.tokSet:
		// An empty query access_token hides the body's from Canvas, but
		// reads as absent under the simple rule: refuse the disagreement.
		if in.b.tok != "" {
			return nil, badRequest(MsgConflictingCredentials)
		}
	case in.b.tok != "":
		paramTok, paramSrc = in.b.tok, SourceBody
	}
	if isBearer {
		if hdrTok != "" && paramTok != "" && paramTok != hdrTok {
			return nil, badRequest(MsgConflictingCredentials)
		}
		if hdrTok != "" {
			in.Token, in.TokenSource = hdrTok, SourceHeader
		}
		// "Bearer" with nothing after it: no token, and Canvas does not
		// consult the access_token parameter.
	} else if paramTok != "" {
		in.Token, in.TokenSource = paramTok, paramSrc
	}

	if in.q.method || in.b.method {
		in.MethodOverride = "_method"
	} else {
		in.MethodOverride = overrideHeader(req)
	}
	in.Masquerade = in.q.asUser || in.b.asUser
	return in, nil
}

// overrideHeader returns the first method-override header present (any
// value, even empty). Besides the canonical keys it also recognises
// non-canonical spellings, including '_' for '-', which Rack maps to the
// same env key.
func overrideHeader(req Request) string {
	if req.CanonicalNames {
		return overrideHeaderByKey(req.Header)
	}
	// One pass over the names. best is the index of the first override
	// header present, in overrideHeaders' order.
	best := len(overrideHeaders)
	for k := range req.Header {
		for i := 0; i < best; i++ {
			if headerNameEq(k, overrideHeaders[i]) {
				best = i
				break
			}
		}
	}
	if best < len(overrideHeaders) {
		return overrideHeaders[best]
	}
	return ""
}

func headerNameEq(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerDash(a[i]) != lowerDash(b[i]) {
			return false
		}
	}
	return true
}

func lowerDash(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	}
	return c
}

func (in *Inspection) scanJSONBody(b []byte, lim Limits, count *int) *Error {
	t, e := scanJSONInto(b, lim.MaxJSONDepth, lim.MaxParams-*count, in.jsonTop)
	in.jsonTop = t // also on error: Release recycles the slices
	if e != nil {
		return e
	}
	for i, name := range t.names {
		*count++
		if *count > lim.MaxParams {
			return badRequest(MsgTooManyParams)
		}
		if len(name) > lim.MaxKeyBytes {
			return badRequest(MsgKeyTooLong)
		}
		nm, _ := classifyKey(name)
		switch nm {
		case nmAccessToken:
			if name != "access_token" {
				return badRequest(MsgAmbiguousAccessToken)
			}
			sp := t.members[i]
			v := b[sp.valStart:sp.valEnd]
			if v[0] != '"' {
				return badRequest(MsgAmbiguousAccessToken)
			}
			if e := in.b.setToken(decodeJSONString(v)); e != nil {
				return e
			}
		case nmMethod:
			in.b.method = true
		case nmAsUserID:
			in.b.asUser = true
		}
	}
	in.jsonMembers = appendJSONMembers(in.jsonMembers[:0], b, t)
	for _, m := range in.jsonMembers {
		switch m.name {
		case nmInclude:
			in.b.has[0] = true
		case nmIncludes:
			in.b.has[1] = true
		}
	}
	return nil
}

// RewriteOptions selects what Rewrite changes.
type RewriteOptions struct {
	FilterIncludes   bool // the key has allow_includes=false: apply Canvas's include/includes rule
	StripCredentials bool // credential substitution: remove every access_token param from query and body
}

// Rewritten is the result of Rewrite.
type Rewritten struct {
	RawQuery        string
	Body            []byte // nil when there was no buffered body
	QueryChanged    bool
	BodyChanged     bool
	IncludesRemoved int // number of include/includes values removed (for metrics)
}

// Rewrite applies the include filter and/or credential stripping in one
// pass. When nothing changes the original query string and body slice are
// returned. Rewrite may be called more than once, but not concurrently on
// the same Inspection.
func (in *Inspection) Rewrite(opt RewriteOptions) (Rewritten, error) {
	res := Rewritten{RawQuery: in.rawQuery, Body: in.body}
	if !opt.FilterIncludes && !opt.StripCredentials {
		return res, nil
	}
	if len(in.q.items) == 0 && len(in.b.items) == 0 && len(in.jsonMembers) == 0 {
		return res, nil
	}
	for i := range in.q.items {
		in.q.items[i].remove = false
	}
	for i := range in.b.items {
		in.b.items[i].remove = false
	}
	var bodyRemoveAll [2]bool
	if opt.FilterIncludes {
		for k, nm := range [2]uint8{nmInclude, nmIncludes} {
			bodyRemoveAll[k] = in.q.hasName(nm)
			res.IncludesRemoved += decideIncludes(in.q.items, nm, false)
			if in.kind != BodyJSON {
				res.IncludesRemoved += decideIncludes(in.b.items, nm, bodyRemoveAll[k])
			}
		}
	}
	if opt.StripCredentials {
		markCredentials(in.q.items)
		markCredentials(in.b.items)
	}
	res.RawQuery, res.QueryChanged = rewritePairs(in.rawQuery, in.q.items)

	switch in.kind {
	case BodyForm:
		if anyRemoved(in.b.items) {
			out, _ := rewritePairs(string(in.body), in.b.items)
			res.Body, res.BodyChanged = []byte(out), true
		}
	case BodyMultipart:
		if anyRemoved(in.b.items) {
			res.Body = rewriteMultipart(in.body, in.mpParts, in.mpClose, removeMask(in.b.items, len(in.mpParts)))
			res.BodyChanged = true
		}
	case BodyJSON:
		if len(in.jsonMembers) == 0 {
			break
		}
		n := len(in.jsonTop.members)
		remove := make([]bool, n)
		replace := make([][]byte, n)
		if !opt.FilterIncludes {
			// Only strip credentials: plan with includes untouched.
			for _, m := range in.jsonMembers {
				if m.name == nmAccessToken {
					remove[m.idx] = true
				}
			}
		} else {
			res.IncludesRemoved += planJSON(in.jsonMembers, n, bodyRemoveAll, opt.StripCredentials, remove, replace)
		}
		if changedJSON(remove, replace) {
			res.Body = rewriteJSON(in.body, in.jsonTop.members, remove, replace)
			res.BodyChanged = true
		}
	}
	return res, nil
}

// ParseAuthorization reads the Authorization header values as Canvas does
// (docs/canvas-semantics.md#token-extraction): more than one value is a *Error; the value is split like Ruby's
// split(" ", 2). isBearer is true when the scheme is exactly "Bearer"; then
// token is the rest verbatim, which may be "" (no token, and Canvas does
// not consult the access_token parameter).
func ParseAuthorization(values []string) (token string, isBearer bool, err error) {
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", false, badRequest(MsgDuplicateAuthorization)
	}
	v := values[0]
	i := 0
	for i < len(v) && isRubySpace(v[i]) {
		i++
	}
	j := i
	for j < len(v) && !isRubySpace(v[j]) {
		j++
	}
	if v[i:j] != "Bearer" {
		return "", false, nil
	}
	for j < len(v) && isRubySpace(v[j]) {
		j++
	}
	return v[j:], true, nil
}

func isRubySpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
