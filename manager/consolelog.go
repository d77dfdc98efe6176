package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vws-grid/vws/internal/fsutil"
)

// A guest's serial console goes through virtlogd, which rotates the log when it passes
// its max_size (2 MiB by default): path becomes path.0, path.0 becomes path.1, and so on
// up to max_backups (3 by default), the oldest being dropped. Readers see one stream
// instead: offsets count bytes the guest wrote and stay valid across rotations, so
// `vws console --follow` neither stalls nor skips when the file under it is renamed,
// and the job's first lines stay readable while a backup holds them.
//
// A file keeps its identity (inode and birth time) through a rename, so the offset at
// which each file starts is remembered by identity in path.index: written when the set
// of files changes, or the log grew and the read hands out offsets (Console; not the
// console tail of a property read, which would write to disk on every poll), kept
// beside the log, read again by a restarted manager.

// maxConsoleBackups bounds the backups looked for (virtlogd's max_backups).
const maxConsoleBackups = 16

// consoleMu serializes the updates of console indexes (reads are rare and quick).
var consoleMu sync.Mutex

type fileID struct {
	Ino   uint64 `json:"ino"`
	Birth int64  `json:"birth"` // ns; 0 where the file system keeps no birth time
}

type consoleFile struct {
	f     *os.File
	id    fileID
	size  int64
	start int64 // offset in the stream of the file's first byte
}

// consoleIndex is what path.index keeps.
type consoleIndex struct {
	Files []indexedFile `json:"files"`
	// End is where the newest file ended at the last read: the start of whatever
	// comes next if every file it names has been rotated away meanwhile.
	End int64 `json:"end"`
}

type indexedFile struct {
	ID    fileID `json:"id"`
	Start int64  `json:"start"`
	Size  int64  `json:"size"` // at the time of writing: a lower bound, files only grow
}

// consoleStream is the open files of a console log, oldest first.
type consoleStream []consoleFile

func (s consoleStream) close() {
	for _, f := range s {
		f.f.Close()
	}
}

func (s consoleStream) first() int64 { return s[0].start }
func (s consoleStream) end() int64   { return s[len(s)-1].start + s[len(s)-1].size }

// openConsole opens the log at path and its backups, oldest first, and places them in
// the stream. An empty stream means nothing was written yet. offsets says the caller
// hands out offsets in the stream, whose end the index must then keep.
func openConsole(path string, offsets bool) (consoleStream, error) {
	consoleMu.Lock()
	defer consoleMu.Unlock()
	for attempt := 0; ; attempt++ {
		s, err := openConsoleFiles(path)
		if err != nil {
			return nil, err
		}
		if len(s) == 0 {
			// No file under any name: no console yet, or the first rotation fell
			// between the looks at the names (the log renamed to .0 after .0 was
			// looked for, the new log not created yet), which would read as a
			// console that started over. Look again.
			if attempt < 3 {
				again, err := openConsoleFiles(path)
				if err != nil {
					return nil, err
				}
				n := len(again)
				again.close()
				if n > 0 {
					continue
				}
			}
			return nil, nil
		}
		// A rotation between two opens would hide a file or show one twice: open
		// again until every name still holds the file opened under it.
		if moved, err := s.renamedSince(path); err != nil || moved {
			s.close()
			if err != nil {
				return nil, err
			}
			if attempt < 3 {
				continue
			}
			return nil, errors.New("the console log kept rotating while it was read; try again")
		}
		if err := s.place(path, offsets); err != nil {
			s.close()
			return nil, err
		}
		return s, nil
	}
}

func backupName(path string, i int) string { return path + "." + strconv.Itoa(i) }

func openConsoleFiles(path string) (consoleStream, error) {
	var s consoleStream
	add := func(name string) error {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		id, size, err := identify(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("console log %s: %w", name, err)
		}
		s = append(s, consoleFile{f: f, id: id, size: size})
		return nil
	}
	for i := maxConsoleBackups - 1; i >= 0; i-- {
		if err := add(backupName(path, i)); err != nil {
			s.close()
			return nil, err
		}
	}
	if err := add(path); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func identify(f *os.File) (fileID, int64, error) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_SIZE|unix.STATX_BTIME, &st); err != nil {
		return fileID{}, 0, err
	}
	id := fileID{Ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		id.Birth = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return id, int64(st.Size), nil
}

