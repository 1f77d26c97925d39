package params

import (
	"net/http"
	"net/textproto"
)

// A speed trick, kept because a benchmark shows it pays: when the caller
// promises canonical header names (Request.CanonicalNames), the override
// headers are three map look-ups instead of a pass over every header name
// comparing each with three spellings. BenchmarkServeHTTPAllowedGET,
// interleaved, medians of 7 runs: see the commit that added this file.

// overrideKeys are overrideHeaders in Go's canonical form, in their order.
var overrideKeys = func() (keys [len(overrideHeaders)]string) {
	for i, h := range overrideHeaders {
		keys[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	return keys
}()

// overrideHeaderByKey is overrideHeader for canonical names.
func overrideHeaderByKey(h http.Header) string {
	for i, k := range overrideKeys {
		if _, ok := h[k]; ok {
			return overrideHeaders[i]
		}
	}
	return ""
}
