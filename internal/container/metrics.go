package container

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the container's Prometheus instruments. They live in their own registry
// so that several containers (tests, several roles) never collide.
type Metrics struct {
	requests *prometheus.CounterVec
	faults   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the container's instruments in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_soap_requests_total", Help: "SOAP requests by service, operation and dialect.",
		}, []string{"service", "operation", "dialect"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_soap_faults_total", Help: "SOAP faults by service, operation and fault type.",
		}, []string{"service", "operation", "fault"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vws_soap_request_duration_seconds",
			Help:    "Time from reading a SOAP request to writing its response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "operation"}),
	}
	reg.MustRegister(m.requests, m.faults, m.latency)
	return m
}

func (m *Metrics) observe(service, op, dialect, fault string, d time.Duration) {
	m.requests.WithLabelValues(service, op, dialect).Inc()
	if fault != "" {
		m.faults.WithLabelValues(service, op, fault).Inc()
	}
	m.latency.WithLabelValues(service, op).Observe(d.Seconds())
}
