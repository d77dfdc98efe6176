package wssec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplayLogSurvivesARestart: a message accepted before a restart is refused after
// it while live; an expired one is forgotten (and its line dropped from the file); a
// line torn by a kill mid-write is skipped.
func TestReplayLogSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.log")
	now := time.Now()
	first := NewReplayCache(0)
	if err := first.Persist(path, now); err != nil {
		t.Fatal(err)
	}
	if err := first.Check("/CN=alice", now.Add(time.Minute), now, "live\x00\xff"); err != nil {
		t.Fatal(err)
	}
	if err := first.Check("/CN=alice", now.Add(time.Second), now, "short"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"u":` + "9") // a kill mid-write
	f.Close()

	later := now.Add(10 * time.Second)
	second := NewReplayCache(0)
	if err := second.Persist(path, later); err != nil {
		t.Fatalf("a log with a torn last line: %v", err)
	}
	if err := second.Check("/CN=alice", later.Add(time.Minute), later, "live\x00\xff"); !errors.Is(err, ErrReplay) {
		t.Fatalf("a message accepted before the restart, replayed after it: %v, want ErrReplay", err)
	}
	if err := second.Check("/CN=alice", later.Add(time.Minute), later, "short"); err != nil {
		t.Fatalf("a message whose entry expired before the restart: %v", err)
	}
	second.Close()
	data, _ := os.ReadFile(path)
	if lines := strings.Count(string(data), "\n"); lines != 2 || strings.Contains(string(data), `{"u":9`) {
		t.Errorf("the log after the restart holds %d lines (want the 2 live ones, no torn line):\n%s", lines, data)
	}
}

// TestReplayLogCompacts: the log is rewritten once most of its lines have expired, so
// it stays near the size of the live messages however long the server runs.
func TestReplayLogCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.log")
	now := time.Now()
	c := NewReplayCache(0)
	if err := c.Persist(path, now); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5000 {
		at := now.Add(time.Duration(i) * time.Second)
		if err := c.Check("/CN=alice", at.Add(time.Second), at, "m"+string(rune('a'+i%26))+time.Duration(i).String()); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	if lines := strings.Count(string(data), "\n"); lines > 2*c.Len()+1024+1 {
		t.Errorf("the log holds %d lines for %d live messages", lines, c.Len())
	}
}

// TestReplayLogUnwritableRefuses: a message the log cannot record is refused (after
// a restart its replay would pass) and not held, so it is accepted once the log can
// take it.
func TestReplayLogUnwritableRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.log")
	now := time.Now()
	c := NewReplayCache(0)
	if err := c.Persist(path, now); err != nil {
		t.Fatal(err)
	}
	good := c.log.f
	bad, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	c.log.f = bad
	if err := c.Check("/CN=alice", now.Add(time.Minute), now, "k"); !errors.Is(err, ErrReplayNotRecorded) {
		t.Fatalf("a message the log could not record: %v, want ErrReplayNotRecorded", err)
	}
	bad.Close()
	c.log.f = good
	if err := c.Check("/CN=alice", now.Add(time.Minute), now, "k"); err != nil {
		t.Fatalf("the same message once the log takes it: %v", err)
	}
	c.Close()
}

// TestReplayLogNotReopenedRefuses: when the log, once compacted, cannot be opened
// again, signed messages are refused until it can (each retries it), rather than
// accepted unrecorded: after a restart their replay would pass.
func TestReplayLogNotReopenedRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.log")
	now := time.Now()
	c := NewReplayCache(0)
	if err := c.Persist(path, now); err != nil {
		t.Fatal(err)
	}
	c.log.lines = 1 << 20 // mostly expired: the next message compacts it
	defer func(open func(string) (*os.File, error)) { openAppend = open }(openAppend)
	good := openAppend
	openAppend = func(string) (*os.File, error) { return nil, errors.New("EMFILE") }
	for _, k := range []string{"k1", "k2"} {
		if err := c.Check("/CN=alice", now.Add(time.Minute), now, k); !errors.Is(err, ErrReplayNotRecorded) {
			t.Fatalf("message %s while the log cannot be opened: %v, want ErrReplayNotRecorded", k, err)
		}
	}
	openAppend = good
	if err := c.Check("/CN=alice", now.Add(time.Minute), now, "k2"); err != nil {
		t.Fatalf("a message once the log opens again: %v", err)
	}
	c.Close()
	restarted := NewReplayCache(0)
	if err := restarted.Persist(path, now); err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	if err := restarted.Check("/CN=alice", now.Add(time.Minute), now, "k2"); !errors.Is(err, ErrReplay) {
		t.Fatalf("a message accepted before the restart, replayed after it: %v, want ErrReplay", err)
	}
}
