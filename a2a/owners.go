package a2a

// OwnerStore remembers which key owns each task and context id of each
// agent, for gateways that run as several replicas (a task created through
// one must be found through another). kind is "task" or "context". Deps.Owners
// nil keeps the in-memory store bounded by task_ttl and max_tasks.
type OwnerStore interface {
	// Claim records keyID as the owner unless the id has a live owner, and
	// reports whether keyID owns the id afterwards (the first claim wins). A
	// store that cannot answer must report false.
	Claim(agent, kind, id, keyID string) bool
	// Owner returns the live owner of the id, if any.
	Owner(agent, kind, id string) (string, bool)
}

// taskOwners is what a call needs from either store.
type taskOwners interface {
	claim(id ownedID, keyID string) bool
	owns(id ownedID, keyID string) bool
	len() int
}

var ownerKindNames = map[ownerKind]string{ownedTask: "task", ownedContext: "context"}

// sharedOwners adapts an OwnerStore.
type sharedOwners struct{ s OwnerStore }

func (o sharedOwners) claim(id ownedID, keyID string) bool {
	return o.s.Claim(id.agent, ownerKindNames[id.kind], id.id, keyID)
}

func (o sharedOwners) owns(id ownedID, keyID string) bool {
	owner, ok := o.s.Owner(id.agent, ownerKindNames[id.kind], id.id)
	return ok && owner == keyID
}

// len is 0: the shared store's entries are not this process's memory.
func (o sharedOwners) len() int { return 0 }
