package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// Request bodies: buffering the ones Rails parses for params, putting them
// back, and peeking at the small ones the gate's own endpoints answer.

// readInspectableBody buffers bodies Rails would parse for params (form,
// multipart, JSON) up to max; others stream untouched. A body over max is
// reported with 413 and left readable from its start, so the caller may
// still stream it on.
func readInspectableBody(r *http.Request, ct string, max int64) ([]byte, params.BodyKind, int, error) {
	kind, _ := params.BodyKindOf(r.Method, ct, hasBody(r))
	if kind != params.BodyForm && kind != params.BodyMultipart && kind != params.BodyJSON {
		return nil, kind, 0, nil
	}
	tooLarge := func() error { return fmt.Errorf("request body is larger than the %d bytes the gate inspects", max) }
	if r.ContentLength > max {
		return nil, kind, http.StatusRequestEntityTooLarge, tooLarge()
	}
	var data []byte
	var err error
	if r.ContentLength > 0 {
		// Framed by Content-Length (≤ max, checked above): Go's server
		// ends the body there, so one exact read is the whole body.
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, max+1))
	}
	if err != nil {
		_ = r.Body.Close()
		return nil, kind, http.StatusBadRequest, errors.New("could not read the request body")
	}
	if int64(len(data)) > max {
		r.Body = &rewoundBody{Reader: io.MultiReader(bytes.NewReader(data), r.Body), Closer: r.Body}
		return nil, kind, http.StatusRequestEntityTooLarge, tooLarge()
	}
	_ = r.Body.Close()
	return data, kind, 0, nil
}

// restoreBody puts an unchanged buffered body back on the request.
func restoreBody(r *http.Request, body []byte, kind params.BodyKind) {
	if body == nil && kind != params.BodyForm && kind != params.BodyMultipart && kind != params.BodyJSON {
		return
	}
	setBody(r, body)
}

// setBody replaces the request body and fixes its framing: a rewritten body
// goes upstream with an exact Content-Length and no chunking.
func setBody(r *http.Request, body []byte) {
	r.Body = newBufferedBody(body)
	r.GetBody = func() (io.ReadCloser, error) { return newBufferedBody(body), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	delete(r.Header, "Transfer-Encoding")
	// Most bodies go on as the client framed them: keep its header.
	if cl := r.Header["Content-Length"]; len(cl) != 1 || cl[0] != strconv.Itoa(len(body)) {
		r.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
}

// bufferedBody is io.NopCloser(bytes.NewReader(b)) in one allocation.
type bufferedBody struct{ bytes.Reader }

func newBufferedBody(b []byte) *bufferedBody {
	bb := &bufferedBody{}
	bb.Reset(b)
	return bb
}

func (*bufferedBody) Close() error { return nil }

// errPathEscapes is setCanonicalPath's refusal; it carries no path bytes.
var errPathEscapes = errors.New("the canonical path is not what Go would forward")

// peekBody reads up to max bytes of the body and puts everything back, so
// a request the gate does not answer goes on unchanged. ok is false when
// the body is larger than max or unreadable.
func peekBody(r *http.Request, max int64) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body = &rewoundBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	if err != nil || int64(len(buf)) > max {
		return nil, false
	}
	return buf, true
}

type rewoundBody struct {
	io.Reader
	io.Closer
}

func readAllLimited(r *http.Request, max int64) ([]byte, bool) {
	if r.Body == nil {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	return buf, err == nil && int64(len(buf)) <= max
}
