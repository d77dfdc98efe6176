package imagepool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
)

const crashChildEnv = "VWS_IMAGEPOOL_CRASH_CHILD"

// TestCrashDuringImport kills (SIGKILL) a process that imports and removes images
// without pause, at a random moment, several times over the same data directory, and
// checks after each restart that every visible image is whole and nothing else is left.
func TestCrashDuringImport(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dataDir := t.TempDir()
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringImport$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dataDir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child has its pool open, then let it work a little.
		ready := make([]byte, 6)
		if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child did not start: %q %v", round, ready, err)
		}
		time.Sleep(time.Duration(30+rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkPoolInvariants(t, dataDir, round)
	}
}

// crashChild imports images of 1 to 6 MiB (some with content seen before, to take
// the dedupe path) and removes some, until killed.
func crashChild(dataDir string) {
	ctx := context.Background()
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	p, err := Open(ctx, filepath.Join(dataDir, "images"), db.SQL(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Stdout.WriteString("ready\n")
	seeds := []uint64{1, 2, 3}
	for i := 0; ; i++ {
		seed := rand.Uint64()
		if i%3 == 0 {
			seed = seeds[rand.IntN(len(seeds))]
		}
		data := make([]byte, (1+int(seed%6))<<20)
		r := rand.New(rand.NewPCG(seed, 7))
		for j := 0; j+8 <= len(data); j += 8 {
			v := r.Uint64()
			copy(data[j:], []byte{0, byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40), byte(v >> 48), byte(v >> 56)})
		}
		name := fmt.Sprintf("img-%d-%d", os.Getpid(), i)
		if _, _, err := p.Import(ctx, bytes.NewReader(data), Meta{Name: name, OS: "linux"}); err != nil {
			fmt.Fprintln(os.Stderr, "child import:", err)
			os.Exit(3)
		}
		if i%2 == 1 {
			if err := p.Remove(ctx, name, nil); err != nil {
				fmt.Fprintln(os.Stderr, "child remove:", err)
				os.Exit(3)
			}
		}
	}
}

func checkPoolInvariants(t *testing.T, dataDir string, round int) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		t.Fatalf("round %d: reopen store: %v", round, err)
	}
	defer db.Close()
	var logs bytes.Buffer
	p, err := Open(ctx, filepath.Join(dataDir, "images"), db.SQL(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("round %d: reopen pool: %v", round, err)
	}
	rows := map[string]int64{}
	r, err := db.SQL().Query(`SELECT digest, size FROM images`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var d string
		var size int64
		r.Scan(&d, &size)
		rows[d] = size
	}
	r.Close()
	entries, _ := os.ReadDir(p.Dir())
	files := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, blobPrefix) {
			t.Errorf("round %d: %s left in the pool directory after the sweep", round, name)
			continue
		}
		d := digestPrefix + strings.TrimPrefix(name, blobPrefix)
		files[d] = true
		size, ok := rows[d]
		if !ok {
			t.Errorf("round %d: blob %s has no images row", round, d)
			continue
		}
		data, err := os.ReadFile(filepath.Join(p.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := digestPrefix + hex.EncodeToString(sum[:]); got != d || int64(len(data)) != size {
			t.Errorf("round %d: blob %s holds %d bytes hashing to %s (row says %d bytes)", round, d, len(data), got, size)
		}
	}
	for d := range rows {
		if !files[d] {
			t.Errorf("round %d: images row %s has no blob", round, d)
		}
	}
	imgs, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var orphanNames int
	db.SQL().QueryRow(`SELECT COUNT(*) FROM image_names n WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.digest = n.digest)`).Scan(&orphanNames)
	if orphanNames != 0 {
		t.Errorf("round %d: %d names point at no image", round, orphanNames)
	}
	t.Logf("round %d: %d names, %d blobs, all whole; the sweep removed %d leftovers", round, len(imgs), len(files),
		strings.Count(logs.String(), "sweep: removed"))
}
