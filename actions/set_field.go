package actions

import (
	"context"
	"fmt"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/validate"
)

// SetField are the settings of set_field: the item field and its value, a
// template over the action's data.
type SetField struct {
	Field string `yaml:"field" json:"field,omitempty"`
	Value string `yaml:"value" json:"value,omitempty"`
}

// Validate implements engine.ActionSettings.
func (s *SetField) Validate(string) validate.Errors {
	var errs validate.Errors
	if s.Field == "" {
		errs.Add("field", "required")
	}
	engine.CheckTemplate(&errs, "value", s.Value)
	return errs
}

var setFieldKind = newKind(false, (*Runner).runSetField)

// runSetField sets an item field to the action's value (a template over
// the action's data) and records it in the timeline, once per stage entry.
func (r *Runner) runSetField(ctx context.Context, in engine.ActionInput, s *SetField) error {
	v, err := r.render("value", s.Value, in.Data)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("set field %s to %q", s.Field, v)
	return r.change(ctx, in, engine.ItemChange{Set: map[string]string{s.Field: v}}, msg)
}
