package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// waitMsg is how long the broadcast tests wait for a message.
const waitMsg = 5 * time.Second

func testBroadcast(t *testing.T, open Opener) {
	t.Run("Deliver", func(t *testing.T) {
		s := open(t)
		ch := mustSubscribe(t, s, t.Context(), "chat/1")
		publish(t, s, "chat/1", "hello \x00\xff")
		expectMsg(t, ch, "hello \x00\xff")
		publish(t, s, "chat/1", "again")
		expectMsg(t, ch, "again")
	})

	t.Run("TwoSubscribers", func(t *testing.T) {
		s := open(t)
		a := mustSubscribe(t, s, t.Context(), "chat/1")
		b := mustSubscribe(t, s, t.Context(), "chat/1")
		publish(t, s, "chat/1", "hello")
		expectMsg(t, a, "hello")
		expectMsg(t, b, "hello")
	})

	t.Run("CancelCloses", func(t *testing.T) {
		s := open(t)
		ctx, cancel := context.WithCancel(t.Context())
		ch := mustSubscribe(t, s, ctx, "chat/1")
		other := mustSubscribe(t, s, t.Context(), "chat/1")
		cancel()
		timeout := time.After(waitMsg)
		for open := true; open; {
			select {
			case _, open = <-ch:
			case <-timeout:
				t.Fatal("channel still open after its context was canceled")
			}
		}
		publish(t, s, "chat/1", "still here") // the other subscriber lives on
		expectMsg(t, other, "still here")
	})

	t.Run("TopicsSeparate", func(t *testing.T) {
		s := open(t)
		a := mustSubscribe(t, s, t.Context(), "chat/a")
		b := mustSubscribe(t, s, t.Context(), "chat/b")
		publish(t, s, "chat/a", "for a")
		expectMsg(t, a, "for a")
		// Published later on one server: were b subscribed to chat/a, it
		// would see "for a" first.
		publish(t, s, "chat/b", "for b")
		expectMsg(t, b, "for b")
		publish(t, s, "chat/nobody", "lost") // no subscriber: not an error
	})

	t.Run("SlowSubscriber", func(t *testing.T) {
		s := open(t)
		mustSubscribe(t, s, t.Context(), "chat/1") // never read
		fast := mustSubscribe(t, s, t.Context(), "chat/1")
		got := make(chan string, 1)
		go func() {
			for m := range fast {
				if string(m) == "last" {
					got <- "last"
					return
				}
			}
		}()
		ctx, cancel := contextWithTimeout(t, 10*time.Second)
		defer cancel()
		for i := range 500 {
			if err := s.Publish(ctx, "chat/1", fmt.Appendf(nil, "msg %d", i)); err != nil {
				t.Fatalf("Publish %d with a subscriber that does not read: %v", i, err)
			}
		}
		// The fast reader may have lost messages too; "last" is repeated
		// until it arrives.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			publish(t, s, "chat/1", "last")
			select {
			case <-got:
				return
			case <-tick.C:
			case <-ctx.Done():
				t.Fatal("a reading subscriber got nothing while another did not read")
			}
		}
	})
}

// mustSubscribe subscribes to topic for as long as ctx lasts.
func mustSubscribe(t *testing.T, s store.Store, ctx context.Context, topic string) <-chan []byte {
	t.Helper()
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return ch
}

// publish publishes msg on topic.
func publish(t *testing.T, s store.Store, topic, msg string) {
	t.Helper()
	if err := s.Publish(t.Context(), topic, []byte(msg)); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// expectMsg fails unless the next message on ch is want.
func expectMsg(t *testing.T, ch <-chan []byte, want string) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, want message %q", want)
		}
		if string(m) != want {
			t.Fatalf("message = %q, want %q", m, want)
		}
	case <-time.After(waitMsg):
		t.Fatalf("no message within %v, want %q", waitMsg, want)
	}
}
