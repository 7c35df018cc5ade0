package trace

// chunkQueue is the recorder's in-memory queue: spans in arrival order, cut
// into chunks of chunkSize, and written chunksPerWrite chunks at a time
// (one sink write, one ClickHouse insert). Chunks keep each allocation small
// while a write stays large: a write's size is what ClickHouse's cost per
// span depends on, not a chunk's. Written chunks are recycled, so a recorder
// under steady load allocates none; since only full chunks are sealed and
// queued never exceeds limit, at most limit/chunkSize + 1 + chunksPerWrite
// chunks ever exist (sealed ones, the open one, the ones being written). The
// recorder's mutex guards it.
type chunkQueue struct {
	limit, chunkSize, chunksPerWrite int
	queued                           int      // spans in sealed chunks and the open one
	sealed                           [][]Span // full chunks; the oldest is sealed[head]
	head                             int
	open                             []Span // the chunk being filled; nil until a span arrives
	free                             [][]Span
}

// maxChunkSpans caps a chunk at about 2 MB of spans.
const maxChunkSpans = 5000

// newChunkQueue cuts writes of up to batchSize spans into equal chunks of at
// most maxChunkSpans.
func newChunkQueue(limit, batchSize int) chunkQueue {
	perWrite := (batchSize + maxChunkSpans - 1) / maxChunkSpans
	return chunkQueue{limit: limit, chunkSize: (batchSize + perWrite - 1) / perWrite, chunksPerWrite: perWrite}
}

// push appends s and reports whether that sealed the open chunk and so made
// a full write's worth of sealed chunks. The caller checks queued < limit
// first.
func (q *chunkQueue) push(s Span) bool {
	if q.open == nil {
		q.open = q.newChunk()
	}
	q.open = append(q.open, s)
	q.queued++
	if len(q.open) < q.chunkSize {
		return false
	}
	if q.head > 0 && len(q.sealed) == cap(q.sealed) {
		// Reuse the room of chunks already taken instead of growing.
		n := copy(q.sealed, q.sealed[q.head:])
		clear(q.sealed[n:])
		q.sealed, q.head = q.sealed[:n], 0
	}
	q.sealed = append(q.sealed, q.open)
	q.open = nil
	return len(q.sealed)-q.head >= q.chunksPerWrite
}

// pop appends one write's chunks to into: chunksPerWrite sealed chunks when
// there are that many; otherwise, with withOpen set, every sealed chunk and
// the open one if it holds spans (wasOpen says so). No chunks means there
// was nothing to take. The caller owns the chunks until it hands them back
// to recycle.
func (q *chunkQueue) pop(withOpen bool, into [][]Span) (write [][]Span, wasOpen bool) {
	write = into
	n := min(len(q.sealed)-q.head, q.chunksPerWrite)
	if n < q.chunksPerWrite && !withOpen {
		return write, false
	}
	for _, c := range q.sealed[q.head : q.head+n] {
		write = append(write, c)
		q.queued -= len(c)
	}
	clear(q.sealed[q.head : q.head+n])
	if q.head += n; q.head == len(q.sealed) {
		q.sealed, q.head = q.sealed[:0], 0
	}
	if n < q.chunksPerWrite && len(q.open) > 0 {
		write = append(write, q.open)
		q.queued -= len(q.open)
		q.open, wasOpen = nil, true
	}
	return write, wasOpen
}

// recycle takes back a popped chunk, emptied (clear0) by its writer.
func (q *chunkQueue) recycle(chunk []Span) {
	q.free = append(q.free, chunk[:0])
}

func (q *chunkQueue) newChunk() []Span {
	if n := len(q.free); n > 0 {
		c := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		return c
	}
	return make([]Span, 0, q.chunkSize)
}
