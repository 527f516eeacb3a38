package bolt

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/stagegate/stagegate/store"
)

// SubscriberBuffer is how many messages a subscriber's channel holds; a
// message that finds it full is dropped for that subscriber.
const SubscriberBuffer = 128

var _ store.Broadcaster = (*Store)(nil)

// broadcaster is the in-process fan-out behind Publish and Subscribe. The
// bolt file belongs to one process, so every subscriber is local.
type broadcaster struct {
	mu     sync.RWMutex // held for reading while sending, for writing while closing channels
	topics map[string]map[*subscriber]struct{}
	closed bool
}

// subscriber is one Subscribe call.
type subscriber struct {
	topic string
	ch    chan []byte
	stop  func() bool // stops the context.AfterFunc that unsubscribes
}

func newBroadcaster() *broadcaster {
	return &broadcaster{topics: make(map[string]map[*subscriber]struct{})}
}

// Publish hands a copy of msg to every current subscriber of topic whose
// channel has room, without waiting for any of them.
func (s *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: publish %s: %w", topic, err)
	}
	b := s.bc
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return fmt.Errorf("bolt: publish %s: %w", topic, errClosed)
	}
	for sub := range b.topics[topic] {
		select {
		case sub.ch <- bytes.Clone(msg):
		default: // full: this subscriber loses the message
		}
	}
	return nil
}

// Subscribe returns a channel of the messages published on topic from now
// on. It is closed when ctx is done or the store is closed; a subscriber
// that falls SubscriberBuffer messages behind loses the newer ones.
func (s *Store) Subscribe(ctx context.Context, topic string) (<-chan []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bolt: subscribe %s: %w", topic, err)
	}
	b := s.bc
	sub := &subscriber{topic: topic, ch: make(chan []byte, SubscriberBuffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("bolt: subscribe %s: %w", topic, errClosed)
	}
	subs := b.topics[topic]
	if subs == nil {
		subs = make(map[*subscriber]struct{})
		b.topics[topic] = subs
	}
	subs[sub] = struct{}{}
	// ctx cannot fire before the lock is released, so sub.stop is set in
	// time for close.
	sub.stop = context.AfterFunc(ctx, func() { b.remove(sub) })
	return sub.ch, nil
}

// remove unsubscribes sub and closes its channel, unless close did.
func (b *broadcaster) remove(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := b.topics[sub.topic]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(b.topics, sub.topic)
	}
	close(sub.ch)
}

// close closes every subscriber's channel and refuses later calls.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, subs := range b.topics {
		for sub := range subs {
			sub.stop()
			close(sub.ch)
		}
	}
	clear(b.topics)
}
