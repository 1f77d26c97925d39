package e2e

import (
	"strings"
	"testing"
)

// Over-large bodies are not streamed unread where Canvas may read an access
// token from the body (issue 12, item 6): FilesController#show, reached
// from /files/:id and /:context/:id/files/:id with /download, /preview and
// format variants, authenticates API tokens in recent Canvas versions, and
// so do the two login endpoints under any format suffix. Where the gate
// cannot read the body it answers 413. Upload targets that Canvas never
// authenticates by token still stream.
func TestOversizedBodyOnTokenAuthenticatedFilePaths(t *testing.T) {
	in, up := startLimitsGate(t)
	body := "access_token=" + tokNarrow + "&pad=" + strings.Repeat("p", 6000)
	for _, c := range []advCase{
		{name: "POST course file", method: "POST", target: "/courses/1/files/2"},
		{name: "GET course file", method: "GET", target: "/courses/1/files/2"},
		{name: "file", method: "POST", target: "/files/2"},
		{name: "user file preview", method: "GET", target: "/users/1/files/2/preview"},
		{name: "group file download with a format", method: "GET", target: "/groups/1/files/2/download.json"},
		{name: "account file, encoded segment", method: "GET", target: "/accounts/1/%66iles/2"},
		{name: "session_token with a format", method: "GET", target: "/login/session_token.json"},
		{name: "token deletion with a format", method: "DELETE", target: "/login/oauth2/token.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.hdr, c.body = []string{ctForm}, body
			status, _ := in.send1(t, c.raw1(), c.method)
			if status != 413 {
				t.Errorf("status %d, want 413", status)
			}
			checkUpstream(t, up, nil)
		})
	}
	for _, target := range []string{"/courses/1/files", "/files_api"} {
		t.Run("streams "+target, func(t *testing.T) {
			big := "a=" + strings.Repeat("x", 6000)
			c := advCase{method: "POST", target: target, hdr: []string{ctForm}, body: big}
			if status, _ := in.send1(t, c.raw1(), c.method); status != 200 {
				t.Errorf("status %d, want 200 (streamed)", status)
			}
			if got := up.one(t); string(got.Body) != big {
				t.Errorf("upstream got %d body bytes, want %d", len(got.Body), len(big))
			}
		})
	}
}
