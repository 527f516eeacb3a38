package actions

import (
	"context"

	"github.com/stagegate/stagegate/engine"
)

// Kind is one action type: what the engine and the config loader know of
// it (its settings and whether it takes a timeout) and how the Runner runs
// one attempt. Each type is one file of this package and one entry of
// kinds.
type Kind struct {
	engine.ActionKind
	Run func(r *Runner, ctx context.Context, in engine.ActionInput) error
}

// newKind builds a Kind from typed parts: S is the settings type (a
// struct, used as *S), run gets the action's settings already asserted.
func newKind[S any, PS interface {
	*S
	engine.ActionSettings
}](timeout bool, run func(r *Runner, ctx context.Context, in engine.ActionInput, s PS) error) Kind {
	return Kind{
		ActionKind: engine.ActionKind{NewSettings: func() engine.ActionSettings { return PS(new(S)) }, Timeout: timeout},
		Run: func(r *Runner, ctx context.Context, in engine.ActionInput) error {
			s, ok := in.Action.Settings.(PS)
			if !ok {
				s = PS(new(S)) // a spec built in code without settings
			}
			return run(r, ctx, in, s)
		},
	}
}

// kinds maps each action type to its Kind; wiring is explicit.
var kinds = map[string]Kind{
	"log":             logKind,
	"webhook":         webhookKind,
	"bitrix24":        bitrix24Kind,
	"set_field":       setFieldKind,
	"set_responsible": setResponsibleKind,
	"send_email":      sendEmailKind,
}

// Kinds lists the action types a Runner knows, for the engine and the
// config loader.
func Kinds() map[string]engine.ActionKind {
	out := make(map[string]engine.ActionKind, len(kinds))
	for t, k := range kinds {
		out[t] = k.ActionKind
	}
	return out
}
