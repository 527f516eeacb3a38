// Package group is the collecting half of a group commit: a single writer
// takes the first request that arrives and every request queued behind it
// at that moment, and serves them all with one write (one bbolt
// transaction and fsync, one Redis pipeline). An idle writer serves a lone
// request at once, so grouping costs no latency.
package group

// Collect returns first followed by the requests already queued on ch, up
// to max in all, appended to buf[:0]. It never waits for a request that
// has not arrived; a closed ch ends the collection early.
func Collect[T any](ch <-chan T, first T, max int, buf []T) []T {
	g := append(buf[:0], first)
	for len(g) < max {
		select {
		case r, ok := <-ch:
			if !ok {
				return g
			}
			g = append(g, r)
		default:
			return g
		}
	}
	return g
}
