package actions

import (
	"context"

	"github.com/stagegate/stagegate/engine"
)

// logKind is the engine's built-in log action (engine.LogAction): a
// timeline entry on the item, message (default "entered stage X from Y").
var logKind = Kind{
	ActionKind: engine.LogKind(),
	Run: func(r *Runner, ctx context.Context, in engine.ActionInput) error {
		return r.logA.RunAction(ctx, in)
	},
}
