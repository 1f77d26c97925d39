// Package jsonlex scans the lexical pieces of JSON (RFC 8259) that the
// keys-file reader (policy) and the request-body scanner (params) share:
// strings, their unescaping, and numbers. Each reader keeps its own
// structure (values, nesting, error wording); this is only the alphabet.
// Standard library only.
package jsonlex

import (
	"unicode/utf16"
	"unicode/utf8"
)

// String scans the string whose opening quote is at b[i]. It returns the
// index just past the closing quote and whether the string has escapes.
// On malformed input (a control character, a bad escape, or the end of
// the input) it returns end = -1 and bad, the index of the offending byte
// (len(b) when the input ends first). Bytes from 0x80 up are not checked:
// the keys-file reader validates UTF-8 once for the whole document.
func String(b []byte, i int) (end int, escaped bool, bad int) {
	return scanString(b, i, false)
}

// StringUTF8 is String that also finds a string that is not valid UTF-8
// malformed (bad is then the first byte of the invalid sequence), for a
// reader that stops early and so does not validate the whole document
// first. Outside strings, JSON has no place for bytes from 0x80 up.
func StringUTF8(b []byte, i int) (end int, escaped bool, bad int) {
	return scanString(b, i, true)
}

func scanString(b []byte, i int, checkUTF8 bool) (end int, escaped bool, bad int) {
	j := i + 1
	for j < len(b) {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, 0
		case c == '\\':
			escaped = true
			if j+1 >= len(b) {
				return -1, escaped, len(b)
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				for k := j + 2; k < j+6; k++ {
					if k >= len(b) {
						return -1, escaped, len(b)
					}
					if _, ok := hexDigit(b[k]); !ok {
						return -1, escaped, k
					}
				}
				j += 6
			default:
				return -1, escaped, j + 1
			}
		case c < 0x20:
			return -1, escaped, j
		case c >= utf8.RuneSelf && checkUTF8:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				return -1, escaped, j
			}
			j += size
		default:
			j++
		}
	}
	return -1, escaped, len(b)
}

// AppendUnquoted appends the value of a string that String accepted, given
// without its quotes, to dst. A UTF-16 surrogate that is not half of an
// escaped pair becomes U+FFFD, as in encoding/json.
func AppendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); pair != utf8.RuneError {
						dst = utf8.AppendRune(dst, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		i += 2
	}
	return dst
}

// Space returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, line feed, carriage return).
func Space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Number scans the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// It returns the index just past it, or end = -1 and the index of the
// offending byte (len(b) when the input ends first).
func Number(b []byte, i int) (end, bad int) {
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return -1, i
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return -1, i
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return -1, i
		}
	}
	return i, 0
}

func hexDigit(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		v, _ := hexDigit(c)
		r = r<<4 | v
	}
	return r
}
