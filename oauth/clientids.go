package oauth

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// maxClientIDValue bounds one client id value read from a multipart part.
const maxClientIDValue = 1 << 10

// ClientIDsIn returns every value Canvas could take as a token request's
// client id: the HTTP Basic user name, and every value of a parameter that
// Rack would file under "client_id" in the query and in a form, JSON or
// multipart body (kind as params.BodyKindOf reports it).
//
// It reads leniently, a superset of Rack: query and form pairs split on "&"
// and ";", names decoded and reduced as Rack's normalize_params does
// (leading "[" and "]" dropped, the name ends at the next bracket), every
// string inside a JSON client_id member (repeated members included), and
// multipart parts by their name or file name. It is used only to decide
// that a request names a registered client, so that the gate answers it
// and never passes the client's secret on; reading too much costs a
// refusal of a request that names a registered id in an odd place, reading
// too little would leak a secret.
func ClientIDsIn(header http.Header, rawQuery string, kind params.BodyKind, boundary string, body []byte) []string {
	var ids []string
	if c, ok, err := ParseBasic(header["Authorization"]); ok && err == nil {
		ids = append(ids, c.ClientID)
	}
	ids = appendPairIDs(ids, rawQuery)
	switch kind {
	case params.BodyForm:
		ids = appendPairIDs(ids, string(body))
	case params.BodyJSON:
		ids = appendJSONIDs(ids, body)
	case params.BodyMultipart:
		ids = appendMultipartIDs(ids, body, boundary)
	}
	return ids
}

// isClientIDName reports whether Rack would file a parameter name under
// "client_id".
func isClientIDName(name string) bool {
	name = strings.TrimLeft(name, "[]")
	if i := strings.IndexAny(name, "[]"); i >= 0 {
		name = name[:i]
	}
	return name == "client_id"
}

func lenientUnescape(s string) string {
	if v, err := url.QueryUnescape(s); err == nil {
		return v
	}
	return strings.ReplaceAll(s, "+", " ")
}

func appendPairIDs(ids []string, raw string) []string {
	for _, pair := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		if isClientIDName(lenientUnescape(k)) {
			ids = append(ids, lenientUnescape(v))
		}
	}
	return ids
}

// appendJSONIDs collects the strings in every top-level "client_id" member
// (Rails takes a JSON object's members as parameters as they are).
func appendJSONIDs(ids []string, body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ids
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ids
		}
		name, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return ids
		}
		if name == "client_id" {
			ids = appendStrings(ids, v)
		}
	}
	return ids
}

func appendStrings(ids []string, v any) []string {
	switch x := v.(type) {
	case string:
		ids = append(ids, x)
	case []any:
		for _, e := range x {
			ids = appendStrings(ids, e)
		}
	case map[string]any:
		for _, e := range x {
			ids = appendStrings(ids, e)
		}
	}
	return ids
}

func appendMultipartIDs(ids []string, body []byte, boundary string) []string {
	if boundary == "" {
		return ids
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextRawPart()
		if err != nil {
			return ids
		}
		// Rack names a part without a name by its file name or, failing
		// that, its content type.
		if isClientIDName(part.FormName()) || isClientIDName(part.FileName()) || isClientIDName(part.Header.Get("Content-Type")) {
			v, _ := io.ReadAll(io.LimitReader(part, maxClientIDValue))
			ids = append(ids, string(v))
		}
	}
}
