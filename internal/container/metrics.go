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
	// The parse budget (admission): how long requests waited for it, how many were
	// refused as busy, and how many body bytes hold it now.
	admissionWait prometheus.Histogram
	busy          prometheus.Counter
	admitted      prometheus.Gauge
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
		admissionWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vws_soap_admission_wait_seconds",
			Help:    "Time SOAP requests, their body read, waited for room in the parse budget.",
			Buckets: []float64{.0001, .001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vws_soap_busy_total", Help: "SOAP requests answered HTTP 503 because the parse budget stayed full.",
		}),
		admitted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vws_soap_admitted_body_bytes", Help: "Body bytes of the SOAP requests holding the parse budget now.",
		}),
	}
	reg.MustRegister(m.requests, m.faults, m.latency, m.admissionWait, m.busy, m.admitted)
	return m
}

func (m *Metrics) observe(service, op, dialect, fault string, d time.Duration) {
	m.requests.WithLabelValues(service, op, dialect).Inc()
	if fault != "" {
		m.faults.WithLabelValues(service, op, fault).Inc()
	}
	m.latency.WithLabelValues(service, op).Observe(d.Seconds())
}
