package test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/harness"
	"github.com/vws-grid/vws/test/loadgen"
)

// BenchmarkGetResourcePropertyHTTP measures GetResourceProperty over loopback HTTP with
// keep-alive against a real server, reporting req/s, p50 and p99 beside ns/op.
func BenchmarkGetResourcePropertyHTTP(b *testing.B) {
	for _, d := range dialect.Dialects {
		b.Run(d.Name, func(b *testing.B) {
			s := harness.Start(b)
			s.SeedWorkspace(b, "bench", "bench", nil)
			url := s.ServiceURL(vwsns.WorkspaceService)
			body := request(d, url, getRPAction(d), "bench", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`)
			client := &http.Client{Transport: loadgen.Transport(8)}
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(2) // 2×GOMAXPROCS client goroutines
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 1024)
				for pb.Next() {
					t0 := time.Now()
					resp, err := client.Post(url, "text/xml; charset=utf-8", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("HTTP %d", resp.StatusCode)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
