package jsontree

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// toAny converts a tree into what encoding/json's Unmarshal into an any
// (with UseNumber) produces, so the two readers can be compared.
func toAny(n *Node) any {
	switch n.Kind {
	case KindObject:
		m := make(map[string]any, len(n.Object))
		for _, mem := range n.Object {
			m[mem.Name] = toAny(mem.Value)
		}
		return m
	case KindArray:
		a := make([]any, len(n.Array))
		for i, e := range n.Array {
			a[i] = toAny(e)
		}
		return a
	case KindString:
		return n.Text
	case KindNumber:
		return json.Number(n.Text)
	case KindBool:
		return n.Bool
	}
	return nil
}

// hasDuplicateMember reports whether some object in the document repeats a
// Member name, which Parse refuses and encoding/json accepts.
func hasDuplicateMember(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, _ := dec.Token()
				k, _ := kt.(string)
				if seen[k] || walk() {
					return true
				}
				seen[k] = true
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if walk() {
					return true
				}
			}
			dec.Token()
		}
		return false
	}
	return walk()
}

func depthOf(data []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			d++
			maxD = max(maxD, d)
		case !inStr && (c == '}' || c == ']'):
			d--
		}
	}
	return maxD
}

// checkAgainstEncodingJSON is the differential property: Parse accepts
// exactly the documents encoding/json accepts, except the ones it refuses
// on purpose (duplicate members, invalid UTF-8, nesting deeper than
// maxDepth), and reads the same values; streaming sees the same elements.
func checkAgainstEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	tree, err := Parse(data, nil)
	valid := json.Valid(data)
	if err != nil {
		se, ok := err.(*SyntaxError)
		if !ok || se.Offset < 0 || se.Offset > int64(len(data)) {
			t.Fatalf("%q: error %v has no offset within the input", data, err)
		}
		if valid && !hasDuplicateMember(data) && utf8.Valid(data) && depthOf(data) <= maxDepth+1 {
			t.Fatalf("%q: encoding/json accepts it, Parse says %v", data, err)
		}
		return
	}
	if !valid {
		t.Fatalf("%q: Parse accepts what encoding/json refuses", data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var want any
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	if got := toAny(tree); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nparseTree     %#v\nencoding/json %#v", data, got, want)
	}

	// Streaming hands over the same elements, in order, and leaves the
	// streamed arrays empty in the tree.
	streamed := map[string][]any{}
	stree, err := Parse(data, func(list string, i int, n *Node) {
		if i != len(streamed[list]) {
			t.Fatalf("%q: element %d of %q out of order", data, i, list)
		}
		streamed[list] = append(streamed[list], toAny(n))
	})
	if err != nil {
		t.Fatalf("%q: streaming parse failed: %v", data, err)
	}
	obj, isObj := want.(map[string]any)
	for name, v := range obj {
		arr, isArr := v.([]any)
		if !isObj || !isArr || len(arr) == 0 {
			continue
		}
		if !reflect.DeepEqual(streamed[name], arr) {
			t.Fatalf("%q: streamed %q = %#v, want %#v", data, name, streamed[name], arr)
		}
		obj[name] = []any{}
	}
	if got := toAny(stree); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: streamed tree %#v, want %#v", data, got, want)
	}
}

var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e+10`, `-12.0E-3`, `"x"`,
	`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
	`{"tokens":[{"sha256":"ab","scopes":["url:GET|/api/v1/courses"]},{"x":[1,[2]]}],"n":[]}`,
	`{"developer_keys":[1,2,3],"tokens":[],"clients":{"a":[]}}`,
	` { "a" : [ 1 , 2 ] } `, "\t\r\n[\n1\n]\n",
	`"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"é"`,
	`{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `{"a":1,}`, `[1,]`, `[01]`, `[1.]`, `[.5]`, `[1e]`, `[-]`,
	`{"a" 1}`, `{a:1}`, `[tru]`, `[nul]`, `"abc`, `"\x"`, `"\u12"`, "\"a\x01\"", `[1] 2`, `{"a":1}}`,
	"\"\xff\"", "[\"\xc3\"]", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	``, ` `, `{`, `[`, `{"a":`, `{"a"`,
}

func TestParseTreeMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkAgainstEncodingJSON(t, []byte(s))
	}
}

func TestParseTreeRefusals(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"a":2}`, `duplicate field "a"`},
		{"\"\xff\"", "invalid UTF-8"},
		{strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2), "nested more than"},
		{`{"a":1,}`, "invalid character '}' looking for beginning of object key string"},
		{`[1] 2`, "unexpected data after the top-level value"},
		{bigObject(100, 3), `duplicate field "k3"`},
		{bigObject(17, 16), `duplicate field "k16"`},
		{`{"a":`, "unexpected end of file"},
	} {
		_, err := Parse([]byte(tc.in), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

// bigObject is an object with n members k0…k(n-1), then a repeat of k(dup)
// if dup >= 0.
func bigObject(n, dup int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	if dup >= 0 {
		fmt.Fprintf(&b, `"k%d":0,`, dup)
	}
	return strings.TrimSuffix(b.String(), ",") + "}"
}

func TestParseTreeLargeObjects(t *testing.T) {
	for _, n := range []int{16, 17, 100, 5000} {
		checkAgainstEncodingJSON(t, []byte(bigObject(n, -1)))
		if _, err := Parse([]byte(bigObject(n, n-1)), nil); err == nil || !strings.Contains(err.Error(), "duplicate field") {
			t.Errorf("%d members and a repeat of the last: %v", n, err)
		}
	}
}

func FuzzParseTree(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAgainstEncodingJSON)
}
