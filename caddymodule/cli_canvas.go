package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// canvasTokenEnv names the environment variable the commands that talk to
// a live Canvas read the admin token from. It is never a flag: flags end
// up in shell history and process listings.
const canvasTokenEnv = "CANVAS_TOKEN"

// maxCanvasPages bounds a paginated listing (100 items a page).
const maxCanvasPages = 1000

// maxCanvasBody bounds one page of a Canvas answer.
const maxCanvasBody = 32 << 20

// canvasClient lists Canvas API collections with an admin token.
type canvasClient struct {
	base   *url.URL // scheme and host of the Canvas
	token  string
	client *http.Client
}

func newCanvasClient(canvas string) (*canvasClient, error) {
	token := os.Getenv(canvasTokenEnv)
	if token == "" {
		return nil, fmt.Errorf("set %s to a Canvas admin token (it is read from the environment only)", canvasTokenEnv)
	}
	u, err := url.Parse(canvas)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("--canvas must be the Canvas base URL, such as https://canvas.example.edu")
	}
	return &canvasClient{base: &url.URL{Scheme: u.Scheme, Host: u.Host}, token: token,
		client: &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // never carry the token to wherever a redirect points
		}}}, nil
}

// list GETs path and every following page (Link rel="next"), calling
// page with each page's body. The next link must stay on the same Canvas:
// the token is never sent anywhere else.
func (c *canvasClient) list(ctx context.Context, path string, query url.Values, page func([]byte) error) error {
	next := c.base.ResolveReference(&url.URL{Path: path, RawQuery: query.Encode()})
	for n := 0; next != nil; n++ {
		if n >= maxCanvasPages {
			return fmt.Errorf("more than %d pages; stopped", maxCanvasPages)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		resp, err := c.client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", next.Path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxCanvasBody+1))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: %w", next.Path, err)
		}
		if resp.StatusCode != http.StatusOK {
			// The body is not shown: it is Canvas's, and may be long.
			return fmt.Errorf("GET %s: Canvas answered %s", next.Path, resp.Status)
		}
		if len(body) > maxCanvasBody {
			return fmt.Errorf("GET %s: answer larger than %d bytes", next.Path, maxCanvasBody)
		}
		if err := page(body); err != nil {
			return fmt.Errorf("GET %s: %w", next.Path, err)
		}
		cur := next
		next = nil
		if link := nextLink(resp.Header.Values("Link")); link != "" {
			u, err := cur.Parse(link)
			if err != nil {
				return fmt.Errorf("unreadable Link header")
			}
			if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
				return fmt.Errorf("the next page is on another host (%s); not following it with the token", u.Host)
			}
			next = u
		}
	}
	return nil
}

// nextLink finds rel="next" in Link headers (RFC 8288, as Canvas writes
// them: <url>; rel="next", <url>; rel="last").
func nextLink(headers []string) string {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, p := range strings.Split(params, ";") {
				name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(name, "rel") && strings.Contains(" "+strings.Trim(value, `"`)+" ", " next ") {
					return target[1 : len(target)-1]
				}
			}
		}
	}
	return ""
}

// accountPath is /api/v1/accounts/<account>/<rest>, the account escaped.
func accountPath(account, rest string) string {
	return "/api/v1/accounts/" + url.PathEscape(account) + "/" + rest
}

// decodeList reads a JSON array page into out (appending).
func decodeList[T any](body []byte, out *[]T) error {
	var page []T
	if err := json.Unmarshal(body, &page); err != nil {
		return errors.New("the answer is not a JSON list")
	}
	*out = append(*out, page...)
	return nil
}
