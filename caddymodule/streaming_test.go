package caddymodule

import "testing"

// Where Canvas may read an access token from the body, an over-large body
// is refused rather than streamed unread.
func TestStreamingExceptionPaths(t *testing.T) {
	for path, files := range map[string]bool{
		"/files/2": true, "/files/2/download": true, "/courses/1/files/2": true,
		"/courses/1/files/2/preview": true, "/users/1/files/2/download.json": true,
		"/groups/1/FILES/2": true, "/accounts/1/%66iles/2": true, "/files.json/2": true,
		"/assessment_questions/1/files/2": true, "/x/%zz/2": true, // undecodable: in doubt
		"/courses/1/files": false, "/files_api": false, "/files": false, "/courses/1/filesx/2": false,
		"/courses/1": false,
	} {
		if got := hasFilesSegment(path); got != files {
			t.Errorf("hasFilesSegment(%q) = %v, want %v", path, got, files)
		}
	}
	for path, login := range map[string]bool{
		"/login/session_token": true, "/login/session_token.json": true, "/login/oauth2/token.json": true,
		"/LOGIN/oauth2/token": true, "/%6cogin/x": true, "/login": true, "/logins/x": false, "/x/login": false,
	} {
		if got := isLoginPath(path); got != login {
			t.Errorf("isLoginPath(%q) = %v, want %v", path, got, login)
		}
	}
}
