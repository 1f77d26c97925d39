package params

import "testing"

func TestFilterIncludesJSON(t *testing.T) {
	tests := []struct {
		in, out string
		removed int
		err     bool
	}{
		{`{"a":1,"include":"x","b":[1]}`, `{"a":1,"b":[1]}`, 1, false},
		{`{"include":["x","uuid","uuid"]}`, `{"include":["uuid"]}`, 2, false},
		{`{"include":["x"]}`, `{"include":[]}`, 1, false},
		{`{"include":[ "uuid" ]}`, `{"include":[ "uuid" ]}`, 0, false},
		{`{"include":["\u0075uid"]}`, `{"include":["\u0075uid"]}`, 0, false},
		{`{"include" : [ ] }`, `{"include" : [ ] }`, 0, false},
		{`{"include":"uuid"}`, `{}`, 1, false},
		{`{ "include":{"a":1} , "b" : 2 }`, `{ "b" : 2 }`, 1, false},
		{"{\n  \"a\" :  1 ,\n  \"include\": null,\n  \"c\":\t{\"include\":\"x\"}\n}\n", "{\n  \"a\" :  1 ,\n  \"c\":\t{\"include\":\"x\"}\n}\n", 1, false},
		{`{"a":1, "include":5}`, `{"a":1}`, 1, false},
		{`{"include":5, "a":1, "includes":["uuid",1], "z":[]}`, `{"a":1, "includes":["uuid"], "z":[]}`, 2, false},
		{`{"\u0069nclude":"x","a":1}`, `{"a":1}`, 1, false},
		{`{"include[]":["x"]}`, `{"include[]":["x"]}`, 0, false},
		{`["include"]`, `["include"]`, 0, false},
		{`"x"`, `"x"`, 0, false},
		{` {} `, ` {} `, 0, false},
		{`{"a":1,"a":2}`, ``, 0, true},
		{`{"include":1,"\u0069nclude":2}`, ``, 0, true},
		{`{"a":1,}`, ``, 0, true},
		{`{"a":01}`, ``, 0, true},
		{`{"a":"\x"}`, ``, 0, true},
		{`{"a":NaN}`, ``, 0, true},
		{`{"a":1} x`, ``, 0, true},
		{"{\"a\":\"\xff\"}", ``, 0, true},
		// UTF-8 is checked string by string now, not for the whole body first.
		{"{\"\xc3\":1}", ``, 0, true},
		{"{\"a\":[{\"b\":\"\xed\xa0\x80\"}]}", ``, 0, true},
		{"{\"a\":1}\xc3\xa9", ``, 0, true},
		{"{\"a\":\xc3\xa9}", ``, 0, true},
		{"\"\xc0\xaf\"", ``, 0, true},
		{"{\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}", "{\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}", 0, false},
		{`{"a":1 /* c */}`, ``, 0, true},
		{``, ``, 0, true},
	}
	for _, tc := range tests {
		out, removed, err := FilterIncludesJSON([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("%q: want error, got %q", tc.in, out)
				continue
			}
			wantStatus(t, err, 400)
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if string(out) != tc.out || removed != tc.removed {
			t.Errorf("%q: got %q (%d), want %q (%d)", tc.in, out, removed, tc.out, tc.removed)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	deep := func(n int) []byte {
		b := []byte(`{"a":`)
		for i := 1; i < n; i++ {
			b = append(b, '[')
		}
		b = append(b, '1')
		for i := 1; i < n; i++ {
			b = append(b, ']')
		}
		return append(b, '}')
	}
	if _, _, err := FilterIncludesJSON(deep(64)); err != nil {
		t.Fatal(err)
	}
	_, _, err := FilterIncludesJSON(deep(65))
	wantStatus(t, err, 400)
}
