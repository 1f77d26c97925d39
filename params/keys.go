package params

// Name classes of the parameters this package cares about.
const (
	nmOther uint8 = iota
	nmInclude
	nmIncludes
	nmAccessToken
	nmMethod
	nmAsUserID
)

// Key forms, relative to Rack 2's nested-params reading.
const (
	fmScalar uint8 = iota + 1 // Rack 2 assigns params[name] = v (nothing after the name but ']'s)
	fmArray                   // the decoded key is exactly name + "[]"
	fmOther                   // anything else: include[0], include[a], [include][], include[][a], ...
)

// classifyKey derives the top-level name of a decoded key as Rack 2 does
// (/\A[\[\]]*([^\[\]]+)\]*/) and returns its class and form.
//
// Rack 3 derives top-level names differently (the text before the first '['
// after position 0), but for the names this package cares about, which
// contain no brackets, every key Rack 3 files under one of them is also
// filed under it by Rack 2, so reading as Rack 2 is the safe superset.
func classifyKey[T string | []byte](k T) (name, form uint8) {
	i := 0
	for i < len(k) && (k[i] == '[' || k[i] == ']') {
		i++
	}
	j := i
	for j < len(k) && k[j] != '[' && k[j] != ']' {
		j++
	}
	name = nameClass(k[i:j])
	if name == nmOther {
		return nmOther, 0
	}
	e := j
	for e < len(k) && k[e] == ']' {
		e++
	}
	switch {
	case i == 0 && e == j && len(k) == j+2 && k[j] == '[' && k[j+1] == ']':
		form = fmArray
	case e == len(k):
		form = fmScalar
	default:
		form = fmOther
	}
	return name, form
}

// isExactly reports whether the key is exactly the bare name (no brackets).
func isExactly[T string | []byte](k T, name string) bool {
	return string(k) == name
}

func nameClass[T string | []byte](n T) uint8 {
	switch string(n) {
	case "include":
		return nmInclude
	case "includes":
		return nmIncludes
	case "access_token":
		return nmAccessToken
	case "_method":
		return nmMethod
	case "as_user_id":
		return nmAsUserID
	}
	return nmOther
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// needsDecode reports whether s contains '%' or '+'.
func needsDecode(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return true
		}
	}
	return false
}

// decodeAppend appends the form-decoding of s ('+' is a space, %XX a byte)
// to dst. s must already have been validated (no bad escapes).
func decodeAppend(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// decodedLen returns the length of the form-decoding of validated s.
func decodedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			n -= 2
		}
	}
	return n
}
