package manager

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// rotatingLog writes a console log the way virtlogd does: appending to path, and past
// maxSize renaming path.N-2 → path.N-1 … path → path.0 (dropping the oldest beyond
// backups) before starting a new path.
type rotatingLog struct {
	path    string
	maxSize int
	backups int
	written bytes.Buffer // everything ever written, in order
}

func (l *rotatingLog) write(t testing.TB, data []byte) {
	t.Helper()
	fi, err := os.Stat(l.path)
	if err == nil && fi.Size()+int64(len(data)) > int64(l.maxSize) {
		os.Remove(backupName(l.path, l.backups-1))
		for i := l.backups - 2; i >= 0; i-- {
			os.Rename(backupName(l.path, i), backupName(l.path, i+1))
		}
		if err := os.Rename(l.path, backupName(l.path, 0)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	l.written.Write(data)
}

func mustRead(t *testing.T, path string, offset int64, limit int) ConsoleChunk {
	t.Helper()
	c, err := readConsole(path, offset, limit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConsoleStreamAcrossRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if c := mustRead(t, path, 0, 100); c.Size != 0 || len(c.Data) != 0 {
		t.Fatalf("a console never written: %+v", c)
	}
	l := &rotatingLog{path: path, maxSize: 100, backups: 3}
	line := func(i int) []byte { return fmt.Appendf(nil, "line %04d ........\n", i) } // 20 bytes
	for i := range 4 {
		l.write(t, line(i))
	}
	follower := mustRead(t, path, 0, 1000) // a --follow that has read it all so far
	if follower.Offset != 0 || !bytes.Equal(follower.Data, l.written.Bytes()) {
		t.Fatalf("before any rotation: %+v", follower)
	}
	for i := 4; i < 12; i++ { // two rotations
		l.write(t, line(i))
	}
	if _, err := os.Stat(backupName(path, 1)); err != nil {
		t.Fatalf("the log did not rotate twice: %v", err)
	}
	// The follower goes on where it was; the whole stream is still readable from 0.
	next := mustRead(t, path, follower.Size, 1000)
	if next.Offset != follower.Size || !bytes.Equal(next.Data, l.written.Bytes()[follower.Size:]) {
		t.Fatalf("the follower after two rotations got %q at %d, want %q", next.Data, next.Offset, l.written.Bytes()[follower.Size:])
	}
	if all := mustRead(t, path, 0, 1000); !bytes.Equal(all.Data, l.written.Bytes()) {
		t.Fatalf("the whole stream: %q, want %q", all.Data, l.written.Bytes())
	}
	// A small limit reads across a file boundary; a tail spans files too.
	if c := mustRead(t, path, 90, 20); c.Offset != 90 || !bytes.Equal(c.Data, l.written.Bytes()[90:110]) {
		t.Fatalf("across a boundary: %+v", c)
	}
	if c := mustRead(t, path, -50, 1000); !bytes.Equal(c.Data, l.written.Bytes()[l.written.Len()-50:]) {
		t.Fatalf("tail: %q", c.Data)
	}
	// Ahead of the stream (a console that started over): nothing, at the end.
	if c := mustRead(t, path, 1<<20, 1000); c.Offset != int64(l.written.Len()) || len(c.Data) != 0 {
		t.Fatalf("past the end: %+v", c)
	}
	// Three more rotations drop the oldest files: offsets keep their meaning, and a
	// read from 0 starts at the oldest byte still kept.
	for i := 12; i < 30; i++ {
		l.write(t, line(i))
	}
	all := mustRead(t, path, 0, 10000)
	if all.Offset == 0 || all.Size != int64(l.written.Len()) || !bytes.Equal(all.Data, l.written.Bytes()[all.Offset:]) {
		t.Fatalf("after the oldest were dropped: offset %d size %d (written %d) data %q", all.Offset, all.Size, l.written.Len(), all.Data)
	}
}

// TestConsoleFollowWhileRotating: a follower reading while the log rotates under it
// (concurrently, as virtlogd does) sees every byte once, in order.
func TestConsoleFollowWhileRotating(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l := &rotatingLog{path: path, maxSize: 4096, backups: maxConsoleBackups}
	const lines = 3000 // about 14 rotations: none dropped
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range lines {
			l.write(t, fmt.Appendf(nil, "line %05d\n", i)) // 11 bytes
		}
	}()
	var got bytes.Buffer
	offset := int64(0)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		c, err := readConsole(path, offset, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if c.Offset != offset {
			t.Fatalf("read at %d answered from %d", offset, c.Offset)
		}
		got.Write(c.Data)
		offset = c.Size
	}
	wg.Wait()
	for {
		c := mustRead(t, path, offset, 1000)
		if len(c.Data) == 0 {
			break
		}
		got.Write(c.Data)
		offset = c.Size
	}
	if !bytes.Equal(got.Bytes(), l.written.Bytes()) {
		t.Fatalf("the follower read %d bytes, %d were written; they differ first at %d", got.Len(), l.written.Len(), firstDiff(got.Bytes(), l.written.Bytes()))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestConsoleOffsetsKeepGrowingWhenEveryFileRotatedAway: when every file read before has
// been dropped between two reads, the stream goes on after the last byte a reader was
// given, not before it — offsets never slide back, even if the last read saw the log grow
// without rotating.
func TestConsoleOffsetsKeepGrowingWhenEveryFileRotatedAway(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l := &rotatingLog{path: path, maxSize: 100, backups: 2}
	line := func(i int) []byte { return fmt.Appendf(nil, "line %04d ........\n", i) } // 19 bytes
	l.write(t, line(0))
	mustRead(t, path, 0, 1000) // the index now names console.log
	for i := 1; i < 4; i++ {   // the same file grows: no rotation
		l.write(t, line(i))
	}
	seen := mustRead(t, path, 0, 1000)
	if seen.Size != int64(l.written.Len()) {
		t.Fatalf("before rotating: size %d, want %d", seen.Size, l.written.Len())
	}
	for i := 4; i < 20; i++ { // enough rotations to drop every file read before
		l.write(t, line(i))
	}
	after := mustRead(t, path, 0, 10000)
	if after.Offset < seen.Size {
		t.Fatalf("after every file was rotated away the stream starts at %d, before the %d bytes already handed out", after.Offset, seen.Size)
	}
	// What was dropped unread is lost; what is kept is the newest bytes written.
	if !bytes.HasSuffix(l.written.Bytes(), after.Data) || len(after.Data) == 0 {
		t.Fatalf("after every file was rotated away the stream holds %q", after.Data)
	}
}

// TestConsoleTailDoesNotRewriteTheIndex: the console tail in every read of the host's
// properties hands out no offsets, so a log that grew without rotating is no reason to
// write (and sync) its index; a rotation still is.
func TestConsoleTailDoesNotRewriteTheIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l := &rotatingLog{path: path, maxSize: 100, backups: 3}
	line := func(i int) []byte { return fmt.Appendf(nil, "line %04d ........\n", i) } // 20 bytes
	l.write(t, line(0))
	consoleTail(path, 2048)
	before, err := os.Stat(path + ".index")
	if err != nil {
		t.Fatalf("the first read left no index: %v", err)
	}
	writes := 0
	for i := 1; i < 4; i++ { // the log grows; no rotation
		l.write(t, line(i))
		consoleTail(path, 2048)
		if now, err := os.Stat(path + ".index"); err != nil || !os.SameFile(before, now) {
			writes++
			before = now
		}
	}
	if writes != 0 {
		t.Fatalf("%d property reads of a growing console rewrote its index %d times", 3, writes)
	}
	for i := 4; i < 6; i++ { // a rotation: the index must follow it
		l.write(t, line(i))
	}
	consoleTail(path, 2048)
	if now, err := os.Stat(path + ".index"); err != nil || os.SameFile(before, now) {
		t.Fatalf("a rotation left the index as it was (%v)", err)
	}
	// Offsets handed out by Console still never slide back.
	if c := mustRead(t, path, 0, 1000); c.Offset != 0 || !bytes.Equal(c.Data, l.written.Bytes()) {
		t.Fatalf("after property reads the stream reads %q from %d, want %q from 0", c.Data, c.Offset, l.written.Bytes())
	}
}

// TestConsoleTailKeepsAWholeFirstLine: the tail shows whole lines only, and a tail
// whose bytes begin exactly at a line's start keeps that line.
func TestConsoleTailKeepsAWholeFirstLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		max  int
		want string
	}{
		{10, "two\nthree\n"}, // begins at "two": kept whole
		{11, "two\nthree\n"}, // begins at the newline before it
		{12, "two\nthree\n"}, // begins inside "one": that part dropped
		{14, "one\ntwo\nthree\n"},
		{3, "ee\n"}, // no line break before the end: the partial line is all there is
	} {
		if got := consoleTail(path, c.max); got != c.want {
			t.Errorf("consoleTail(%d) = %q, want %q", c.max, got, c.want)
		}
	}
}

// TestConsoleTailAfterItsStartRotatedAway: the stream goes on from 1000 bytes that
// were rotated away, and holds less than the tail: what it holds begins at a line of
// its own (a rotation starts a new file) and is shown whole — no byte of it is taken
// for "the byte before the tail", nor its first line dropped for being cut.
func TestConsoleTailAfterItsStartRotatedAway(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, []byte("tick 7\ntick 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".index", []byte(`{"files":[],"end":1000}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := consoleTail(path, 2048); got != "tick 7\ntick 8\n" {
		t.Errorf("consoleTail = %q, want %q", got, "tick 7\ntick 8\n")
	}
}
