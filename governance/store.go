package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is one persisted runtime-created key or team. Data is JSON.
type Record struct {
	Kind      string
	ID        string
	Data      []byte
	UpdatedAt time.Time
}

// Store persists runtime-created keys and teams (the embedded store in
// production). Only the HMAC of a key is ever written.
type Store interface {
	PutRecord(ctx context.Context, kind, id string, data []byte) error
	DeleteRecord(ctx context.Context, kind, id string) error
	ListRecords(ctx context.Context, kind string) ([]Record, error)
}

// SpendSource answers how much a key or team spent since a time, in
// nano-USD; scope is "key" (id = KeyID) or "team" (id = team name).
type SpendSource interface {
	SpendSince(ctx context.Context, scope string, id string, since time.Time) (int64, error)
}

// Record kinds used in the Store.
const (
	RecordKindKey  = "governance.key"
	RecordKindTeam = "governance.team"
)

// keyRecord is a key as stored and as compiled: runtime keys are persisted in
// this shape, config keys are converted into it.
type keyRecord struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Hash      string       `json:"hash,omitempty"`
	Team      string       `json:"team,omitempty"`
	User      string       `json:"user,omitempty"`
	Expires   string       `json:"expires,omitempty"`
	Disabled  bool         `json:"disabled,omitempty"`
	Allow     ACLConfig    `json:"allow"`
	Deny      ACLConfig    `json:"deny"`
	Limits    LimitsConfig `json:"limits"`
	Budget    BudgetConfig `json:"budget"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

type teamRecord struct {
	TeamConfig
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (g *Governor) loadRecords(ctx context.Context) error {
	keys, err := g.store.ListRecords(ctx, RecordKindKey)
	if err != nil {
		return fmt.Errorf("governance: load runtime keys: %w", err)
	}
	teams, err := g.store.ListRecords(ctx, RecordKindTeam)
	if err != nil {
		return fmt.Errorf("governance: load runtime teams: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setRecords(keys, teams)
	return nil
}

// setRecords replaces the runtime keys and teams with the stored ones.
// Callers hold g.mu.
func (g *Governor) setRecords(keys, teams []Record) {
	g.runtimeKeys = make(map[string]keyRecord, len(keys))
	g.runtimeTeams = make(map[string]teamRecord, len(teams))
	for _, r := range teams {
		var t teamRecord
		if err := json.Unmarshal(r.Data, &t); err != nil || t.validate("team", map[string]bool{t.Org: true}) != nil || t.Name != r.ID {
			g.log.Warn("skipping unreadable runtime team record", "id", r.ID)
			continue
		}
		g.runtimeTeams[t.Name] = t
	}
	for _, r := range keys {
		var k keyRecord
		if err := json.Unmarshal(r.Data, &k); err != nil || k.ID != r.ID || k.validate() != nil {
			g.log.Warn("skipping unreadable runtime key record", "id", r.ID)
			continue
		}
		g.runtimeKeys[k.ID] = k
	}
}

// validate checks a runtime key record with the same rules as a config key;
// whether its team exists is decided when the snapshot is built.
func (k *keyRecord) validate() error {
	kc := KeyConfig{Name: k.Name, KeyHash: k.Hash, Team: k.Team, User: k.User, Expires: k.Expires,
		Allow: k.Allow, Deny: k.Deny, Limits: k.Limits, Budget: k.Budget}
	return kc.validate("key", map[string]bool{k.Team: true})
}

// Precondition is what a write expects to find in a GuardedStore.
type Precondition uint8

const (
	// PutNew writes only when no record of the kind has the id.
	PutNew Precondition = iota + 1
	// PutExisting writes only when a record of the kind has the id.
	PutExisting
)

// Errors of a GuardedStore write whose check failed; nothing was written.
var (
	ErrRecordExists = errors.New("governance: a record with this id exists")
	ErrRecordGone   = errors.New("governance: no record with this id exists")
	ErrNameTaken    = errors.New("governance: another record has this name")
	ErrParentGone   = errors.New("governance: the record this one belongs to does not exist")
)

// RecordInUseError refuses a GuardedStore delete: the records named Names
// still refer to the one to delete.
type RecordInUseError struct{ Names []string }

func (e *RecordInUseError) Error() string {
	return "governance: record still referred to by " + strings.Join(e.Names, ", ")
}

// RecordRef names one record.
type RecordRef struct{ Kind, ID string }

// Reference is a JSON field of one kind of record that holds the id of
// another record: a key's "team".
type Reference struct{ Kind, Field string }

// Guard is what a GuardedStore write checks, atomically with it.
type Guard struct {
	Pre Precondition
	// Name, when set, must be no other record's of the kind (its JSON "name" field).
	Name string
	// Parent, when set, must exist: the runtime team a key belongs to.
	Parent RecordRef
}

// GuardedStore is a Store that several replicas write. A replica checks an
// admin change against its own copy of the records, which lags another
// replica's change until its notification arrives; a GuardedStore repeats
// the checks in the store, atomically with the write, so two replicas
// cannot both create the same team or two keys of one name, nor put a key
// in a team another replica is deleting.
type GuardedStore interface {
	Store
	// PutRecordIf writes like PutRecord if guard holds. Otherwise it writes
	// nothing and returns ErrRecordExists, ErrRecordGone, ErrNameTaken or
	// ErrParentGone.
	PutRecordIf(ctx context.Context, kind, id string, data []byte, guard Guard) error
	// DeleteRecordIf deletes like DeleteRecord unless a record of kind
	// ref.Kind holds id in its field ref.Field; then it deletes nothing and
	// returns a *RecordInUseError.
	DeleteRecordIf(ctx context.Context, kind, id string, ref Reference) error
}

// putRecord persists a runtime key or team. In a GuardedStore the write
// holds only under guard; a store without guards is written by this
// process alone, whose g.mu already serialises the checks.
func (g *Governor) putRecord(kind, id string, v any, guard Guard) error {
	if g.store == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if gs, ok := g.store.(GuardedStore); ok {
		err = gs.PutRecordIf(ctx, kind, id, data, guard)
	} else {
		err = g.store.PutRecord(ctx, kind, id, data)
	}
	if err != nil {
		return err
	}
	if k, ok := v.(keyRecord); ok {
		return g.indexKeyHash(ctx, k)
	}
	return nil
}

// putKey persists a runtime key; a key of a runtime team needs the team to
// still exist in the store, which another replica may have just emptied and
// deleted. Config teams exist on every replica.
func (g *Governor) putKey(rec keyRecord, pre Precondition) error {
	guard := Guard{Pre: pre, Name: rec.Name}
	if _, runtime := g.runtimeTeams[rec.Team]; runtime {
		guard.Parent = RecordRef{Kind: RecordKindTeam, ID: rec.Team}
	}
	return g.putRecord(RecordKindKey, rec.ID, rec, guard)
}

func (g *Governor) deleteRecord(kind, id string) error {
	if g.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return g.store.DeleteRecord(ctx, kind, id)
}

// deleteTeamRecord deletes a runtime team's record; in a GuardedStore only
// while no key in the store, including one another replica just created,
// belongs to it.
func (g *Governor) deleteTeamRecord(name string) error {
	if gs, ok := g.store.(GuardedStore); ok {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		return gs.DeleteRecordIf(ctx, RecordKindTeam, name, Reference{Kind: RecordKindKey, Field: "team"})
	}
	return g.deleteRecord(RecordKindTeam, name)
}

// RebuildSpend loads the current period's spend of every key, team and org
// from storage, so budgets survive restarts. Org spend is the sum of its
// teams'. Call it at start-up, before serving; it replaces in-memory spend.
// src is kept: a change that moves a budget's window seeds it the same way
// (see publish).
func (g *Governor) RebuildSpend(ctx context.Context, src SpendSource) error {
	g.mu.Lock()
	g.spendSrc = src
	g.mu.Unlock()
	s := g.state.Load()
	seeds, err := g.loadSpend(ctx, src, s, func(budgetOwner) bool { return true })
	if err != nil {
		return err
	}
	for _, sd := range seeds {
		sd.counter.SetSpent(sd.period, sd.spent)
	}
	g.log.Info("governance spend rebuilt", "keys", len(s.byID), "teams", len(s.teams), "orgs", len(s.orgs))
	return nil
}

// spendSeed is one budget's spend in its current window, as storage has it.
type spendSeed struct {
	counter SpendCounter
	period  int64
	spent   int64
}

// budgetOwner names a key (by id), a team or an org of a snapshot.
type budgetOwner struct {
	scope Scope
	name  string
}

// loadSpend asks storage for the spend of the budgets of s that want
// selects, each in its own current window.
func (g *Governor) loadSpend(ctx context.Context, src SpendSource, s *snapshot, want func(budgetOwner) bool) ([]spendSeed, error) {
	now := g.now()
	var seeds []spendSeed
	since := func(scope Scope, id, what string, period int64) (int64, error) {
		spent, err := src.SpendSince(ctx, scope.String(), id, time.Unix(period, 0).UTC())
		if err != nil {
			g.metrics.rebuildErrors.Inc()
			return 0, fmt.Errorf("governance: spend of %s: %w", what, err)
		}
		return spent, nil
	}
	for _, name := range sortedKeys(s.teams) {
		if t := s.teams[name]; want(budgetOwner{ScopeTeam, name}) {
			period := t.budget.period.start(now)
			spent, err := since(ScopeTeam, name, fmt.Sprintf("team %q", name), period)
			if err != nil {
				return nil, err
			}
			seeds = append(seeds, spendSeed{t.spend, period, spent})
		}
	}
	for _, name := range sortedKeys(s.orgs) {
		o := s.orgs[name]
		if !want(budgetOwner{ScopeOrg, name}) {
			continue
		}
		// The sum of its teams' in the org's own window: teams may use
		// other periods than their org.
		period := o.budget.period.start(now)
		var total int64
		for _, tn := range sortedKeys(s.teams) {
			if s.teams[tn].org != o {
				continue
			}
			spent, err := since(ScopeTeam, tn, fmt.Sprintf("team %q for org %q", tn, name), period)
			if err != nil {
				return nil, err
			}
			total += spent
		}
		seeds = append(seeds, spendSeed{o.spend, period, total})
	}
	for _, id := range sortedKeys(s.byID) {
		if e := s.byID[id]; want(budgetOwner{ScopeKey, id}) {
			period := e.budget.period.start(now)
			spent, err := since(ScopeKey, id, fmt.Sprintf("key %q", e.rec.Name), period)
			if err != nil {
				return nil, err
			}
			seeds = append(seeds, spendSeed{e.spend, period, spent})
		}
	}
	return seeds, nil
}

// publish makes s the live snapshot (g.mu held). A budget a change gave
// another window (another period, or a budget where there was none) has its
// spend in that window seeded from storage, as at start-up: its counter
// would otherwise start the window at zero, and a key that had spent its
// month would spend it again. Storage is asked before the swap, and the
// counters set just before it, so no call sees the new window empty.
func (g *Governor) publish(s *snapshot) {
	old := g.state.Load()
	if old != nil && g.spendSrc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		seeds, err := g.loadSpend(ctx, g.spendSrc, s, func(b budgetOwner) bool {
			switch b.scope {
			case ScopeTeam:
				was := old.teams[b.name]
				return was != nil && was.budget.period != s.teams[b.name].budget.period
			case ScopeOrg:
				was := old.orgs[b.name]
				return was != nil && was.budget.period != s.orgs[b.name].budget.period
			default:
				was := old.byID[b.name]
				return was != nil && was.budget.period != s.byID[b.name].budget.period
			}
		})
		cancel()
		if err != nil {
			g.log.Error("governance: spend of a budget with a new period not loaded; it counts from zero", "err", err)
		}
		for _, sd := range seeds {
			sd.counter.SetSpent(sd.period, sd.spent)
		}
	}
	g.state.Store(s)
}
