package a2a

import (
	"sync"
	"testing"
)

// mapOwners is an OwnerStore shared by the "replicas" of one test.
type mapOwners struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *mapOwners) Claim(agent, kind, id, keyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := agent + "\x00" + kind + "\x00" + id
	if owner, ok := s.m[k]; ok {
		return owner == keyID
	}
	s.m[k] = keyID
	return true
}

func (s *mapOwners) Owner(agent, kind, id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, ok := s.m[agent+"\x00"+kind+"\x00"+id]
	return owner, ok
}

func TestSharedOwnersAcrossReplicas(t *testing.T) {
	t.Parallel()
	store := &mapOwners{m: map[string]string{}}
	a, b := sharedOwners{store}, sharedOwners{store}
	task := ownedID{agent: "researcher", kind: ownedTask, id: "t1"}
	ctxID := ownedID{agent: "researcher", kind: ownedContext, id: "t1"}
	cases := []struct {
		name string
		ok   func() bool
		want bool
	}{
		{"A claims a new task", func() bool { return a.claim(task, "key_a") }, true},
		{"B sees A's key own it", func() bool { return b.owns(task, "key_a") }, true},
		{"B refuses another key", func() bool { return b.owns(task, "key_b") }, false},
		{"another key cannot claim it through B", func() bool { return b.claim(task, "key_b") }, false},
		{"a context id of the same value is separate", func() bool { return b.claim(ctxID, "key_b") }, true},
		{"another agent's task of the same id is separate", func() bool {
			return b.owns(ownedID{agent: "other", kind: ownedTask, id: "t1"}, "key_a")
		}, false},
	}
	for _, tc := range cases {
		if got := tc.ok(); got != tc.want {
			t.Fatalf("%s: got %v", tc.name, got)
		}
	}
}
