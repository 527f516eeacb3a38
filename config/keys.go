package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

var (
	anyType             = reflect.TypeFor[any]()
	durationType        = reflect.TypeFor[time.Duration]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walker compares a node tree with the Go type it will be decoded into, the
// way yaml.v3 decodes it: it reports unknown and duplicate keys and values
// that do not fit their field, each with its path. It also makes the tree
// safe to decode: a duplicate key is dropped and a bad value is replaced
// by its type's zero value (null for a pointer), so that decoding neither
// skips a whole mapping nor shifts list items.
type walker struct {
	errs validate.Errors
	// extend, when set, returns more types whose keys a mapping decoded
	// into the struct type t may also hold (anyType allows every key).
	extend func(t reflect.Type, n *yaml.Node) []reflect.Type

	active map[*yaml.Node]bool // mappings and lists being walked
	steps  int                 // values walked, against alias bombs
}

// maxSteps bounds the values walked, aliases expanded; a real config file
// holds a few thousand.
const maxSteps = 200_000

// errTooComplex is reported once when maxSteps is reached.
const errTooComplex = "too many values once aliases are expanded"

// fieldSet lists the keys a mapping may hold and the type of each value.
type fieldSet struct {
	fields map[string]reflect.Type
	rest   reflect.Type // type of the values of other keys; nil: none allowed
}

// addFields adds the keys of t: a struct's yaml fields (with ,inline ones
// flattened), or any key for a map or an interface.
func (fs *fieldSet) addFields(t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		fs.rest = t.Elem()
		return
	case reflect.Interface:
		fs.rest = t
		return
	case reflect.Struct:
	default:
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag) // yaml.v3 takes a bare tag as the key
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			fs.addFields(f.Type)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.fields[name] = f.Type
	}
}

// walk checks n against t; path is n's path in the file.
func (w *walker) walk(path string, n *yaml.Node, t reflect.Type) {
	if w.steps++; w.steps >= maxSteps {
		if w.steps == maxSteps {
			w.errs.Add("", errTooComplex)
		}
		return
	}
	alias := n
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if w.active[n] {
			w.errs.Add(path, "alias *%s refers to an anchor that contains it", alias.Value)
			*alias = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: alias.Line, Column: alias.Column}
			return
		}
		if w.active == nil {
			w.active = map[*yaml.Node]bool{}
		}
		w.active[n] = true
		defer delete(w.active, n)
	}
	orig := t
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isCustom(t, n) && t != actionType { // an action decodes its own settings: walk it
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.bad(path, n, orig, "%s", yamlMessage(err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		w.any(path, n)
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.bad(path, n, orig, "must be a mapping, not %s", shape(n))
			return
		}
		fs := fieldSet{fields: map[string]reflect.Type{}}
		fs.addFields(t)
		if w.extend != nil && t.Kind() == reflect.Struct {
			for _, x := range w.extend(t, n) {
				fs.addFields(x)
			}
		}
		w.mapping(path, n, &fs)
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			w.bad(path, n, orig, "must be a list, not %s", shape(n))
			return
		}
		for i, item := range n.Content {
			w.walk(validate.Index(path, i), item, t.Elem())
		}
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			w.bad(path, n, orig, "must be %s, not %s", describe(t), shape(n))
		} else if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.bad(path, n, orig, "must be %s, not %q", describe(t), n.Value)
		}
	}
}

// mapping checks the keys of the mapping n against fs and walks the values.
func (w *walker) mapping(path string, n *yaml.Node, fs *fieldSet) {
	first := map[string]int{} // key → line
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kept = append(kept, k, v)
		if isMerge(k) {
			if !w.merge(path, v, fs) {
				kept = kept[:len(kept)-2] // yaml.v3 fails on it
			}
			continue
		}
		kpath := validate.Join(path, k.Value)
		if line, dup := first[k.Value]; dup {
			w.errs.Add(kpath, "key defined twice (lines %d and %d)", line, k.Line)
			kept = kept[:len(kept)-2]
			continue
		}
		first[k.Value] = k.Line
		if t, ok := fs.fields[k.Value]; ok {
			w.walk(kpath, v, t)
		} else if fs.rest != nil {
			w.walk(kpath, v, fs.rest)
		} else {
			w.errs.Add(kpath, "unknown key")
		}
	}
	n.Content = kept
}

// merge checks the value of a "<<" merge key: a mapping or a list of them.
// It returns false when the value is neither.
func (w *walker) merge(path string, v *yaml.Node, fs *fieldSet) bool {
	v = resolveAlias(v)
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	ok := true
	for _, item := range items {
		if item = resolveAlias(item); item.Kind == yaml.MappingNode {
			w.mapping(path, item, fs)
		} else {
			w.errs.Add(path, "<< must merge a mapping or a list of mappings, not %s", shape(item))
			ok = false
		}
	}
	return ok
}

// any walks a value decoded into an interface, only to drop duplicate keys.
func (w *walker) any(path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		w.mapping(path, n, &fieldSet{rest: anyType})
	case yaml.SequenceNode:
		for i, item := range n.Content {
			w.walk(validate.Index(path, i), item, anyType)
		}
	}
}

// bad reports a value that does not fit into t and replaces it, keeping
// its position, with null for a pointer or else t's zero value (yaml.v3
// drops a list item when null does not fit).
func (w *walker) bad(path string, n *yaml.Node, t reflect.Type, format string, args ...any) {
	w.errs.Add(path, format, args...)
	line, col := n.Line, n.Column
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if t != base || isCustom(base, n) || n.Encode(reflect.Zero(t).Interface()) != nil {
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	n.Line, n.Column = line, col
}

// isCustom reports whether yaml.v3 decodes n into t with t's own method.
func isCustom(t reflect.Type, n *yaml.Node) bool {
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType) && n.Kind == yaml.ScalarNode
}

// describe names what a scalar of type t must be.
func describe(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 30s, 15m or 720h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	default:
		return "an integer"
	}
}

// shape describes a node for messages: "a list", "a mapping" or its value.
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}
