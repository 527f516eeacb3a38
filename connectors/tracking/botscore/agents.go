package botscore

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/stagegate/stagegate/connectors/tracking/internal/gencache"
)

// builtinAgents is the maintained list of machine user agents; see the
// file's header for its format.
//
//go:embed data/agents.txt
var builtinAgents string

// agentRule is one line of the user-agent list.
type agentRule struct {
	weight  int
	name    string
	match   string // exact, prefix or contains
	pattern string // lower-cased
}

// CheckAgentRule reports whether line is a valid user-agent rule, as the
// config's scoring.agents takes them.
func CheckAgentRule(line string) error {
	_, err := parseAgentRule(line)
	return err
}

// parseAgentRule reads "<weight> <name> <exact|prefix|contains> <pattern>".
func parseAgentRule(line string) (agentRule, error) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return agentRule{}, fmt.Errorf("want \"<weight> <name> <exact|prefix|contains> <pattern>\", got %q", line)
	}
	w, err := strconv.Atoi(f[0])
	if err != nil || w < 0 || w > 100 {
		return agentRule{}, fmt.Errorf("weight %q: want 0 to 100", f[0])
	}
	switch f[2] {
	case "exact", "prefix", "contains":
	default:
		return agentRule{}, fmt.Errorf("match %q: want exact, prefix or contains", f[2])
	}
	// The pattern is the rest of the line after the third field.
	rest := strings.TrimSpace(line)
	for range 3 {
		rest = strings.TrimSpace(rest[strings.IndexAny(rest, " \t"):])
	}
	return agentRule{weight: w, name: f[1], match: f[2], pattern: strings.ToLower(rest)}, nil
}

// agentList matches user agents against rules. Real traffic repeats a
// few hundred user agents: results are cached.
type agentList struct {
	rules []agentRule
	seen  *gencache.Cache[string, []agentMatch]
}

// agentCacheSize bounds the cached user agents.
const agentCacheSize = 4096

// newAgentList parses the built-in list followed by extra rules.
func newAgentList(extra []string) (*agentList, error) {
	l := &agentList{seen: gencache.New[string, []agentMatch](agentCacheSize)}
	for n, line := range strings.Split(builtinAgents, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := parseAgentRule(line)
		if err != nil {
			return nil, fmt.Errorf("data/agents.txt line %d: %w", n+1, err)
		}
		l.rules = append(l.rules, r)
	}
	for i, line := range extra {
		r, err := parseAgentRule(line)
		if err != nil {
			return nil, fmt.Errorf("scoring.agents[%d]: %w", i, err)
		}
		l.rules = append(l.rules, r)
	}
	return l, nil
}

// agentMatch is a matched rule: its name and weight.
type agentMatch struct {
	name   string
	weight int
}

// match returns the matching rules, one per name, in list order.
func (l *agentList) match(ua string) []agentMatch {
	if ua == "" {
		return nil
	}
	if ms, ok := l.seen.Get(ua); ok {
		return ms
	}
	ms := l.scan(ua)
	l.seen.Add(strings.Clone(ua), ms)
	return ms
}

// scan matches ua against every rule.
func (l *agentList) scan(ua string) []agentMatch {
	lower := strings.ToLower(ua)
	var out []agentMatch
	for _, r := range l.rules {
		var ok bool
		switch r.match {
		case "exact":
			ok = lower == r.pattern
		case "prefix":
			ok = strings.HasPrefix(lower, r.pattern)
		default:
			ok = strings.Contains(lower, r.pattern)
		}
		if ok && !hasName(out, r.name) {
			out = append(out, agentMatch{name: r.name, weight: r.weight})
		}
	}
	return out
}

func hasName(ms []agentMatch, name string) bool {
	for _, m := range ms {
		if m.name == name {
			return true
		}
	}
	return false
}
