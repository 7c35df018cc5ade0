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
// (SEP-2575). A 2025-11-25 session sets it with logging/setLevel; until
// then it is error, mcp-go's default.
func (g *Gateway) logLevelFor(ctx context.Context, req mcp.CallToolRequest) mcp.LoggingLevel {
	if mcp.IsModernProtocol(req.Params.Meta.ProtocolVersion()) {
		return req.Params.Meta.LogLevel()
	}
	return g.logLevels.get(principalFrom(ctx).KeyID, req.Header.Get(server.HeaderKeySessionID))
}

// maxSessionLevels bounds sessionLevels: sessions that are never deleted
// would otherwise keep their entries for good. Past it an arbitrary entry
// goes, and that session is back at the default level.
const maxSessionLevels = 100_000

// sessionLevels holds the level each 2025-11-25 session set with
// logging/setLevel. mcp-go keeps its own copy, but only for requests it
// dispatches; directCall reads this one. Entries are per key, because a
// session ID is not bound to the key that opened it.
type sessionLevels struct {
	mu     sync.Mutex
	levels map[sessionOfKey]mcp.LoggingLevel
}

type sessionOfKey struct{ keyID, session string }

func (s *sessionLevels) set(keyID, session string, level mcp.LoggingLevel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.levels == nil {
		s.levels = map[sessionOfKey]mcp.LoggingLevel{}
	}
	k := sessionOfKey{keyID, session}
	if _, ok := s.levels[k]; !ok && len(s.levels) >= maxSessionLevels {
		for old := range s.levels {
			delete(s.levels, old)
			break
		}
	}
	s.levels[k] = level
}

func (s *sessionLevels) get(keyID, session string) mcp.LoggingLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if level, ok := s.levels[sessionOfKey{keyID, session}]; ok {
		return level
	}
	return mcp.LoggingLevelError
}

func (s *sessionLevels) forget(keyID, session string) {
	s.mu.Lock()
	delete(s.levels, sessionOfKey{keyID, session})
	s.mu.Unlock()
}
