package a2a

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func task(id string) ownedID { return ownedID{agent: "a", kind: ownedTask, id: id} }

func TestOwnershipFirstClaimWins(t *testing.T) {
	t.Parallel()
	o := newOwnership(time.Hour, 10)
	tests := []struct {
		id, key string
		claimed bool
	}{
		{"t1", "alice", true},
		{"t1", "alice", true},
		{"t1", "bob", false},
		{"t2", "bob", true},
	}
	for _, tt := range tests {
		if got := o.claim(task(tt.id), tt.key); got != tt.claimed {
			t.Errorf("claim(%s, %s) = %v, want %v", tt.id, tt.key, got, tt.claimed)
		}
	}
	if !o.owns(task("t1"), "alice") || o.owns(task("t1"), "bob") || o.owns(task("t3"), "alice") {
		t.Error("owns disagrees with the claims")
	}
	// The same id under another agent or kind is a different thing.
	if !o.claim(ownedID{agent: "b", kind: ownedTask, id: "t1"}, "bob") || !o.claim(ownedID{agent: "a", kind: ownedContext, id: "t1"}, "bob") {
		t.Error("ids of other agents or kinds collide")
	}
}

func TestOwnershipExpires(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	o := newOwnership(time.Minute, 10)
	o.now = func() time.Time { return now }
	o.claim(task("t1"), "alice")
	now = now.Add(59 * time.Second)
	if !o.owns(task("t1"), "alice") {
		t.Fatal("expired early")
	}
	now = now.Add(time.Second)
	if o.owns(task("t1"), "alice") {
		t.Fatal("still owned after ttl")
	}
	if !o.claim(task("t2"), "bob") || o.len() != 1 {
		t.Fatalf("expired entries not reclaimed: len %d", o.len())
	}
}

func TestOwnershipIsBounded(t *testing.T) {
	t.Parallel()
	o := newOwnership(time.Hour, 100)
	for i := range 5000 {
		o.claim(task(fmt.Sprint(i)), "alice")
	}
	if o.len() != 100 {
		t.Fatalf("len = %d, want 100", o.len())
	}
	if o.owns(task("0"), "alice") || !o.owns(task("4999"), "alice") {
		t.Fatal("eviction is not oldest-first")
	}
	if len(o.order)-o.head != 100 || len(o.order) > 2200 {
		t.Fatalf("queue not compacted: %d entries, head %d", len(o.order), o.head)
	}
}

func TestOwnershipConcurrentClaimsHaveOneWinner(t *testing.T) {
	t.Parallel()
	o := newOwnership(time.Hour, 1000)
	var wg sync.WaitGroup
	wins := make(chan string, 64)
	for i := range 64 {
		wg.Go(func() {
			key := fmt.Sprint("key", i)
			if o.claim(task("contested"), key) {
				wins <- key
			}
		})
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d winners", n)
	}
}
