// Package metrics exposes what the daemon's cycles do as Prometheus
// metrics: cycles by result, files and bytes copied, deletions, deferrals,
// failures, the last success, replication lag, pending bytes and whether
// each connection's tunnel reached its remote.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"backupsync/internal/sync"
)

// Metrics are one daemon's collectors, in a registry of their own.
type Metrics struct {
	reg *prometheus.Registry

	cycles        *prometheus.CounterVec
	filesCopied   *prometheus.CounterVec
	bytesCopied   *prometheus.CounterVec
	filesDeleted  *prometheus.CounterVec
	filesFailed   *prometheus.CounterVec
	filesDeferred *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	pending       *prometheus.GaugeVec
	tunnelUp      *prometheus.GaugeVec
}

// New registers the collectors (and Go's runtime and process collectors).
func New() *Metrics {
	conn := []string{"connection"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupsync_cycles_total",
			Help: "Sync cycles run, by connection and result (ok: every file done; failed: some files failed; error: the cycle could not run)."}, []string{"connection", "result"}),
		filesCopied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupsync_files_copied_total",
			Help: "Files copied, resumed or replaced at the destination and verified."}, conn),
		bytesCopied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupsync_bytes_copied_total",
			Help: "Bytes transferred to the destination by completed copies."}, conn),
		filesDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupsync_files_deleted_total",
			Help: "Destination files deleted because they expired at the source."}, conn),
		filesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupsync_file_failures_total",
			Help: "Files whose copy or deletion failed."}, conn),
		filesDeferred: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backupsync_files_deferred",
			Help: "Files the last cycle deferred (not yet stable, or waiting for their set)."}, conn),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backupsync_last_success_timestamp_seconds",
			Help: "When the last cycle in which every file succeeded finished (Unix time)."}, conn),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backupsync_pending_bytes",
			Help: "Bytes the destination still lacks after the last cycle, deferred files included."}, conn),
		tunnelUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backupsync_tunnel_up",
			Help: "1 when the last cycle of an SSH = client connection reached its remote through the tunnel, else 0."}, conn),
	}
	m.reg.MustRegister(m.cycles, m.filesCopied, m.bytesCopied, m.filesDeleted, m.filesFailed,
		m.filesDeferred, m.lastSuccess, m.pending, m.tunnelUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Observe records a finished cycle of connection. tunnelled says whether
// the connection goes through SSH; reached, whether the cycle reached the
// remote at all.
func (m *Metrics) Observe(connection string, r sync.Report, tunnelled, reached bool) {
	result := "ok"
	switch {
	case r.Error != "" && !reached:
		result = "error"
	case !r.OK():
		result = "failed"
	}
	m.cycles.WithLabelValues(connection, result).Inc()
	if tunnelled {
		up := 0.0
		if reached {
			up = 1
		}
		m.tunnelUp.WithLabelValues(connection).Set(up)
	}
	if !reached {
		return // the pending bytes of the last complete view stand
	}
	m.filesCopied.WithLabelValues(connection).Add(float64(r.Copied + r.Resumed + r.Replaced))
	m.bytesCopied.WithLabelValues(connection).Add(float64(r.Bytes))
	m.filesDeleted.WithLabelValues(connection).Add(float64(r.Deleted))
	m.filesFailed.WithLabelValues(connection).Add(float64(len(r.Failed)))
	m.filesDeferred.WithLabelValues(connection).Set(float64(r.Deferred))
	m.pending.WithLabelValues(connection).Set(float64(r.PendingBytes))
	if r.OK() {
		m.lastSuccess.WithLabelValues(connection).Set(float64(r.Finished.Unix()))
	}
}
