package mcp

import (
	"context"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// logLevelFor is the least severe log message the caller of a tools/call
// wants relayed, "" for none. A 2026-07-28 request names it in its _meta,
// and a server must not send log messages for a request that did not ask
// (SEP-2575); a name that is not a level asks for none. A 2025-11-25
// session sets it with logging/setLevel; until then it is error, mcp-go's
// default.
func (g *Gateway) logLevelFor(ctx context.Context, req mcp.CallToolRequest) mcp.LoggingLevel {
	if mcp.IsModernProtocol(req.Params.Meta.ProtocolVersion()) {
		if level := req.Params.Meta.LogLevel(); knownLevel(level) {
			return level
		}
		return ""
	}
	return g.logLevels.get(principalFrom(ctx).KeyID, req.Header.Get(server.HeaderKeySessionID))
}

// knownLevel reports whether l is one of the protocol's eight levels: each
// is at least debug, and mcp-go ranks no other name.
func knownLevel(l mcp.LoggingLevel) bool { return l.ShouldSendTo(mcp.LoggingLevelDebug) }

// sessionLevelIdle is how long a session's level outlives its last use.
// Clients often leave without the DELETE that ends a session, and their
// levels would otherwise stay for good. A day, so that a client idling
// between calls with only its GET stream open keeps its level.
const sessionLevelIdle = 24 * time.Hour

// maxSessionLevelsPerKey bounds sessionLevels for a key that opens sessions
// faster than they idle out. Past it the key's least recently used session
// goes, and is back at the default level; other keys' sessions are never
// touched.
const maxSessionLevelsPerKey = 10_000

// sessionLevels holds the level each 2025-11-25 session set with
// logging/setLevel. mcp-go keeps its own copy, but only for requests it
// dispatches; directCall reads this one. Entries are per key, because a
// session ID is not bound to the key that opened it.
type sessionLevels struct {
	mu        sync.Mutex
	byKey     map[string]map[string]*sessionLevel // key ID -> session ID -> level
	lastSweep time.Time
	now       func() time.Time // time.Now; tests move it
}

type sessionLevel struct {
	level mcp.LoggingLevel
	used  time.Time
}

func (s *sessionLevels) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *sessionLevels) set(keyID, session string, level mcp.LoggingLevel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if s.byKey == nil {
		s.byKey = map[string]map[string]*sessionLevel{}
	}
	// Only set adds entries, so sweeping here bounds the table to the
	// sessions used within sessionLevelIdle.
	if now.Sub(s.lastSweep) >= sessionLevelIdle/2 {
		s.sweep(now)
	}
	sessions := s.byKey[keyID]
	if sessions == nil {
		sessions = map[string]*sessionLevel{}
		s.byKey[keyID] = sessions
	}
	if e := sessions[session]; e != nil {
		e.level, e.used = level, now
		return
	}
	if len(sessions) >= maxSessionLevelsPerKey {
		evictLeastRecent(sessions)
	}
	sessions[session] = &sessionLevel{level: level, used: now}
}

func (s *sessionLevels) sweep(now time.Time) {
	s.lastSweep = now
	for keyID, sessions := range s.byKey {
		for id, e := range sessions {
			if now.Sub(e.used) >= sessionLevelIdle {
				delete(sessions, id)
			}
		}
		if len(sessions) == 0 {
			delete(s.byKey, keyID)
		}
	}
}

// evictLeastRecent drops the session used longest ago. It scans the key's
// sessions, which happens only while that key is at its cap.
func evictLeastRecent(sessions map[string]*sessionLevel) {
	var oldestID string
	var oldest *sessionLevel
	for id, e := range sessions {
		if oldest == nil || e.used.Before(oldest.used) {
			oldestID, oldest = id, e
		}
	}
	delete(sessions, oldestID)
}

func (s *sessionLevels) get(keyID, session string) mcp.LoggingLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byKey[keyID][session]
	if e == nil {
		return mcp.LoggingLevelError
	}
	now := s.clock()
	if now.Sub(e.used) >= sessionLevelIdle {
		delete(s.byKey[keyID], session)
		return mcp.LoggingLevelError
	}
	e.used = now
	return e.level
}

func (s *sessionLevels) forget(keyID, session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sessions := s.byKey[keyID]; sessions != nil {
		delete(sessions, session)
		if len(sessions) == 0 {
			delete(s.byKey, keyID)
		}
	}
}
