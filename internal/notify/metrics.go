package notify

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Broker's Prometheus instruments: what reaches consumers and what
// does not, which an administrator watches for consumers that are gone.
type metrics struct {
	delivered prometheus.Counter
	dropped   prometheus.Counter
	ended     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, b *Broker) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vws_notifications_delivered_total", Help: "Notify messages a consumer took (HTTP 2xx).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vws_notifications_dropped_total", Help: "Notify messages given up on after every attempt failed, or pushed out of a full queue.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vws_subscriptions_ended_by_vws_total", Help: "Subscriptions vws ended itself, by reason (producer-ended: their workspace ended; consumer-gone: their consumer took no message several times in a row; rights-withdrawn: their subscriber may no longer read the workspace).",
		}, []string{"reason"}),
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vws_subscriptions", Help: "Live subscriptions to workspaces.",
	}, func() float64 {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return float64(len(b.subs))
	})
	if reg != nil {
		reg.MustRegister(m.delivered, m.dropped, m.ended, live)
	}
	return m
}
