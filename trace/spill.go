package trace

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A spill segment is an append-only file of records:
//
//	uint32 payload length | uint32 CRC32C of payload | payload (a span batch)
//
// Segments are replayed oldest first; the replay position of the oldest one is
// kept in a ".pos" file beside it so a restart does not send a batch twice
// (at most the batch in flight when the process died is repeated).
const (
	segmentExt    = ".seg"
	positionExt   = ".pos"
	recordHeader  = 8
	maxRecordSize = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	seq  uint64
	size int64
}

type spill struct {
	dir      string
	maxBytes int64
	log      *slog.Logger

	mu        sync.Mutex
	segs      []segment // oldest first; the last one is the active one when active != nil
	active    *os.File
	nextSeq   uint64
	corrupted int64 // records skipped as corrupt
	buf       []byte
}

func openSpill(dir string, maxBytes int64, log *slog.Logger) (*spill, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("trace: spill dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trace: spill dir: %w", err)
	}
	sp := &spill{dir: dir, maxBytes: maxBytes, log: log, nextSeq: 1}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || e.IsDir() {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("trace: spill segment: %w", err)
		}
		sp.segs = append(sp.segs, segment{seq: seq, size: info.Size()})
		sp.nextSeq = max(sp.nextSeq, seq+1)
	}
	slices.SortFunc(sp.segs, func(a, b segment) int { return cmpUint(a.seq, b.seq) })
	return sp, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (sp *spill) path(seq uint64, ext string) string {
	return filepath.Join(sp.dir, fmt.Sprintf("%020d%s", seq, ext))
}

// pending reports whether any spilled span awaits replay.
func (sp *spill) pending() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.segs) > 0
}

// bytes is the size of the spill backlog on disk.
func (sp *spill) bytes() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var n int64
	for _, s := range sp.segs {
		n += s.size
	}
	return n
}

// append writes one batch as one record to the active segment.
func (sp *spill) append(spans []Span) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.buf = append(sp.buf[:0], make([]byte, recordHeader)...)
	sp.buf = appendSpans(sp.buf, spans)
	payload := sp.buf[recordHeader:]
	if len(payload) > maxRecordSize {
		return fmt.Errorf("trace: spill record of %d bytes is too large", len(payload))
	}
	binary.LittleEndian.PutUint32(sp.buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(sp.buf[4:8], crc32.Checksum(payload, castagnoli))
	if sp.active == nil {
		seq := sp.nextSeq
		f, err := os.OpenFile(sp.path(seq, segmentExt), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o640)
		if err != nil {
			return fmt.Errorf("trace: spill: %w", err)
		}
		sp.nextSeq++
		sp.active = f
		sp.segs = append(sp.segs, segment{seq: seq})
	}
	n, err := sp.active.Write(sp.buf)
	last := &sp.segs[len(sp.segs)-1]
	last.size += int64(n)
	if err != nil {
		// A partial record would be read as a corrupt tail; start afresh.
		sp.sealLocked(false)
		return fmt.Errorf("trace: spill: %w", err)
	}
	if last.size >= sp.maxBytes {
		return sp.sealLocked(true)
	}
	return nil
}

// sealLocked closes the active segment so it can be replayed. Segments
// sealed only to be read back at once skip the fsync: the kernel keeps them
// across a process crash, and they are gone within a replay anyway.
func (sp *spill) sealLocked(sync bool) error {
	if sp.active == nil {
		return nil
	}
	var err error
	if sync {
		err = sp.active.Sync()
	}
	err = errors.Join(err, sp.active.Close())
	sp.active = nil
	if err != nil {
		return fmt.Errorf("trace: spill: %w", err)
	}
	return nil
}

func (sp *spill) close() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.sealLocked(true)
}

// chunk is a run of spans read from the oldest segment. commit marks them
// sent; without commit the next read returns them again.
type chunk struct {
	seq   uint64
	spans []Span
	end   int64 // offset after the last record read
	done  bool  // the segment has nothing after end
}

// next reads records from the oldest segment until at least want spans are
// gathered or the segment ends. It returns a nil chunk when nothing is
// pending. A corrupt record ends the segment: the rest is skipped and logged.
func (sp *spill) next(want int) (*chunk, error) {
	sp.mu.Lock()
	if len(sp.segs) == 0 {
		sp.mu.Unlock()
		return nil, nil
	}
	seq := sp.segs[0].seq
	if sp.active != nil && len(sp.segs) == 1 {
		if err := sp.sealLocked(false); err != nil {
			sp.mu.Unlock()
			return nil, err
		}
	}
	sp.mu.Unlock()

	f, err := os.Open(sp.path(seq, segmentExt))
	if err != nil {
		return nil, fmt.Errorf("trace: spill: %w", err)
	}
	defer f.Close()
	pos := sp.position(seq)
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		return nil, fmt.Errorf("trace: spill: %w", err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	c := &chunk{seq: seq, end: pos}
	var hdr [recordHeader]byte
	for len(c.spans) < want {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err != io.EOF {
				sp.corrupt(seq, c.end, "truncated record header")
			}
			c.done = true
			break
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		if size > maxRecordSize {
			sp.corrupt(seq, c.end, "record length out of range")
			c.done = true
			break
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(r, payload); err != nil {
			sp.corrupt(seq, c.end, "truncated record")
			c.done = true
			break
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			sp.corrupt(seq, c.end, "checksum mismatch")
			c.done = true
			break
		}
		spans, err := decodeSpans(payload)
		if err != nil {
			sp.corrupt(seq, c.end, "undecodable record")
			c.done = true
			break
		}
		c.spans = append(c.spans, spans...)
		c.end += recordHeader + int64(size)
	}
	if !c.done {
		// Peek so a segment whose last record was just read is retired now.
		if _, err := r.Peek(1); err == io.EOF {
			c.done = true
		}
	}
	return c, nil
}

func (sp *spill) corrupt(seq uint64, off int64, why string) {
	sp.mu.Lock()
	sp.corrupted++
	sp.mu.Unlock()
	sp.log.Error("trace: corrupt spill data skipped", "segment", filepath.Base(sp.path(seq, segmentExt)), "offset", off, "reason", why)
}

func (sp *spill) position(seq uint64) int64 {
	b, err := os.ReadFile(sp.path(seq, positionExt))
	if err != nil || len(b) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b))
}

// commit records that c's spans reached the sink.
func (sp *spill) commit(c *chunk) error {
	if !c.done {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(c.end))
		if err := os.WriteFile(sp.path(c.seq, positionExt), b[:], 0o640); err != nil {
			return fmt.Errorf("trace: spill position: %w", err)
		}
		return nil
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.segs) > 0 && sp.segs[0].seq == c.seq {
		sp.segs = sp.segs[1:]
	}
	err := os.Remove(sp.path(c.seq, segmentExt))
	if perr := os.Remove(sp.path(c.seq, positionExt)); perr != nil && !errors.Is(perr, os.ErrNotExist) {
		err = errors.Join(err, perr)
	}
	if err != nil {
		return fmt.Errorf("trace: spill: %w", err)
	}
	return nil
}

func (sp *spill) corruptRecords() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.corrupted
}
