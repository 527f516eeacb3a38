package actions

import (
	"context"
	"errors"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/validate"
)

// SetResponsible are the settings of set_responsible: the user, a template
// over the action's data.
type SetResponsible struct {
	User string `yaml:"user" json:"user,omitempty"`
}

// Validate implements engine.ActionSettings.
func (s *SetResponsible) Validate(string) validate.Errors {
	var errs validate.Errors
	if s.User == "" {
		errs.Add("user", "required")
	}
	engine.CheckTemplate(&errs, "user", s.User)
	return errs
}

var setResponsibleKind = newKind(false, (*Runner).runSetResponsible)

// runSetResponsible makes the action's user (a template) responsible for
// the item and records it in the timeline, once per stage entry.
func (r *Runner) runSetResponsible(ctx context.Context, in engine.ActionInput, s *SetResponsible) error {
	user, err := r.render("user", s.User, in.Data)
	if err != nil {
		return err
	}
	if user == "" {
		return engine.Permanent(errors.New("set_responsible: the user template gave an empty name"))
	}
	return r.change(ctx, in, engine.ItemChange{Responsible: user}, "responsible set to "+user)
}
