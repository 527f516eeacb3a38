package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
)

// ReadList pages through long lists, starting anywhere.
func TestReadListPages(t *testing.T) {
	srv := redisserver.Start(t)
	s := open(t, srv, newPrefix(), time.Second)
	const n = 1100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, _, err := s.AppendList(t.Context(), "chat/long", fmt.Sprint("m", i), []byte("x"), 0)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AppendList: %v", err)
		}
	}
	for _, c := range []struct {
		after       int64
		limit, want int
	}{{0, 2000, n}, {5, 520, 520}, {1000, 600, 100}, {n - 1, 10, 1}, {n, 10, 0}} {
		got, err := s.ReadList(t.Context(), "chat/long", c.after, c.limit)
		if err != nil || len(got) != c.want {
			t.Fatalf("ReadList(after %d, limit %d) = %d elements, %v; want %d", c.after, c.limit, len(got), err, c.want)
		}
		for i, e := range got {
			if e.Seq != c.after+int64(i)+1 {
				t.Fatalf("ReadList(after %d): element %d has seq %d", c.after, i, e.Seq)
			}
		}
	}
}

// Records and lists use the documented keys, with the ttl as the keys'
// expiry.
func TestRecordKeys(t *testing.T) {
	srv := redisserver.Start(t)
	prefix := newPrefix()
	s := open(t, srv, prefix, time.Second)
	ctx, raw := t.Context(), rawClient(t, srv)
	if _, err := s.PutRecord(ctx, "k", []byte("v"), 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AppendList(ctx, "k", "id:1", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if h := raw.HGetAll(ctx, prefix+"rec:k").Val(); h["v"] != "1" || h["d"] != "v" {
		t.Errorf("record hash = %v", h)
	}
	if h := raw.HGetAll(ctx, prefix+"list:k").Val(); h["1"] != "4:id:1v" {
		t.Errorf("list hash = %v", h)
	}
	if h := raw.HGetAll(ctx, prefix+"list-ids:k").Val(); h["id:1"] != "1" {
		t.Errorf("list id hash = %v", h)
	}
	for _, k := range []string{"rec:k", "list:k", "list-ids:k"} {
		if ttl := raw.PTTL(ctx, prefix+k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("PTTL(%s) = %v, want up to a minute", k, ttl)
		}
	}
}

// While Redis is down the records fail with ErrUnavailable; a subscription
// made before outlives the outage and receives what is published after.
func TestRecordsRedisDownAndBack(t *testing.T) {
	srv := redisserver.Start(t)
	if !srv.Real() {
		t.Skip("needs a real redis-server")
	}
	s := open(t, srv, newPrefix(), time.Second)
	sub, err := s.Subscribe(t.Context(), "chat/1")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, getErr := s.GetRecord(ctx, "k")
	_, putErr := s.PutRecord(ctx, "k", nil, 0, 0)
	_, _, appendErr := s.AppendList(ctx, "k", "m1", nil, 0)
	_, readErr := s.ReadList(ctx, "k", 0, 10)
	_, subErr := s.Subscribe(ctx, "chat/2")
	for name, err := range map[string]error{
		"GetRecord": getErr, "PutRecord": putErr, "DeleteRecord": s.DeleteRecord(ctx, "k", 1),
		"AppendList": appendErr, "ReadList": readErr,
		"Publish": s.Publish(ctx, "chat/1", nil), "Subscribe": subErr,
	} {
		if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "redis: ") {
			t.Errorf("%s while down: err = %v, want ErrUnavailable", name, err)
		}
	}

	srv.Start()
	back := time.Now()
	for {
		if err := s.Publish(ctx, "chat/1", []byte("back")); err == nil {
			select {
			case m, ok := <-sub:
				if !ok {
					t.Fatal("subscription closed by the outage")
				}
				t.Logf("subscription delivered %q %v after Redis was back", m, time.Since(back))
				return
			case <-time.After(100 * time.Millisecond):
			}
		} else {
			time.Sleep(50 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatal("subscription received nothing after Redis was back")
		}
	}
}

// Close ends the subscriptions and refuses new ones.
func TestSubscribeAfterClose(t *testing.T) {
	srv := redisserver.Start(t)
	s := open(t, srv, newPrefix(), time.Second)
	sub, err := s.Subscribe(t.Context(), "chat/1")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	_ = s.Close()
	select {
	case _, ok := <-sub:
		if ok {
			t.Fatal("message after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription still open after Close")
	}
	if _, err := s.Subscribe(t.Context(), "chat/1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Subscribe after Close: err = %v, want ErrUnavailable", err)
	}
	if err := s.Publish(t.Context(), "chat/1", nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Publish after Close: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetRecord(t.Context(), "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetRecord after Close: err = %v, want ErrUnavailable", err)
	}
}
