package imap

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics exposes the folders' counters to Prometheus. Each connector has
// its own collector whose descriptors carry its name as a constant label,
// so several imap connectors register side by side in one registry.
type metrics struct {
	c                                *Connector
	mails, commands, sessions, polls *prometheus.Desc
	up, lastSync, lastUID            *prometheus.Desc
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics(c *Connector) *metrics {
	labels := prometheus.Labels{"connector": c.name}
	desc := func(name, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc("stagegate_imap_"+name, help, append([]string{"account", "folder"}, vars...), labels)
	}
	return &metrics{
		c: c,
		mails: desc("mails_total", "Mails read, by result: event (new event recorded), duplicate (already recorded), "+
			"ignored (no customer recipient), skipped (before the folder's floor or rescan window), "+
			"quarantined (could not be fetched or read), warned (recorded with warnings).", "result"),
		commands: desc("commands_total", "IMAP commands sent (round trips)."),
		sessions: desc("sessions_total", "Sessions by result: connected (logged in) or failed (connect, login, command or store error).", "result"),
		polls:    desc("wait_cycles_total", "Cycles of waiting for mail: poll (one NOOP) or idle_wakeup (IDLE ended by new mail).", "kind"),
		up:       desc("up", "1 when the folder is watched (connected, or held by another gateway), 0 while failing."),
		lastSync: desc("last_sync_timestamp_seconds", "When the folder was last read up to date."),
		lastUID:  desc("cursor_uid", "The last UID whose mail is durable (the folder's cursor)."),
	}
}

// Collector returns the connector's Prometheus collector, for the
// gateway's registry.
func (c *Connector) Collector() prometheus.Collector { return c.metrics }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.mails, m.commands, m.sessions, m.polls, m.up, m.lastSync, m.lastUID} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, f := range m.c.Status() {
		k := f.Counters
		l := []string{f.Account, f.Folder}
		counter := func(d *prometheus.Desc, v int64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l, extra...)...)
		}
		for result, v := range map[string]int64{"event": k.Events, "duplicate": k.Duplicates, "ignored": k.Ignored,
			"skipped": k.Skipped, "quarantined": k.Quarantined, "warned": k.Warned} {
			counter(m.mails, v, result)
		}
		counter(m.commands, k.Commands)
		counter(m.sessions, k.Connects, "connected")
		counter(m.sessions, k.Failures, "failed")
		counter(m.polls, k.Polls, "poll")
		counter(m.polls, k.IdleWakeups, "idle_wakeup")
		up := 0.0
		if f.OK {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, l...)
		if !f.LastSync.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.lastSync, prometheus.GaugeValue, float64(f.LastSync.UnixMilli())/1000, l...)
		}
		ch <- prometheus.MustNewConstMetric(m.lastUID, prometheus.GaugeValue, float64(f.LastUID), l...)
	}
}
