package storage

import (
	"fmt"
	"slices"

	"github.com/switchboard-gw/switchboard/trace"
)

// buildForest turns the spans of one trace into a forest. Spans are sorted
// by start; a span whose parent is not among them is a root. A span id seen
// twice (a batch replayed after a crash) is kept once, and a parent cycle in
// foreign data is cut where it is first met, so every span appears once.
func buildForest(spans []trace.Span) []TraceNode {
	slices.SortStableFunc(spans, func(a, b trace.Span) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return slices.Compare(a.SpanID[:], b.SpanID[:])
	})
	index := make(map[trace.SpanID]int, len(spans))
	kept := spans[:0]
	for _, s := range spans {
		if _, dup := index[s.SpanID]; dup {
			continue
		}
		index[s.SpanID] = len(kept)
		kept = append(kept, s)
	}
	children := make([][]int, len(kept))
	isRoot := make([]bool, len(kept))
	for i, s := range kept {
		p, ok := index[s.ParentSpanID]
		if s.ParentSpanID.IsZero() || !ok || p == i {
			isRoot[i] = true
			continue
		}
		children[p] = append(children[p], i)
	}
	visited := make([]bool, len(kept))
	var build func(i int) TraceNode
	build = func(i int) TraceNode {
		visited[i] = true
		n := TraceNode{Span: kept[i]}
		for _, c := range children[i] {
			if !visited[c] {
				n.Children = append(n.Children, build(c))
			}
		}
		return n
	}
	var roots []TraceNode
	for i := range kept {
		if isRoot[i] {
			roots = append(roots, build(i))
		}
	}
	for i := range kept {
		if !visited[i] {
			roots = append(roots, build(i))
		}
	}
	slices.SortStableFunc(roots, func(a, b TraceNode) int { return a.Span.Start.Compare(b.Span.Start) })
	return roots
}

// spanRows is what both stores' query results offer for reading spans one by one.
type spanRows interface {
	Next() bool
	Err() error
}

// collectTrace reads one trace's spans with scan and builds its forest; a trace without spans is ErrNotFound.
func collectTrace[R spanRows](rows R, scan func(R) (trace.Span, error)) ([]TraceNode, error) {
	var spans []trace.Span
	for rows.Next() {
		sp, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: trace: %w", err)
		}
		spans = append(spans, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: trace: %w", err)
	}
	if len(spans) == 0 {
		return nil, ErrNotFound
	}
	return buildForest(spans), nil
}
