package confine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CanvasAPI looks objects up on Canvas with its own token. It is the only
// place that token is used: it is never put on a vendor's request, and a
// look-up carries nothing of a vendor's request but the ids.
type CanvasAPI struct {
	// Base is the Canvas origin, such as https://canvas.example.edu.
	Base string
	// Token is the look-up token. Never logged or put in an error.
	Token   string
	Timeout time.Duration
	Client  *http.Client
}

// DefaultTimeout bounds one look-up.
const DefaultTimeout = 3 * time.Second

// NewCanvasAPI returns a look-up client that follows no redirects (a
// redirect could carry the token elsewhere).
func NewCanvasAPI(base, token string, timeout time.Duration) *CanvasAPI {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &CanvasAPI{
		Base: strings.TrimRight(base, "/"), Token: token, Timeout: timeout,
		Client: &http.Client{
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

var lookupPaths = [...]string{
	KindAccount:       "/api/v1/accounts/",
	KindCourse:        "/api/v1/courses/",
	KindSection:       "/api/v1/sections/",
	KindGroup:         "/api/v1/groups/",
	KindGroupCategory: "/api/v1/group_categories/",
}

// LookupError is a failed look-up; its text names the kind and the status,
// never the token or the id.
type LookupError struct {
	Kind   Kind
	Status int // 0: no answer
	Msg    string
}

func (e *LookupError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("canvas_api %s look-up: HTTP %d: %s", e.Kind, e.Status, e.Msg)
	}
	return fmt.Sprintf("canvas_api %s look-up: %s", e.Kind, e.Msg)
}

// Lookup implements Lookup: GET /api/v1/<kind>/<id> with string ids.
func (a *CanvasAPI) Lookup(ctx context.Context, kind Kind, id string) (Object, error) {
	if kind == KindNone || int(kind) >= len(lookupPaths) {
		return Object{}, &LookupError{Kind: kind, Msg: "unknown kind"}
	}
	if id == "" || strings.ContainsAny(id, "/?#") || id == "." || id == ".." {
		// Not a single path segment: it cannot name one object.
		return Object{}, ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Base+lookupPaths[kind]+id, nil)
	if err != nil {
		return Object{}, ErrNotFound
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	// Ids above 2^53 must stay exact.
	req.Header.Set("Accept", "application/json+canvas-string-ids")
	resp, err := a.Client.Do(req)
	if err != nil {
		msg := "no answer"
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
			msg = "timed out"
		}
		return Object{}, &LookupError{Kind: kind, Msg: msg}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Object{}, &LookupError{Kind: kind, Status: resp.StatusCode, Msg: "reading the answer failed"}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Object{}, ErrNotFound
	case resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), "Rate Limit Exceeded"):
		return Object{}, &LookupError{Kind: kind, Status: resp.StatusCode, Msg: "rate limit exceeded"}
	case resp.StatusCode != http.StatusOK:
		// 401 (the look-up token is invalid or may not read the object),
		// 403, 429, 5xx, redirects: nobody can tell.
		return Object{}, &LookupError{Kind: kind, Status: resp.StatusCode, Msg: "unexpected status"}
	}
	var v struct {
		ID              *string `json:"id"`
		AccountID       *string `json:"account_id"`
		ParentAccountID *string `json:"parent_account_id"`
		CourseID        *string `json:"course_id"`
		ContextType     *string `json:"context_type"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.ID == nil || !isID(*v.ID) {
		return Object{}, &LookupError{Kind: kind, Status: resp.StatusCode, Msg: "the answer is not the expected JSON object with string ids"}
	}
	obj := Object{Found: true, ID: *v.ID}
	bad := false
	switch kind {
	case KindAccount:
		obj.ParentKind = KindAccount
		if v.ParentAccountID != nil {
			obj.Parent, bad = *v.ParentAccountID, !isID(*v.ParentAccountID)
		}
	case KindCourse:
		obj.ParentKind = KindAccount
		bad = v.AccountID == nil || !isID(*v.AccountID)
		if !bad {
			obj.Parent = *v.AccountID
		}
	case KindSection:
		obj.ParentKind = KindCourse
		bad = v.CourseID == nil || !isID(*v.CourseID)
		if !bad {
			obj.Parent = *v.CourseID
		}
	case KindGroup, KindGroupCategory:
		switch {
		case v.ContextType != nil && *v.ContextType == "Course" && v.CourseID != nil && isID(*v.CourseID):
			obj.ParentKind, obj.Parent = KindCourse, *v.CourseID
		case v.ContextType != nil && *v.ContextType == "Account" && v.AccountID != nil && isID(*v.AccountID):
			obj.ParentKind, obj.Parent = KindAccount, *v.AccountID
		default:
			bad = true
		}
	}
	if bad {
		return Object{}, &LookupError{Kind: kind, Status: resp.StatusCode, Msg: "the answer names no context"}
	}
	return obj, nil
}

// isID accepts Canvas's numeric ids as strings.
func isID(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
