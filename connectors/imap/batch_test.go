package imap

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
)

// batchIntake is testIntake with SubmitBatch, keeping the ids of each call.
type batchIntake struct {
	*testIntake
	mu    sync.Mutex
	calls [][]string
}

func (bi *batchIntake) SubmitBatch(ctx context.Context, evs []*normalize.Event) ([]connectors.Result, error) {
	bi.mu.Lock()
	bi.calls = append(bi.calls, eventIDs(evs))
	bi.mu.Unlock()
	return connectors.SubmitEach(ctx, bi.testIntake, evs)
}

func (bi *batchIntake) Calls() [][]string {
	bi.mu.Lock()
	defer bi.mu.Unlock()
	return slices.Clone(bi.calls)
}

// TestCatchUpOneSubmitBatch: the mails of one FETCH reach the intake in
// one SubmitBatch, except that the mails of one sender go in successive
// calls, in UID order; the cursor then covers them all.
func TestCatchUpOneSubmitBatch(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		var want []string
		for i := range 30 {
			id := fmt.Sprintf("many-%d@client.test", i)
			srv.Deliver(t, "INBOX", newMail(fmt.Sprintf("c%d@client.test", i), srv.User(), "Question", id))
			want = append(want, "mail:"+id)
			if i%10 == 0 {
				id := fmt.Sprintf("same-%d@client.test", i)
				srv.Deliver(t, "INBOX", newMail("same@client.test", srv.User(), "Again", id))
				want = append(want, "mail:"+id)
			}
		}
		in := &batchIntake{testIntake: &testIntake{st: openStore(t, storePath(t))}}
		cfg := serverConfig(t, srv, srv.Addr())
		cfg.Folders.Sent, cfg.Start = SentNone, "30d"
		r := startConnector(t, cfg, in.st, in)
		evs := in.waitEvents(t, len(want), 10*time.Second)
		r.waitState(t, 10*time.Second, StateIdle)
		r.stop()
		if got := eventIDs(evs); !sameSet(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		calls := in.Calls()
		var sizes []int
		for _, c := range calls {
			sizes = append(sizes, len(c))
		}
		if !slices.Equal(sizes, []int{31, 1, 1}) {
			t.Fatalf("SubmitBatch calls of %v events, want [31 1 1]", sizes)
		}
		for k, id := range []string{"mail:same-0@client.test", "mail:same-10@client.test", "mail:same-20@client.test"} {
			if !slices.Contains(calls[k], id) {
				t.Errorf("call %d lacks %s (one sender's mails go in UID order): %v", k, id, calls[k])
			}
		}
		st := r.c.Status()[0]
		if st.Counters.Events != int64(len(want)) {
			t.Errorf("status counts %d events, want %d", st.Counters.Events, len(want))
		}
		cur, ok, err := loadCursor(context.Background(), in.st, r.c.key("cursor", "INBOX"))
		if err != nil || !ok {
			t.Fatalf("cursor: %v %v", ok, err)
		}
		if cur.LastUID != uint32(len(want)) {
			t.Errorf("cursor at UID %d, want %d", cur.LastUID, len(want))
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
