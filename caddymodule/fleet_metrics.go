package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fleetCollector reports every live database source at scrape time. The
// database label is the first 8 hex digits of the DSN's SHA-256: it tells
// sources apart without showing the DSN.
type fleetCollector struct{}

var (
	fleetRevisionDesc = prometheus.NewDesc("caddy_canvas_scopes_db_revision",
		"Revision of the shared database this instance has applied.", []string{"database"}, nil)
	fleetSyncAgeDesc = prometheus.NewDesc("caddy_canvas_scopes_db_sync_age_seconds",
		"Seconds since the last successful read of the shared database (or since the snapshot file was written).", []string{"database"}, nil)
	fleetSyncErrorsDesc = prometheus.NewDesc("caddy_canvas_scopes_db_sync_errors_total",
		"Failed syncs with the shared database (connection, query or content errors).", []string{"database"}, nil)
	fleetReconnectsDesc = prometheus.NewDesc("caddy_canvas_scopes_db_reconnects_total",
		"Times the listener connection to the shared database was lost and reopened.", []string{"database"}, nil)
	fleetQueriesDesc = prometheus.NewDesc("caddy_canvas_scopes_db_sync_queries_total",
		"Statements the sync connection sent: polls and change reads, never one per request.", []string{"database"}, nil)
	fleetUsageErrorsDesc = prometheus.NewDesc("caddy_canvas_scopes_db_usage_write_errors_total",
		"Failed writes of scope usage counts to the shared database (the counts are kept for the next write).", nil, nil)
)

func (fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fleetRevisionDesc, fleetSyncAgeDesc, fleetSyncErrorsDesc, fleetReconnectsDesc, fleetQueriesDesc, fleetUsageErrorsDesc} {
		ch <- d
	}
}

func (fleetCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	seen := map[string]bool{}
	fleetSources.Range(func(_, v any) bool {
		src := v.(*fleetSource)
		if seen[src.label] {
			return true
		}
		seen[src.label] = true
		st := src.syncer.Stats()
		ch <- prometheus.MustNewConstMetric(fleetRevisionDesc, prometheus.GaugeValue, float64(st.Revision), src.label)
		ch <- prometheus.MustNewConstMetric(fleetSyncAgeDesc, prometheus.GaugeValue, now.Sub(st.LastSync).Seconds(), src.label)
		ch <- prometheus.MustNewConstMetric(fleetSyncErrorsDesc, prometheus.CounterValue, float64(st.SyncErrors), src.label)
		ch <- prometheus.MustNewConstMetric(fleetReconnectsDesc, prometheus.CounterValue, float64(st.Reconnects), src.label)
		ch <- prometheus.MustNewConstMetric(fleetQueriesDesc, prometheus.CounterValue, float64(st.Queries), src.label)
		return true
	})
	if len(seen) > 0 {
		ch <- prometheus.MustNewConstMetric(fleetUsageErrorsDesc, prometheus.CounterValue, float64(usageWriteErrors.Load()))
	}
}

func registerFleetMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(fleetCollector{}); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}
