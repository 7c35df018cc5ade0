package governance

import (
	"strings"
)

// Kind is what a request targets.
type Kind string

const (
	KindModel Kind = "model"
	KindTool  Kind = "tool"
	KindAgent Kind = "agent"
)

const numKinds = 3

func (k Kind) index() int {
	switch k {
	case KindModel:
		return 0
	case KindTool:
		return 1
	case KindAgent:
		return 2
	}
	return -1
}

var kindLists = [numKinds]string{"models", "tools", "agents"}

// Decision is the outcome of Authorize. Rule names the rule that decided,
// e.g. `key.deny.tools["weather__*"]`, for logs and the admin API; it is not
// meant for callers' error messages.
type Decision struct {
	Allowed bool
	Rule    string
	kind    Kind
}

// Err is nil when allowed, else a Forbidden *Error whose message says nothing
// about whether the target exists.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	msg := "not allowed"
	if d.kind.index() >= 0 {
		msg = string(d.kind) + " not allowed for this key"
	}
	return &Error{Kind: Forbidden, Rule: "acl:" + d.Rule, Message: msg}
}

// glob is a compiled pattern where `*` matches any run of characters
// (including `/`, which model names contain). Matching is case-sensitive so the
// name decided on is exactly the name an upstream acts on.
type glob struct {
	parts []string // the literal text between the stars
	rule  string
	// literal counts non-star characters; more literal text = more specific.
	literal int
}

func compileGlob(p, rule string) glob {
	return glob{parts: strings.Split(p, "*"), rule: rule, literal: len(p) - strings.Count(p, "*")}
}

func (g *glob) match(s string) bool {
	if len(g.parts) == 1 {
		return s == g.parts[0]
	}
	first, last := g.parts[0], g.parts[len(g.parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range g.parts[1 : len(g.parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// nameList is one allow or deny list: exact names in a map, globs scanned.
type nameList struct {
	exact map[string]string // name -> rule
	globs []glob
	set   bool // a non-empty list was given
}

func compileList(names []string, rulePrefix string) nameList {
	l := nameList{set: len(names) > 0}
	for _, n := range names {
		rule := rulePrefix + "[" + quote(n) + "]"
		if !strings.Contains(n, "*") {
			if l.exact == nil {
				l.exact = make(map[string]string, len(names))
			}
			l.exact[n] = rule
			continue
		}
		l.globs = append(l.globs, compileGlob(n, rule))
	}
	return l
}

func (l *nameList) match(name string) (string, bool) {
	if r, ok := l.exact[name]; ok {
		return r, true
	}
	for i := range l.globs {
		if l.globs[i].match(name) {
			return l.globs[i].rule, true
		}
	}
	return "", false
}

// acl is one level's (key or team) compiled allow and deny lists per kind.
type acl struct {
	allow, deny [numKinds]nameList
	noMatch     [numKinds]string // the rule reported when an allow list misses
}

func compileACL(level string, allow, deny ACLConfig) acl {
	var a acl
	al := [numKinds][]string{allow.Models, allow.Tools, allow.Agents}
	dl := [numKinds][]string{deny.Models, deny.Tools, deny.Agents}
	for i := range numKinds {
		a.allow[i] = compileList(al[i], level+".allow."+kindLists[i])
		a.deny[i] = compileList(dl[i], level+".deny."+kindLists[i])
		a.noMatch[i] = level + ".allow." + kindLists[i] + " (no match)"
	}
	return a
}

func quote(s string) string { return `"` + s + `"` }

const (
	ruleAdmin        = "admin key"
	ruleDefaultAllow = "default allow (no list given)"
	ruleUnknownKind  = "unknown kind"
	ruleNoPrincipal  = "no principal"
)

// Authorize decides whether p may call the model, tool or agent called name.
// A deny match at any level wins; then every level that gives an allow list
// (team and key) must match. Levels without lists allow everything.
func (g *Governor) Authorize(p *Principal, kind Kind, name string) Decision {
	d := authorize(p, kind, name)
	if !d.Allowed {
		g.metrics.forbidden[kindMetricIndex(kind)].Inc()
	}
	return d
}

func authorize(p *Principal, kind Kind, name string) Decision {
	ki := kind.index()
	switch {
	case p == nil || p.entry == nil:
		return Decision{Rule: ruleNoPrincipal, kind: kind}
	case ki < 0:
		return Decision{Rule: ruleUnknownKind, kind: kind}
	case p.Admin:
		return Decision{Allowed: true, Rule: ruleAdmin, kind: kind}
	}
	e := p.entry
	levels := [2]*acl{&e.acl, nil}
	n := 1
	if e.team != nil {
		levels[1] = &e.team.acl
		n = 2
	}
	for _, a := range levels[:n] {
		if rule, ok := a.deny[ki].match(name); ok {
			return Decision{Rule: rule, kind: kind}
		}
	}
	rule := ruleDefaultAllow
	// Walk team before key so the key's (more specific) allow rule is reported.
	for i := n - 1; i >= 0; i-- {
		a := levels[i]
		if !a.allow[ki].set {
			continue
		}
		r, ok := a.allow[ki].match(name)
		if !ok {
			return Decision{Rule: a.noMatch[ki], kind: kind}
		}
		rule = r
	}
	return Decision{Allowed: true, Rule: rule, kind: kind}
}
