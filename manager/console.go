package manager

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
)

// MaxConsoleRead bounds one Console answer.
const MaxConsoleRead = 1 << 20

// ConsoleChunk is part of a workspace's serial console log.
type ConsoleChunk struct {
	Offset, Size int64
	Data         []byte
}

// Console reads the serial console of a workspace deployed here from offset
// (negative: that many bytes before the end).
func (m *Manager) Console(ctx context.Context, epr *wsa.EPR, offset int64, max int) (ConsoleChunk, error) {
	key, err := keyOf(epr)
	if err != nil {
		return ConsoleChunk{}, err
	}
	rec, err := m.journal.get(key)
	if err != nil {
		return ConsoleChunk{}, errdefs.WithAdvice(fmt.Errorf("%w: workspace %s is not deployed on host %s", errdefs.ErrResourceUnknown, key, m.cfg.Host),
			"ask the manager of the host it is deployed on")
	}
	if err := m.authorize(ctx, policy.Inspect, rec); err != nil {
		return ConsoleChunk{}, err
	}
	if max <= 0 || max > MaxConsoleRead {
		max = MaxConsoleRead
	}
	if rec.Spec.ConsoleLog == "" {
		return ConsoleChunk{}, nil // still staging: nothing has run
	}
	return readConsole(rec.Spec.ConsoleLog, offset, max)
}

func readConsole(path string, offset int64, max int) (ConsoleChunk, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return ConsoleChunk{}, nil // never started: an empty console
	}
	if err != nil {
		return ConsoleChunk{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ConsoleChunk{}, err
	}
	size := fi.Size()
	if offset < 0 {
		offset = max64(0, size+offset)
	}
	if offset > size {
		offset = size
	}
	n := min64(int64(max), size-offset)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, offset); err != nil && err != io.EOF {
		return ConsoleChunk{}, err
	}
	return ConsoleChunk{Offset: offset, Size: offset + n, Data: buf}, nil
}

// consoleTail is the end of a console log as printable text, for a resource property.
func consoleTail(path string, max int) string {
	c, err := readConsole(path, -int64(max), max)
	if err != nil {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(c.Data), ""))
	if i := strings.IndexByte(s, '\n'); i >= 0 && c.Offset > 0 {
		s = s[i+1:] // start at a whole line
	}
	return s
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}
