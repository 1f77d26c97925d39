package caddymodule

import (
	"errors"
	"os"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// maxLoggedErrors bounds the errors one failure log line lists; a
// generated file can have one error per token.
const maxLoggedErrors = 1000

// logFailure writes a failed load to Caddy's log with every error as
// file:line: field: message (never a secret: keys-file errors do not quote
// secret values). Every failed load is logged once: a forced one (admin
// API, caddy reload) each time; a polled one once per version of the file,
// as polling compiles a version only once; a keys file that cannot be
// read at all, which polling meets on every tick, once until that error
// changes. Called with ks.mu held.
func (ks *keystore) logFailure(err error, forced bool) {
	ks.failedLoads++
	text := err.Error()
	var unreadable *os.PathError
	if !forced && errors.As(err, &unreadable) && text == ks.failure {
		return
	}
	ks.failure = text
	var lines []string
	var ces policy.ConfigErrors
	var ce policy.ConfigError
	switch {
	case errors.As(err, &ces):
		for _, e := range ces {
			lines = append(lines, e.Error())
		}
	case errors.As(err, &ce):
		lines = []string{ce.Error()}
	default:
		lines = []string{text}
	}
	total := len(lines)
	if total > maxLoggedErrors {
		lines = lines[:maxLoggedErrors]
	}
	trigger := "poll"
	if forced {
		trigger = "forced"
	}
	caddy.Log().Named("canvas_scopes").Error("keys file reload failed; keeping the last good store",
		zap.String("keys_file", ks.path),
		zap.String("trigger", trigger),
		zap.Int("error_count", total),
		zap.Strings("errors", lines),
		zap.Int("errors_not_listed", total-len(lines)))
}

// logRecovered says, once, that a load succeeded after failed ones.
// Called with ks.mu held.
func (ks *keystore) logRecovered() {
	if ks.failure == "" {
		return
	}
	caddy.Log().Named("canvas_scopes").Info("keys file recovered; the new store is in force",
		zap.String("keys_file", ks.path),
		zap.Int("failed_loads", ks.failedLoads))
	ks.failure, ks.failedLoads = "", 0
}
