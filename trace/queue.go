package trace

// chunkQueue is the recorder's in-memory queue: spans in arrival order, cut
// into chunks of chunkSize that are each written as one batch. Written chunks
// are recycled, so a recorder under steady load allocates none; since only
// full chunks are sealed and queued never exceeds limit, at most
// limit/chunkSize+2 chunks ever exist (sealed ones, the open one, the one
// being written). The recorder's mutex guards it.
type chunkQueue struct {
	limit, chunkSize int
	queued           int      // spans in sealed chunks and the open one
	sealed           [][]Span // full chunks; the oldest is sealed[head]
	head             int
	open             []Span // the chunk being filled; nil until a span arrives
	free             [][]Span
}

// push appends s and reports whether that filled (sealed) the open chunk.
// The caller checks queued < limit first.
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
	return true
}

// pop takes the oldest sealed chunk or, when there is none and withOpen is
// set, the open chunk if it holds spans; wasOpen says which. A nil batch
// means there was nothing to take. The caller owns the batch until it hands
// it back to recycle.
func (q *chunkQueue) pop(withOpen bool) (batch []Span, wasOpen bool) {
	switch {
	case q.head < len(q.sealed):
		batch = q.sealed[q.head]
		q.sealed[q.head] = nil
		if q.head++; q.head == len(q.sealed) {
			q.sealed, q.head = q.sealed[:0], 0
		}
	case withOpen && len(q.open) > 0:
		batch, q.open, wasOpen = q.open, nil, true
	default:
		return nil, false
	}
	q.queued -= len(batch)
	return batch, wasOpen
}

// recycle takes back a popped chunk, emptied (clear0) by its writer.
func (q *chunkQueue) recycle(batch []Span) {
	q.free = append(q.free, batch[:0])
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
