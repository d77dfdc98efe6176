// Command imagebench measures image import throughput next to sha256sum and cp of the
// same file, in the same run: the target is an import at least 0.8× as fast as
// sha256sum (which only reads and hashes; an import also writes, fsyncs and records).
//
//	go run ./test/imagebench -size 512MiB [-rounds 3] [-dir /var/tmp]
//
// The file is read once before any timing, so every run sees it in the page cache.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/repository/imagepool"
	"github.com/vws-grid/vws/test/benchutil"
)

func main() {
	sizeFlag := flag.String("size", "512MiB", "image size (B, KiB, MiB, GiB, or KB, MB, GB)")
	rounds := flag.Int("rounds", 3, "runs of each measurement")
	parent := flag.String("dir", "", "where to create the temporary directory (default $TMPDIR or /tmp)")
	check := flag.Bool("check", true, "exit 1 when an import is slower than 0.8× sha256sum")
	flag.Parse()
	size, err := benchutil.ParseSize(*sizeFlag)
	if err != nil {
		log.Fatal(err)
	}
	ok, err := run(size, *rounds, *parent)
	if err != nil {
		log.Fatal(err)
	}
	if *check && !ok {
		os.Exit(1)
	}
}

func run(size int64, rounds int, parent string) (bool, error) {
	ctx := context.Background()
	for _, tool := range []string{"sha256sum", "cp", "sync"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, fmt.Errorf("%s is needed (Debian coreutils): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp(parent, "vws-imagebench-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "image.raw")
	if err := benchutil.WriteRandom(file, size); err != nil {
		return false, err
	}
	if err := benchutil.Warm(file); err != nil {
		return false, err
	}

	db, err := store.Open(ctx, filepath.Join(dir, "data"))
	if err != nil {
		return false, err
	}
	defer db.Close()
	pool, err := imagepool.Open(ctx, filepath.Join(dir, "data", "images"), db.SQL(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return false, err
	}
	mux := http.NewServeMux()
	mux.Handle("/images", pool)
	mux.Handle("/images/", pool)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	copyFile := filepath.Join(dir, "copy.raw")
	var want string // sha256sum's digest, to check the imports against
	measures := []struct {
		name string
		note string
		fn   func(round int) error
	}{
		{"sha256sum FILE", "read + hash (coreutils)", func(int) error {
			out, err := exec.Command("sha256sum", file).Output()
			if err != nil {
				return fmt.Errorf("sha256sum: %w", err)
			}
			want = "sha256:" + strings.Fields(string(out))[0]
			return nil
		}},
		{"cp FILE copy", "read + write to page cache, no fsync", func(int) error {
			defer os.Remove(copyFile)
			return exec.Command("cp", file, copyFile).Run()
		}},
		{"cp FILE copy && sync copy", "read + write + fsync", func(int) error {
			defer os.Remove(copyFile)
			if err := exec.Command("cp", file, copyFile).Run(); err != nil {
				return err
			}
			return exec.Command("sync", copyFile).Run()
		}},
		{"Pool.Import (Go call)", "read + hash + write + fsync + rename + commit", func(round int) error {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			name := fmt.Sprintf("direct-%d", round)
			img, stored, err := pool.Import(ctx, f, imagepool.Meta{Name: name})
			if err != nil {
				return err
			}
			if img.Digest != want || !stored {
				return fmt.Errorf("import gave %s (stored=%v), sha256sum %s", img.Digest, stored, want)
			}
			return nil
		}},
		{"PUT /images (loopback HTTP)", "the same, streamed through net/http", func(round int) error {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/images?name=http-%d", hs.URL, round), f)
			if err != nil {
				return err
			}
			req.ContentLength = size
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || !bytes.Contains(body, []byte(want)) {
				return fmt.Errorf("PUT: %s %s", resp.Status, body)
			}
			return nil
		}},
	}
	fmt.Printf("imagebench: %s of random data in %s; %d rounds each; %d CPUs, %s\n",
		benchutil.FormatSize(size), dir, rounds, runtime.NumCPU(), runtime.Version())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tmedian MB/s\tbest MB/s\truns (MB/s)\twhat it does")
	// Rounds interleave the measurements (sha256sum, cp, …, sha256sum, cp, …) so that
	// a change in machine load hits them all alike.
	rates := make([][]float64, len(measures))
	for round := range rounds {
		for i, m := range measures {
			start := time.Now()
			if err := m.fn(round); err != nil {
				return false, fmt.Errorf("%s: %w", m.name, err)
			}
			rates[i] = append(rates[i], float64(size)/1e6/time.Since(start).Seconds())
		}
		// Remove the imported images (untimed), so every round stores new content
		// rather than taking the dedupe path.
		for _, name := range []string{"direct-", "http-"} {
			if err := pool.Remove(ctx, name+strconv.Itoa(round), nil); err != nil {
				return false, err
			}
		}
	}
	medians := map[string]float64{}
	for i, m := range measures {
		med, best := stats(rates[i])
		medians[m.name] = med
		var runs []string
		for _, r := range rates[i] {
			runs = append(runs, fmt.Sprintf("%.0f", r))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\n", m.name, med, best, strings.Join(runs, " "), m.note)
	}
	tw.Flush()
	base := medians["sha256sum FILE"]
	direct := medians["Pool.Import (Go call)"] / base
	viaHTTP := medians["PUT /images (loopback HTTP)"] / base
	ok := direct >= 0.8 && viaHTTP >= 0.8
	verdict := "meets"
	if !ok {
		verdict = "MISSES"
	}
	fmt.Printf("ratio import/sha256sum (medians): Go call %.2f, HTTP PUT %.2f; target ≥ 0.80: %s\n", direct, viaHTTP, verdict)
	return ok, nil
}

func stats(rates []float64) (median, best float64) {
	s := slices.Clone(rates)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}
