// Command caddy is Caddy with the standard modules and the canvas_scopes
// handler compiled in. It replaces an xcaddy build:
//
//	go build -o caddy ./cmd/caddy
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-canvas-scopes/caddy-canvas-scopes/caddymodule"
)

func main() {
	caddycmd.Main()
}
