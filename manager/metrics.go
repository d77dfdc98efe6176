package manager

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Where staged bytes come from.
const (
	sourcePool       = "pool"       // the co-located Repository's image pool
	sourceRepository = "repository" // an HTTP transfer from the Repository
)

// metrics are the Manager's Prometheus instruments: how fast images reach this host,
// which an administrator compares with the disk and the network.
type metrics struct {
	stagedBytes    *prometheus.CounterVec
	stagedSeconds  *prometheus.CounterVec
	cacheHits      prometheus.Counter
	cacheEvictions prometheus.Counter
	announcements  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stagedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_manager_staged_bytes_total", Help: "Image bytes staged onto this host and checked, by source (pool: the co-located image pool; repository: HTTP).",
		}, []string{"source"}),
		stagedSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_manager_staging_seconds_total", Help: "Time spent staging and checking those bytes, by source; bytes/seconds is the staging throughput.",
		}, []string{"source"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vws_manager_cache_hits_total", Help: "Shared images (base, kernel, initrd, layer) a deploy found in the host cache.",
		}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vws_manager_cache_evictions_total", Help: "Images removed from the host cache to keep it within its budget (vws serve --cache-max).",
		}),
		announcements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_manager_announcements_total", Help: "Announcements of this host to its repositories (for placement), by result: ok or failed.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.stagedBytes, m.stagedSeconds, m.cacheHits, m.cacheEvictions, m.announcements)
	}
	return m
}

// staged counts one image staged from source.
func (m *metrics) staged(source string, bytes int64, since time.Time) {
	m.stagedBytes.WithLabelValues(source).Add(float64(bytes))
	m.stagedSeconds.WithLabelValues(source).Add(time.Since(since).Seconds())
}
