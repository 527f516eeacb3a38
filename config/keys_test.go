package config

import (
	"reflect"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Embedded is inlined into walkTarget.
type Embedded struct {
	Name string `yaml:"name"`
	Size int    `yaml:"size"`
}

type walkItem struct {
	ID    string        `yaml:"id"`
	Every time.Duration `yaml:"every"`
	Tags  []string      `yaml:"tags"`
}

type walkTarget struct {
	Embedded `yaml:",inline"`
	Items    []walkItem            `yaml:"items"`
	Nested   [][]walkItem          `yaml:"nested"`
	ByName   map[string]walkItem   `yaml:"by_name"`
	Labels   map[string]string     `yaml:"labels"`
	Ptr      *walkItem             `yaml:"ptr"`
	Flag     *bool                 `yaml:"flag"`
	Ratio    float64               `yaml:"ratio"`
	Count    uint8                 `yaml:"count"`
	Any      any                   `yaml:"any"`
	Skipped  string                `yaml:"-"`
	NoTag    string                // key "notag", as yaml.v3 does
	Custom   customValue           `yaml:"custom"`
	Opaque   map[string]any        `yaml:"opaque"`
	hidden   string                //nolint:unused // unexported: not a key, and the test checks that
	Inline   struct{ Deep string } `yaml:"inline"`
}

// customValue decodes itself: only "ok" is accepted.
type customValue string

func (c *customValue) UnmarshalYAML(n *yaml.Node) error {
	if n.Value != "ok" {
		return &yaml.TypeError{Errors: []string{"line 0: custom must be ok"}}
	}
	*c = customValue(n.Value)
	return nil
}

func TestWalker(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"all known", `
name: x
size: 3
items: [{id: a, every: 30s, tags: [t]}]
nested: [[{id: b}], []]
by_name: {one: {id: c}}
labels: {any-key: v, other: w}
ptr: {id: d}
flag: true
ratio: 1.5
count: 255
any: {whatever: [1, {deep: x}]}
notag: y
custom: ok
opaque: {k: {x: 1}}
inline: {deep: z}
`, nil},
		{"nulls fit anything", "items: ~\nptr:\nname: null\nby_name: {a: ~}", nil},
		{"unknown at top", "nmae: x\n", []string{"nmae: unknown key"}},
		{"skipped and hidden are unknown", "skipped: x\nhidden: y\n", []string{"skipped: unknown key", "hidden: unknown key"}},
		{"inline keys need no prefix", "embedded: {name: x}\n", []string{"embedded: unknown key"}},
		{"nested in slices", "items: [{id: a}, {id: b, idd: c}]\nnested: [[], [{x: 1}]]\n",
			[]string{"items[1].idd: unknown key", "nested[1][0].x: unknown key"}},
		{"in map values and pointers", "by_name: {one: {id: a, bad: 1}}\nptr: {oops: 1}\n",
			[]string{"by_name.one.bad: unknown key", "ptr.oops: unknown key"}},
		{"inline struct field", "inline: {deep: a, deeper: b}\n", []string{"inline.deeper: unknown key"}},
		{"scalar types", "size: big\nflag: maybe\nratio: x\ncount: 256\nitems: [{every: 3 days}, {every: 10}]\n",
			[]string{
				`size: must be an integer, not "big"`,
				`flag: must be true or false, not "maybe"`,
				`ratio: must be a number, not "x"`,
				`count: must be a non-negative integer, not "256"`,
				`items[0].every: must be a duration such as 30s, 15m or 720h, not "3 days"`,
				`items[1].every: must be a duration such as 30s, 15m or 720h, not "10"`,
			}},
		{"shapes", "items: {id: a}\nlabels: [a]\nname: [a]\nptr: x\nitems2: 1\n",
			[]string{
				"items: must be a list, not a mapping",
				"labels: must be a mapping, not a list",
				"name: must be a string, not a list",
				`ptr: must be a mapping, not "x"`,
				"items2: unknown key",
			}},
		{"custom unmarshaler", "custom: no\n", []string{"custom: line 0: custom must be ok"}},
		{"duplicate keys", "name: a\nname: b\nany: {k: 1, k: 2}\n",
			[]string{"name: key defined twice (lines 1 and 2)", "any.k: key defined twice (lines 3 and 3)"}},
		{"merge keys", "base: &b {id: a, every: 1m}\nitems: [{<<: *b, tags: [x]}, {<<: [*b], nope: 1}]\n",
			[]string{"base: unknown key", "items[1].nope: unknown key"}},
		{"bad merge", "items: [{<<: 5}]\n", []string{`items[0]: << must merge a mapping or a list of mappings, not "5"`}},
		{"aliases are checked where used", "any: &x {id: a, zzz: 1}\nptr: *x\n", []string{"ptr.zzz: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			var w walker
			w.walk("", doc.Content[0], reflect.TypeFor[walkTarget]())
			var got []string
			for _, e := range w.errs {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			// The walked tree always decodes: bad values were replaced.
			var v walkTarget
			if err := doc.Decode(&v); err != nil {
				t.Errorf("decode after walk: %v", err)
			}
		})
	}
}

func TestWalkerKeepsListPositions(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("items: [x, {id: b}, [1], {id: d}]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	var w walker
	w.walk("", doc.Content[0], reflect.TypeFor[walkTarget]())
	var v walkTarget
	if err := doc.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Items) != 4 || v.Items[1].ID != "b" || v.Items[3].ID != "d" {
		t.Errorf("items = %+v, want 4 with b at 1 and d at 3", v.Items)
	}
	if line, col := locate(doc.Content[0], "items[3].id"); line != 1 || col != 27 {
		t.Errorf("locate items[3].id = %d:%d, want 1:27", line, col)
	}
}

func TestWalkerExtend(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("name: a\nid: b\nsize: 1\nzz: 1\n"), &doc); err != nil {
		t.Fatal(err)
	}
	w := walker{extend: func(t reflect.Type, n *yaml.Node) []reflect.Type {
		return []reflect.Type{reflect.TypeFor[*walkItem]()}
	}}
	w.walk("", doc.Content[0], reflect.TypeFor[Embedded]())
	if got := w.errs.Error(); got != "zz: unknown key" {
		t.Errorf("errors %q, want only zz", got)
	}
}
