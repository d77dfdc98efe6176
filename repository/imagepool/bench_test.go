package imagepool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkImport imports 64 MiB of fresh content per iteration (stream, hash, write,
// fsync, rename, commit), next to hashing alone and the hash-then-write a sequential
// import would do, all from memory.
func BenchmarkImport(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(b, size)
	data[0] = 0
	b.Run("import", func(b *testing.B) {
		tp := openTestPool(b)
		ctx := context.Background()
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			binary.BigEndian.PutUint64(data[8:], uint64(i)) // new content every time: no dedupe
			name := fmt.Sprintf("bench-%d", i)
			if _, stored, err := tp.Import(ctx, bytes.NewReader(data), Meta{Name: name}); err != nil || !stored {
				b.Fatalf("Import: stored=%v %v", stored, err)
			}
			b.StopTimer()
			if err := tp.Remove(ctx, name, nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("sha256-only", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			h := sha256.New()
			const chunk = 1 << 20 // what the import pipeline hashes at a time
			for off := 0; off < size; off += chunk {
				h.Write(data[off : off+chunk])
			}
			h.Sum(nil)
		}
	})
}
