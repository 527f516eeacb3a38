package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

// order merges the structural errors with the checks, dropping checks at
// or below a path that already has a structural error (the value there was
// unusable, so a check of it only repeats the problem), and duplicates.
// The result is sorted in file order: by the position of the deepest node
// of each path that is in the file, problems about keys absent from the
// file last, and ties in the order they were found.
func order(root *yaml.Node, structural, checks validate.Errors) validate.Errors {
	bad := map[string]bool{}
	for _, e := range structural {
		bad[e.Path] = true
	}
	all := slices.Clone(structural)
	for _, e := range checks {
		if !underBad(e.Path, bad) {
			all = append(all, e)
		}
	}
	type located struct {
		err       validate.Error
		line, col int
	}
	ls := make([]located, 0, len(all))
	seen := map[validate.Error]bool{}
	for _, e := range all {
		if seen[e] {
			continue
		}
		seen[e] = true
		line, col := locate(root, e.Path)
		ls = append(ls, located{e, line, col})
	}
	slices.SortStableFunc(ls, func(a, b located) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	var errs validate.Errors
	for _, l := range ls {
		errs = append(errs, l.err)
	}
	return errs
}

// underBad reports whether path or one of its parents is in bad.
func underBad(path string, bad map[string]bool) bool {
	for {
		if bad[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = path[:max(strings.LastIndexAny(path, ".["), 0)]
	}
}

// locate returns the position of the deepest node along path that is in
// the tree below root: the key of a mapping entry, or a list item. A path
// whose first segment is not in the file is placed after everything.
func locate(root *yaml.Node, path string) (line, col int) {
	if root == nil {
		return math.MaxInt, 0
	}
	if path == "" {
		return root.Line, root.Column
	}
	line, col = math.MaxInt, 0
	n := root
	for _, seg := range segments(path) {
		n = resolveAlias(n)
		var next *yaml.Node
		switch {
		case seg.index >= 0 && n.Kind == yaml.SequenceNode:
			if seg.index < len(n.Content) {
				next = n.Content[seg.index]
				line, col = next.Line, next.Column
			}
		case seg.index < 0 && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; k.Value == seg.key && !isMerge(k) {
					next = n.Content[i+1]
					line, col = k.Line, k.Column
					break
				}
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line, col
}

// segment is one step of a path: a mapping key, or a list index (>= 0).
type segment struct {
	key   string
	index int
}

// segments splits a path such as "a.b[2].c" into its steps. A key that
// itself holds '.' or '[' is split too; locate then stops early.
func segments(path string) []segment {
	var segs []segment
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if i, err := strconv.Atoi(path[1:max(end, 1)]); end > 0 && err == nil && i >= 0 {
				segs = append(segs, segment{index: i})
				path = path[end+1:]
				continue
			}
			segs = append(segs, segment{key: path, index: -1})
			path = ""
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, segment{key: path[:end], index: -1})
			path = path[end:]
		}
	}
	return segs
}
