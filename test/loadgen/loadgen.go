// Package loadgen drives a fixed request at an HTTP endpoint from several keep-alive
// connections for a while and reports throughput and latency percentiles.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Result summarises one run.
type Result struct {
	Requests  int
	Errors    int
	Elapsed   time.Duration
	P50, P99  time.Duration
	PerSecond float64
}

func (r Result) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (%d requests, %d errors)",
		r.PerSecond, ms(r.P50), ms(r.P99), r.Requests, r.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Transport returns a keep-alive transport sized for conns connections.
func Transport(conns int) *http.Transport {
	return &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
	}
}

// Run posts body to url from conns goroutines for d (or until maxRequests, if > 0)
// and checks every answer has status want.
func Run(ctx context.Context, client *http.Client, url string, body []byte, conns int, d time.Duration, want int) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			bad := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "text/xml; charset=utf-8")
				resp, err := client.Do(req)
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					bad++
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := Result{Requests: len(lat), Errors: errs, Elapsed: elapsed}
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[len(lat)*99/100]
		r.PerSecond = float64(len(lat)) / elapsed.Seconds()
	}
	return r
}
