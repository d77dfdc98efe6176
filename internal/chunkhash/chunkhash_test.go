package chunkhash

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeRandom(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileMatchesWriterAndPlainSHA256(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int64{0, 1, MinChunkBytes, 3*MinChunkBytes + 12345} {
		path := writeRandom(t, size)
		l, err := File(ctx, path, MinChunkBytes)
		if err != nil {
			t.Fatal(err)
		}
		if l.Size != size || len(l.Digests) != Count(size, MinChunkBytes) {
			t.Fatalf("size %d: list of %d bytes, %d digests", size, l.Size, len(l.Digests))
		}
		data, _ := os.ReadFile(path)
		w := NewWriter(MinChunkBytes)
		// Odd write lengths cross piece boundaries.
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 777777)
			w.Write(rest[:k])
			rest = rest[k:]
		}
		if got := w.List(); got.Text() != l.Text() || got.Size != size {
			t.Fatalf("size %d: the Writer's list differs from File's", size)
		}
		for i, d := range l.Digests {
			off := int64(i) * MinChunkBytes
			if d != sha256.Sum256(data[off:min(off+MinChunkBytes, size)]) {
				t.Fatalf("size %d: digest %d is not the SHA-256 of its piece", size, i)
			}
		}
		if err := VerifyFile(ctx, path, l); err != nil {
			t.Fatalf("size %d: verify of the unchanged file: %v", size, err)
		}
	}
}

func TestVerifyNamesTheAlteredPiece(t *testing.T) {
	ctx := context.Background()
	path := writeRandom(t, 5*MinChunkBytes+100)
	l, err := File(ctx, path, MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	off := int64(3*MinChunkBytes + 4242)
	f.ReadAt(b, off)
	b[0] ^= 0x01
	f.WriteAt(b, off)
	err = VerifyFile(ctx, path, l)
	var m *MismatchError
	if !errors.As(err, &m) || m.Chunk != 3 || m.Offset != 3*MinChunkBytes || m.Size != MinChunkBytes {
		t.Fatalf("flipped bit in chunk 3: %v", err)
	}
	// Pieces before it still verify on their own.
	if err := Verify(ctx, f, l, 0, 3); err != nil {
		t.Fatalf("chunks 0–2: %v", err)
	}
}

func TestVerifyOfATruncatedFileFailsWithoutCrashing(t *testing.T) {
	ctx := context.Background()
	path := writeRandom(t, 4*MinChunkBytes)
	l, err := File(ctx, path, MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Cut the file after the list was made: mapped pages past the new end fault.
	if err := os.Truncate(path, MinChunkBytes+10); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, f, l, 0, 4); err == nil {
		t.Fatal("a file cut short verified")
	}
	if err := VerifyFile(ctx, path, l); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("VerifyFile of a short file: %v", err)
	}
}

func TestParse(t *testing.T) {
	path := writeRandom(t, 2*MinChunkBytes+1)
	l, err := File(context.Background(), path, MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(MinChunkBytes, l.Size, l.Text())
	if err != nil || back.Text() != l.Text() {
		t.Fatalf("round trip: %v", err)
	}
	d := strings.Repeat("ab", 32)
	for _, c := range []struct {
		chunk, size int64
		text, want  string
	}{
		{MinChunkBytes, 2*MinChunkBytes + 1, d + " " + d, "2 chunk digests"},
		{MinChunkBytes - 1, 10, d, "outside"},
		{MaxChunkBytes + 1, 10, d, "outside"},
		{MinChunkBytes, 10, "xyz", "not 64 hex"},
		{MinChunkBytes, 10, strings.Repeat("zz", 32), "chunk digest 0"},
		{MinChunkBytes, -1, "", "negative"},
	} {
		if _, err := Parse(c.chunk, c.size, c.text); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%d, %d, %.20q): %v, want %q", c.chunk, c.size, c.text, err, c.want)
		}
	}
}

func TestContextCancels(t *testing.T) {
	path := writeRandom(t, 3*MinChunkBytes)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := File(ctx, path, MinChunkBytes); !errors.Is(err, context.Canceled) {
		t.Fatalf("File with a cancelled context: %v", err)
	}
}

// BenchmarkVerify sets the parallel check of a 256 MiB cached file beside one
// SHA-256 stream over the same bytes and beside sha256sum(1).
func BenchmarkVerify(b *testing.B) {
	const size = 256 << 20
	path := writeRandom(b, size)
	ctx := context.Background()
	l, err := File(ctx, path, DefaultChunkBytes)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("chunkhash.VerifyFile", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if err := VerifyFile(ctx, path, l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-sha256-stream", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, _ := os.Open(path)
			io.Copy(sha256.New(), f)
			f.Close()
		}
	})
	if _, err := exec.LookPath("sha256sum"); err == nil {
		b.Run("sha256sum", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := exec.Command("sha256sum", path).Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCheckerAsTheFileGrows: pieces are checked as writes complete them; a piece
// that differs is named, and a file that stops short is an error.
func TestCheckerAsTheFileGrows(t *testing.T) {
	ctx := context.Background()
	src := writeRandom(t, 4*MinChunkBytes+77)
	data, _ := os.ReadFile(src)
	l, err := File(ctx, src, MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		alter  int // byte to flip (-1: none)
		stopAt int // bytes written in all
		want   string
	}{
		{"whole and right", -1, len(data), ""},
		{"a flipped byte in chunk 2", 2*MinChunkBytes + 5, len(data), "chunk 2"},
		{"a flipped byte in the short last chunk", len(data) - 1, len(data), "chunk 4"},
		{"cut short", -1, 3*MinChunkBytes + 1, "ended at chunk 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			body := bytes.Clone(data[:c.stopAt])
			if c.alter >= 0 {
				body[c.alter] ^= 1
			}
			ck := NewChecker(ctx, f, l, 0)
			var n int64
			for rest := body; len(rest) > 0; {
				k := min(len(rest), 300001)
				f.Write(rest[:k])
				n += int64(k)
				ck.Written(n)
				rest = rest[k:]
			}
			err = ck.Wait()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("%v, want %q", err, c.want)
			}
		})
	}
}
