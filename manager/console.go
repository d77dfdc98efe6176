package manager

import (
	"bytes"
	"context"
	"fmt"
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
	if err := m.authorize(ctx, policy.Inspect, "Console", rec); err != nil {
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

// readConsole reads the console log at path, rotations included, as one stream.
func readConsole(path string, offset int64, max int) (ConsoleChunk, error) {
	return readConsoleStream(path, offset, max, true)
}

func readConsoleStream(path string, offset int64, max int, offsets bool) (ConsoleChunk, error) {
	s, err := openConsole(path, offsets)
	if err != nil {
		return ConsoleChunk{}, fmt.Errorf("read the console log: %w", err)
	}
	defer s.close()
	return s.read(offset, max)
}

// consoleTail is the end of a console log as printable text, for a resource property.
func consoleTail(path string, max int) string {
	// The tail shows no offsets: a log that only grew is no reason to write its index.
	// One byte more than shown: the byte before the tail says whether its first line
	// is whole.
	c, err := readConsoleStream(path, -int64(max)-1, max+1, false)
	if err != nil {
		return ""
	}
	data := c.Data
	// Only a read that got the byte asked for before the tail has it: a stream whose
	// start was rotated away may hold less than the tail.
	if c.Offset > 0 && len(data) == max+1 {
		rest := data[1:]
		// Start at a whole line, unless the cut line is all the tail holds.
		if i := bytes.IndexByte(rest, '\n'); data[0] != '\n' && i >= 0 && i+1 < len(rest) {
			rest = rest[i+1:]
		}
		data = rest
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(data), ""))
}
