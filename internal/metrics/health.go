package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"backupsync/internal/health"
)

// healthCollector reads each connection's health at scrape time, so that
// the lag keeps growing while cycles fail instead of standing at the value
// of the last cycle that ran.
type healthCollector struct {
	read func(now time.Time) []health.Health

	up, state, lag *prometheus.Desc
}

var healthStates = []health.State{health.OK, health.Failing, health.NeverRan, health.Running}

func newHealthCollector(read func(time.Time) []health.Health) *healthCollector {
	return &healthCollector{
		read: read,
		up: prometheus.NewDesc("backupsync_connection_up",
			"1 while the connection's last cycle on this node succeeded (or none ran yet), 0 while it is failing; a running retry stays 0.",
			[]string{"connection"}, nil),
		state: prometheus.NewDesc("backupsync_connection_health",
			"1 for the connection's current health on this node: ok, failing, never ran or running.",
			[]string{"connection", "health"}, nil),
		lag: prometheus.NewDesc("backupsync_replication_lag_seconds",
			"Age of the oldest stable source data not yet verified at the destination, now; it grows while cycles fail (see STATUS).",
			[]string{"connection"}, nil),
	}
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.state
	ch <- c.lag
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.read(time.Now()) {
		up := 1.0
		if h.Failing {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, h.Connection)
		for _, s := range healthStates {
			v := 0.0
			if s == h.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, h.Connection, string(s))
		}
		if h.LagKnown {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, h.LagSeconds, h.Connection)
		}
	}
}

// WatchHealth exports the health that read returns at every scrape:
// backupsync_connection_up, backupsync_connection_health and
// backupsync_replication_lag_seconds. Call it once.
func (m *Metrics) WatchHealth(read func(now time.Time) []health.Health) {
	m.reg.MustRegister(newHealthCollector(read))
}
