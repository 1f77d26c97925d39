package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Collectors live at package level and are registered into each config's
// registry on Provision, so counts survive `caddy reload` and a second
// registration is not a panic (registerMetrics tolerates AlreadyRegisteredError).
//
// Label values are bounded: developer_key is a key id from a keys file or
// "unknown", decision is a gate.Label, result is success or
// error, keys_file is a configured file. No label ever holds a request
// path, a token or a token id.
var (
	requestsTotal = newKeyedCounter(
		"requests_total",
		"Credentialed and API requests seen by the gate, by developer key and decision.",
		"decision")

	includesFiltered = newKeyedCounter(
		"include_params_filtered_total",
		"include/includes values removed from allowed requests, by developer key.")

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

	storeClients = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "store_clients",
		Help: "OAuth2 client_credentials clients in the loaded keys file.",
	}, []string{"keys_file"})

	reloadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "reloads_total",
		Help: "Keys file load attempts by result (success, error).",
	}, []string{"result"})

	lastReloadSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful keys file load.",
	}, []string{"keys_file"})

	// checkedCollectors describe themselves; decisionSeconds comes first
	// and doubles as the marker that a registry already holds all of ours.
	checkedCollectors = []prometheus.Collector{decisionSeconds, storeKeys, storeTokens, storeClients, reloadsTotal, lastReloadSuccess}
	// keyedCollectors are unchecked (see keyedCounter); a registry does
	// not detect their second registration, so they are added only
	// together with the marker.
	keyedCollectors = []prometheus.Collector{requestsTotal, includesFiltered}
)

func init() {
	// Start the reload series at 0 so rate() and increase() work from the
	// first scrape, before any error has happened.
	reloadsTotal.WithLabelValues("success")
	reloadsTotal.WithLabelValues("error")
}

// registerMetrics adds the collectors to a config's registry, tolerating the
// registry already holding them (several handlers in one config).
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(checkedCollectors[0]); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil // another handler of this config registered everything
		}
		return err
	}
	for _, c := range checkedCollectors[1:] {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	for _, c := range keyedCollectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// keyedCounter is a counter family whose first label is developer_key. With
// `metrics { per_key off }` the handler passes an empty key label, and the
// series is kept in a second vector that has no developer_key label at all:
// the exposition then really omits the label instead of writing
// developer_key="" (which Prometheus would treat as absent anyway, but
// promtool, other scrapers and people reading /metrics would not).
//
// Both vectors share one metric family, so it is an unchecked collector (it
// describes nothing): a registry's consistency check would otherwise reject
// two descriptors of one name with different label names.
type keyedCounter struct {
	byKey *prometheus.CounterVec // developer_key, rest...
	noKey *prometheus.CounterVec // rest...
}

func newKeyedCounter(name, help string, rest ...string) *keyedCounter {
	opts := prometheus.CounterOpts{Namespace: "caddy", Subsystem: "canvas_scopes", Name: name, Help: help}
	return &keyedCounter{
		byKey: prometheus.NewCounterVec(opts, append([]string{"developer_key"}, rest...)),
		noKey: prometheus.NewCounterVec(opts, rest),
	}
}

// WithLabelValues returns the counter for (developer_key, rest...); an
// empty developer_key selects the series without that label.
func (c *keyedCounter) WithLabelValues(lvs ...string) prometheus.Counter {
	if lvs[0] == "" {
		return c.noKey.WithLabelValues(lvs[1:]...)
	}
	return c.byKey.WithLabelValues(lvs...)
}

// Describe sends nothing: keyedCounter is an unchecked collector.
func (c *keyedCounter) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *keyedCounter) Collect(ch chan<- prometheus.Metric) {
	c.byKey.Collect(ch)
	c.noKey.Collect(ch)
}

// unknownKeyLabel is the developer_key label for requests without a known key.
const unknownKeyLabel = "unknown"

func (h *Handler) keyLabel(k *policy.Key) string {
	if !h.perKey {
		return ""
	}
	if k == nil {
		return unknownKeyLabel
	}
	return k.ID
}

func (h *Handler) count(k *policy.Key, decision gate.Label, start time.Time) {
	h.requestCounter(k, decision).Inc()
	if !start.IsZero() {
		decisionSeconds.Observe(time.Since(start).Seconds())
	}
}