// renamedSince reports whether any name of the log now holds another file than the
// one opened.
func (s consoleStream) renamedSince(path string) (bool, error) {
	again, err := openConsoleFiles(path)
	if err != nil {
		return false, err
	}
	defer again.close()
	if len(again) != len(s) {
		return true, nil
	}
	for i := range s {
		if again[i].id != s[i].id {
			return true, nil
		}
	}
	return false, nil
}

// place sets each file's start from the index, and updates the index when the set of
// files changed, or (keepEnd) the stream grew.
func (s consoleStream) place(path string, keepEnd bool) error {
	var idx consoleIndex
	if data, err := os.ReadFile(path + ".index"); err == nil {
		json.Unmarshal(data, &idx) // an unreadable index is an empty one
	}
	known := map[fileID]indexedFile{}
	for _, f := range idx.Files {
		known[f.ID] = f
	}
	anchor := -1
	for i := len(s) - 1; i >= 0; i-- {
		// A file that shrank is not the one remembered: its inode was reused.
		if k, ok := known[s[i].id]; ok && s[i].size >= k.Size {
			anchor, s[i].start = i, k.Start
			break
		}
	}
	if anchor < 0 {
		// The first read, or every file read before was rotated away: the oldest
		// follows what was known (what came between is lost).
		anchor, s[0].start = 0, idx.End
	}
	for i := anchor + 1; i < len(s); i++ {
		s[i].start = s[i-1].start + s[i-1].size
	}
	for i := anchor - 1; i >= 0; i-- {
		s[i].start = s[i+1].start - s[i].size
	}
	if s[0].start < 0 { // an index that does not fit these files: start over
		s[0].start = 0
		for i := 1; i < len(s); i++ {
			s[i].start = s[i-1].start + s[i-1].size
		}
	}
	// The end is kept too, not only the files: were every file rotated away before
	// the next read, the stream must go on after the last byte handed out. A reader
	// that hands out no offsets needs no end kept.
	same := len(idx.Files) == len(s) && (idx.End == s.end() || !keepEnd)
	for i := 0; same && i < len(s); i++ {
		same = idx.Files[i].ID == s[i].id && idx.Files[i].Start == s[i].start
	}
	if same {
		return nil
	}
	next := consoleIndex{End: s.end()}
	for _, f := range s {
		next.Files = append(next.Files, indexedFile{ID: f.id, Start: f.start, Size: f.size})
	}
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path+".index", data, 0o600)
}

// read returns up to limit bytes of the stream from offset (negative: that many bytes
// before the end). An offset before the oldest byte still kept starts at that byte;
// one past the end (a console that started over) gives nothing, at the end.
func (s consoleStream) read(offset int64, limit int) (ConsoleChunk, error) {
	if len(s) == 0 {
		return ConsoleChunk{}, nil
	}
	end := s.end()
	if offset < 0 {
		offset = end + offset
	}
	offset = min(max(offset, s.first()), end)
	buf := make([]byte, 0, min(int64(limit), end-offset))
	at := offset
	for _, f := range s {
		if len(buf) == cap(buf) {
			break
		}
		if at >= f.start+f.size {
			continue
		}
		part := buf[len(buf):min(cap(buf), len(buf)+int(f.start+f.size-at))]
		n, err := f.f.ReadAt(part, at-f.start)
		if err != nil && err != io.EOF {
			return ConsoleChunk{}, err
		}
		buf = buf[:len(buf)+n]
		at += int64(n)
		if n < len(part) {
			break // shorter than it was a moment ago: read no further
		}
	}
	return ConsoleChunk{Offset: offset, Size: offset + int64(len(buf)), Data: buf}, nil
}
