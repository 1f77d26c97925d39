package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Collectors live at package level and are registered into each config's
// registry on Provision, so counts survive `caddy reload` and a second
// registration is not a panic (caddy-modules.md §2.6).
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "requests_total",
		Help: "Credentialed and API requests seen by the gate, by developer key and decision.",
	}, []string{"developer_key", "decision"})

	includesFiltered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "include_params_filtered_total",
		Help: "include/includes values removed from allowed requests, by developer key.",
	}, []string{"developer_key"})

	decisionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "decision_duration_seconds",
		Help:    "Time from the gate receiving a request to its decision, including body inspection and rewriting.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1},
	})

	storeKeys = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "store_developer_keys",
		Help: "Developer keys in the loaded keys file.",
	}, []string{"keys_file"})

	storeTokens = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "store_tokens",
		Help: "Tokens in the loaded keys file.",
	}, []string{"keys_file"})

	reloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "reloads_total",
		Help: "Keys file load attempts by result (success, error).",
	}, []string{"result"})

	lastReloadSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful keys file load.",
	}, []string{"keys_file"})

	collectors = []prometheus.Collector{requestsTotal, includesFiltered, decisionSeconds, storeKeys, storeTokens, reloadsTotal, lastReloadSuccess}
)

// registerMetrics adds the collectors to a config's registry, tolerating the
// registry already holding them.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// Decision labels for requestsTotal.
const (
	decAllowed      = "allowed"
	decInsufficient = "insufficient_scope"
	decInvalid      = "invalid_token"
	decExpired      = "expired"
	decRevoked      = "revoked"
	decNoCredential = "no_credential"
	decBadRequest   = "bad_request"
	decWouldDeny    = "would_deny"
	decPassthrough  = "passthrough"
)

// unknownKeyLabel is the developer_key label for requests without a known key.
const unknownKeyLabel = "unknown"
