package params

import (
	"bytes"
	"encoding/json"
	"strings"
)

// EachParam calls yield with every query and body parameter as Rails reads
// it: the key in Rack's bracket form and the value, both decoded. JSON
// bodies are flattened into the same form (an object member "b" of "a" is
// "a[b]", an array element of "a" is "a[]"; null is skipped), multipart
// file parts are skipped. It serves checks that must see parameters this
// package does not classify itself (the account confinement's move
// parameters); it allocates only for keys or values that need decoding.
func (in *Inspection) EachParam(yield func(key, value string) bool) {
	if !eachPair(in.rawQuery, yield) {
		return
	}
	switch in.kind {
	case BodyForm:
		eachPair(string(in.body), yield)
	case BodyMultipart:
		for _, p := range in.mpParts {
			if p.hasFile {
				continue
			}
			if !yield(p.name, string(p.content)) {
				return
			}
		}
	case BodyJSON:
		dec := json.NewDecoder(bytes.NewReader(in.body))
		dec.UseNumber()
		if tok, err := dec.Token(); err == nil {
			if d, ok := tok.(json.Delim); ok && d == '{' {
				eachJSONObject(dec, "", yield)
			} else {
				eachJSONValue(dec, tok, "_json", yield)
			}
		}
	}
}

func eachPair(raw string, yield func(key, value string) bool) bool {
	for raw != "" {
		seg := raw
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			seg, raw = raw[:i], raw[i+1:]
		} else {
			raw = ""
		}
		if seg == "" {
			continue
		}
		key, val, _ := strings.Cut(seg, "=")
		if !yield(formDecode(key), formDecode(val)) {
			return false
		}
	}
	return true
}

func formDecode(s string) string {
	if !needsDecode(s) {
		return s
	}
	return string(decodeAppend(make([]byte, 0, len(s)), s))
}

// eachJSONObject reads the members of an object whose "{" was consumed.
func eachJSONObject(dec *json.Decoder, prefix string, yield func(key, value string) bool) bool {
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := t.(string)
		key := name
		if prefix != "" {
			key = prefix + "[" + name + "]"
		}
		v, err := dec.Token()
		if err != nil || !eachJSONValue(dec, v, key, yield) {
			return false
		}
	}
	_, err := dec.Token() // "}"
	return err == nil
}

func eachJSONValue(dec *json.Decoder, tok json.Token, key string, yield func(key, value string) bool) bool {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return eachJSONObject(dec, key, yield)
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil || !eachJSONValue(dec, t, key+"[]", yield) {
				return false
			}
		}
		_, err := dec.Token() // "]"
		return err == nil
	case string:
		return yield(key, v)
	case json.Number:
		return yield(key, v.String())
	case bool:
		if v {
			return yield(key, "true")
		}
		return yield(key, "false")
	}
	return true // null
}

// MayContain reports whether some parameter key or value could contain
// one of words. It is false only when neither the raw query nor the raw
// body contains any of them and no escape ("%", or "\" in JSON) could hide
// one: a cheap test before EachParam, which allocates.
func (in *Inspection) MayContain(words ...string) bool {
	if mayContain(in.rawQuery, words) {
		return true
	}
	switch in.kind {
	case BodyForm, BodyMultipart, BodyJSON:
		b := in.body
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				return true
			}
		}
		return bytes.IndexByte(b, '%') >= 0 || (in.kind == BodyJSON && bytes.IndexByte(b, '\\') >= 0)
	}
	return false
}

func mayContain(raw string, words []string) bool {
	if strings.IndexByte(raw, '%') >= 0 {
		return true
	}
	for _, w := range words {
		if strings.Contains(raw, w) {
			return true
		}
	}
	return false
}
