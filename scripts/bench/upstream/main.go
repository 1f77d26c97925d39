// Command upstream is the load benchmark's Canvas stand-in: every request
// gets a ~2 KB Canvas-like JSON page (a list of assignments). It reads and
// discards request bodies. For the script's correctness checks it reports,
// in response headers, whether the Authorization it received was the
// substituted upstream token (X-Bench-Substituted: yes|no, never the token)
// and, for requests marked X-Bench-Check, how many include/includes values
// the JSON body still carried (X-Bench-Body-Includes).
//
//	upstream -listen 127.0.0.1:9000
//
// BENCH_CANVAS_TOKEN is the token credential substitution should inject.
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
)

func page() []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := range 5 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Lab report %d","description":"<p>Write up the experiment and upload a PDF.</p>",`+
			`"created_at":"2026-09-01T08:00:00Z","updated_at":"2026-09-02T09:30:00Z","due_at":"2026-10-01T21:59:59Z",`+
			`"points_possible":10.0,"grading_type":"points","assignment_group_id":%d,"course_id":12345,`+
			`"submission_types":["online_upload"],"has_submitted_submissions":true,"published":true,`+
			`"html_url":"https://canvas.example.edu/courses/12345/assignments/%d"}`, 1000+i, i+1, 77, 1000+i)
	}
	b.WriteString("]")
	return b.Bytes()
}

// includeValues counts the values of the body's top-level include and
// includes members (only for the script's check requests).
func includeValues(body []byte) int {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return -1
	}
	n := 0
	for _, k := range []string{"include", "includes"} {
		switch v := m[k].(type) {
		case []any:
			n += len(v)
		case nil:
		default:
			n++
		}
	}
	return n
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address")
	flag.Parse()
	body := page()
	want := []byte("Bearer " + os.Getenv("BENCH_CANVAS_TOKEN"))
	substituted := func(r *http.Request) string {
		if len(want) > len("Bearer ") && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1 {
			return "yes"
		}
		return "no"
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		if r.Body != nil && r.ContentLength != 0 {
			in, _ := io.ReadAll(r.Body)
			if r.Header.Get("X-Bench-Check") != "" {
				hdr.Set("X-Bench-Body-Includes", strconv.Itoa(includeValues(in)))
			}
		}
		hdr.Set("X-Bench-Substituted", substituted(r))
		hdr.Set("Content-Type", "application/json; charset=utf-8")
		hdr.Set("Link", `<https://canvas.example.edu/api/v1/courses/12345/assignments?page=2&per_page=5>; rel="next"`)
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	log.Printf("upstream: %d-byte page on %s", len(body), *listen)
	log.Fatal(http.ListenAndServe(*listen, h))
}
