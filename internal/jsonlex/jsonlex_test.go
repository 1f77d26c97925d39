package jsonlex

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// The pieces agree with encoding/json on every case here; the differential
// fuzz targets of their two callers (policy.FuzzParseTree and
// params.FuzzFilterIncludesJSON) exercise them further.
func TestString(t *testing.T) {
	for _, tc := range []struct {
		in       string
		end, bad int
		escaped  bool
	}{
		{`"abc" x`, 5, 0, false},
		{`""`, 2, 0, false},
		{`"a\"b"`, 6, 0, true},
		{`"\u00e9\ud83d\ude00"`, 20, 0, true},
		{`"abc`, -1, 4, false},
		{`"a\`, -1, 3, true},
		{`"\x"`, -1, 2, true},
		{`"\u12g4"`, -1, 5, true},
		{`"\u12`, -1, 5, true},
		{"\"a\x01\"", -1, 2, false},
	} {
		end, escaped, bad := String([]byte(tc.in), 0)
		if end != tc.end || escaped != tc.escaped || (end < 0 && bad != tc.bad) {
			t.Errorf("String(%q) = %d, %v, %d; want %d, %v, %d", tc.in, end, escaped, bad, tc.end, tc.escaped, tc.bad)
		}
		if end > 0 {
			var want string
			if err := json.Unmarshal([]byte(tc.in[:end]), &want); err != nil {
				t.Fatal(err)
			}
			if got := string(AppendUnquoted(nil, []byte(tc.in[1:end-1]))); got != want {
				t.Errorf("AppendUnquoted(%q) = %q, want %q", tc.in[:end], got, want)
			}
		}
	}
	// Lone and reversed surrogates become U+FFFD, as in encoding/json.
	for _, in := range []string{`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"x\ud83dy"`} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if got := string(AppendUnquoted(nil, []byte(in[1:len(in)-1]))); got != want {
			t.Errorf("AppendUnquoted(%s) = %q, want %q", in, got, want)
		}
	}
}

// StringUTF8 accepts exactly the strings String accepts whose bytes are
// valid UTF-8, and points at the first invalid sequence.
func TestStringUTF8(t *testing.T) {
	for _, tc := range []struct {
		in       string
		end, bad int
	}{
		{`"abc" x`, 5, 0},
		{"\"h\u00e9 \xc3\xa9 \xf0\x9f\x98\x80\"", 13, 0},
		{"\"a\xff\"", -1, 2},
		{"\"ab\xc3\"", -1, 3},        // truncated sequence
		{"\"\xed\xa0\x80\"", -1, 1},  // an encoded surrogate
		{"\"\xc0\xaf\"", -1, 1},      // overlong
		{"\"a\\\"\xe2\x82\"", -1, 4}, // truncated after an escape
		{"\"\xe2\x82\xac", -1, 4},    // valid, then the end
	} {
		end, _, bad := StringUTF8([]byte(tc.in), 0)
		if end != tc.end || (end < 0 && bad != tc.bad) {
			t.Errorf("StringUTF8(%q) = %d, %d; want %d, %d", tc.in, end, bad, tc.end, tc.bad)
		}
		plainEnd, _, _ := String([]byte(tc.in), 0)
		if valid := plainEnd > 0 && utf8.Valid([]byte(tc.in[:plainEnd])); valid != (end > 0) || valid && end != plainEnd {
			t.Errorf("StringUTF8(%q) = %d, String and utf8.Valid say %d, %v", tc.in, end, plainEnd, valid)
		}
	}
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		in       string
		end, bad int
	}{
		{"0", 1, 0}, {"-0", 2, 0}, {"12.5e+3,", 7, 0}, {"1E9]", 3, 0}, {"01", 1, 0},
		{"-", -1, 1}, {"1.", -1, 2}, {".5", -1, 0}, {"1e", -1, 2}, {"1e+", -1, 3}, {"-x", -1, 1},
	} {
		end, bad := Number([]byte(tc.in), 0)
		if end != tc.end || (end < 0 && bad != tc.bad) {
			t.Errorf("Number(%q) = %d, %d; want %d, %d", tc.in, end, bad, tc.end, tc.bad)
		}
	}
}

func TestSpace(t *testing.T) {
	for _, c := range []struct {
		in   string
		from int
		want int
	}{
		{"", 0, 0},
		{" \t\r\n{", 0, 4},
		{"{ }", 1, 2},
		{"  ", 0, 2},
		{"\v x", 0, 0}, // not JSON whitespace
		{"\u00a0x", 0, 0},
		{"x  ", 3, 3},
	} {
		if got := Space([]byte(c.in), c.from); got != c.want {
			t.Errorf("Space(%q, %d) = %d, want %d", c.in, c.from, got, c.want)
		}
	}
}
