package confine

import "strings"

// Ref is one object a request names: its kind, the parameter it came from
// and its id as a path segment (as it arrived in the path, still
// percent-encoded, or a body value escaped for a path). The id is never
// interpreted: Canvas is asked about it.
type Ref struct {
	Kind  Kind
	Param string
	ID    string
}

// PathRefs appends to dst the context objects that the route's parameters
// name in canonicalPath (the path the scope matched).
func (r *Route) PathRefs(dst []Ref, canonicalPath string) []Ref {
	if len(r.Params) == 0 {
		return dst
	}
	p := canonicalPath
	if len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	seg, next := 0, 0
	for _, cp := range r.Params {
		for seg < cp.Segment && next >= 0 {
			i := strings.IndexByte(p, '/')
			if i < 0 {
				next = -1
				break
			}
			p = p[i+1:]
			seg++
		}
		if next < 0 {
			break
		}
		v := p
		if i := strings.IndexByte(v, '/'); i >= 0 {
			v = v[:i]
		}
		dst = append(dst, Ref{Kind: cp.Kind, Param: cp.Name, ID: v})
	}
	return dst
}

// MoveParams are the parameters (query or body, read in Rack's bracket
// form: "course[account_id]", or JSON {"course":{"account_id":..}}) that
// point an object at another context, so their values must be inside too.
// The bare attribute names are listed as well because Rails may wrap a JSON
// body's top-level members into the controller's model (wrap_parameters),
// turning {"account_id": 9} into course[account_id].
var MoveParams = []struct {
	Name []string
	Kind Kind
}{
	{[]string{"course", "account_id"}, KindAccount},         // course create/update: move the course
	{[]string{"account", "parent_account_id"}, KindAccount}, // account update: move the account
	{[]string{"account_id"}, KindAccount},
	{[]string{"parent_account_id"}, KindAccount},
	{[]string{"settings", "source_course_id"}, KindCourse}, // content migration (course copy) source
	{[]string{"source_course"}, KindCourse},                // course copy source
	{[]string{"course_ids_to_add"}, KindCourse},            // blueprint associations
	{[]string{"course_ids_to_remove"}, KindCourse},
	{[]string{"course_ids"}, KindCourse}, // batch course update in an account
	{[]string{"course_id"}, KindCourse},
	{[]string{"course_section", "course_id"}, KindCourse},
	{[]string{"enrollment", "course_section_id"}, KindSection}, // enrol into a section
	{[]string{"assignment", "group_category_id"}, KindGroupCategory},
	{[]string{"group", "group_category_id"}, KindGroupCategory},
	{[]string{"group_category_id"}, KindGroupCategory},
}

// Params are a request's query and body parameters (a
// *params.Inspection): EachParam yields each decoded key, in Rack's bracket
// form, with its decoded value; MayContain is a cheap test that is false
// only when no key or value can contain one of words.
type Params interface {
	MayContain(words ...string) bool
	EachParam(yield func(key, value string) bool)
}

// moveWords is in every move parameter's name.
var moveWords = [...]string{"_id", "source_course"}

// MoveRefs returns the objects named by move parameters (nil, without
// allocating, when the parameters cannot hold one). A key is read
// loosely (every bracketed part, empty ones dropped), so "course[account_id][]"
// and "[course]][account_id]" are checked as course[account_id]: reading more
// keys as moves can only deny more.
func MoveRefs(params Params) []Ref {
	if params == nil || !params.MayContain(moveWords[:]...) {
		return nil
	}
	var dst []Ref
	params.EachParam(func(key, value string) bool {
		if value == "" || !mayMove(key) {
			return true
		}
		var parts [3]string
		n := 0
		for _, f := range strings.FieldsFunc(key, isBracket) {
			if n == len(parts) {
				n++
				break
			}
			parts[n] = f
			n++
		}
		if n > len(parts) {
			return true
		}
		for _, m := range MoveParams {
			if len(m.Name) == n && equalParts(m.Name, parts[:n]) {
				dst = append(dst, Ref{Kind: m.Kind, Param: key, ID: EscapeSegment(value)})
			}
		}
		return true
	})
	return dst
}

// mayMove is a cheap filter before splitting a key: every move parameter's
// last part ends in "_id", "_ids", "_add", "_remove" or is source_course.
func mayMove(key string) bool {
	return strings.Contains(key, "_id") || strings.Contains(key, "source_course") || strings.Contains(key, "course_ids")
}

func isBracket(r rune) bool { return r == '[' || r == ']' }

func equalParts(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// EscapeSegment turns a decoded value into a path segment Canvas decodes
// back to the same bytes. Everything but letters, digits, "-", "_", "~"
// and ":" is escaped, "." included, so Rails cannot split a format suffix
// off an id that came from a body.
func EscapeSegment(v string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(v); i++ {
		if !plainByte(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if plainByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~' || c == ':'
}
