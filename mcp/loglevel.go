package mcp

import (
	"context"
	"sync"

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

// maxSessionLevelsPerKey bounds sessionLevels: sessions that are never
// deleted would otherwise keep their entries for good. Past it an arbitrary
// session of the same key goes, and is back at the default level; other
// keys' sessions are never touched.
const maxSessionLevelsPerKey = 10_000

// sessionLevels holds the level each 2025-11-25 session set with
// logging/setLevel. mcp-go keeps its own copy, but only for requests it
// dispatches; directCall reads this one. Entries are per key, because a
// session ID is not bound to the key that opened it.
type sessionLevels struct {
	mu    sync.Mutex
	byKey map[string]map[string]mcp.LoggingLevel // key ID -> session ID -> level
}

func (s *sessionLevels) set(keyID, session string, level mcp.LoggingLevel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey == nil {
		s.byKey = map[string]map[string]mcp.LoggingLevel{}
	}
	sessions := s.byKey[keyID]
	if sessions == nil {
		sessions = map[string]mcp.LoggingLevel{}
		s.byKey[keyID] = sessions
	}
	if _, ok := sessions[session]; !ok && len(sessions) >= maxSessionLevelsPerKey {
		for old := range sessions {
			delete(sessions, old)
			break
		}
	}
	sessions[session] = level
}

func (s *sessionLevels) get(keyID, session string) mcp.LoggingLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if level, ok := s.byKey[keyID][session]; ok {
		return level
	}
	return mcp.LoggingLevelError
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
