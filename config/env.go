package config

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces ${NAME} references in every scalar value below n with
// the variable's value, in place, before anything is decoded. Mapping keys
// are left alone, and so are aliases (their anchor is expanded where it is
// defined). Problems are added to errs with the path of the value.
func expandEnv(n *yaml.Node, path string, getenv func(string) (string, bool), errs *validate.Errors) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandEnv(c, path, getenv, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			vpath := validate.Join(path, k.Value)
			if isMerge(k) {
				vpath = path
			}
			expandEnv(v, vpath, getenv, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, validate.Index(path, i), getenv, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, problems := expandString(n.Value, getenv)
		for _, p := range problems {
			errs.Add(path, "%s", p)
		}
		n.Value = v
		if n.Style == 0 {
			// A plain scalar is typed by its content: resolve it again
			// from the expanded value ("${PORT}" may become an integer),
			// but keep a value such as "null" or "~" a string.
			n.Tag = ""
			if v != "" && n.ShortTag() == "!!null" {
				n.Style = yaml.DoubleQuotedStyle
			}
		}
	}
}

// expandString replaces each ${NAME} in s with the value of the variable
// NAME; "$${" stands for a literal "${". A variable that is set but empty
// expands to nothing; an undefined one is a problem.
func expandString(s string, getenv func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var problems []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				problems = append(problems, `unterminated "${" (write "$${" for a literal "${")`)
				b.WriteString(s[i:])
				return b.String(), problems
			}
			name := s[i+2 : i+2+end]
			i += end + 3
			if !envName.MatchString(name) {
				problems = append(problems, fmt.Sprintf("invalid environment variable name %q", name))
				continue
			}
			v, ok := getenv(name)
			if !ok {
				problems = append(problems, "undefined environment variable "+name)
				continue
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), problems
}

// resolveAlias follows aliases to the node they name.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an empty or null scalar (or a zero node).
func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isMerge reports whether the mapping key k is a "<<" merge key.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// mappingValue returns the value of key in the mapping n (nil if absent),
// with aliases followed.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && !isMerge(n.Content[i]) {
			return resolveAlias(n.Content[i+1])
		}
	}
	return nil
}

// scalarValue is the value of key in the mapping n when it is a scalar.
func scalarValue(n *yaml.Node, key string) string {
	if v := mappingValue(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}
