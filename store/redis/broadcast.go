package redis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// SubscriberBuffer is how many messages a subscriber's channel holds; a
// message that finds it full is dropped for that subscriber.
const SubscriberBuffer = 128

var _ store.Broadcaster = (*Store)(nil)

// Publish sends msg to the subscribers of topic in every process sharing
// the Redis (PUBLISH on P bc:<topic>). Subscribers that are disconnected
// at that moment do not get it.
func (s *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	defer s.hold()()
	if err := s.checkOpen(); err != nil {
		return fmt.Errorf("redis: publish %s: %w", topic, err)
	}
	return wrap("publish", topic, s.rdb.Publish(ctx, s.key("bc", topic), msg).Err())
}

// Subscribe subscribes to topic on a connection of its own (SUBSCRIBE on
// P bc:<topic>) and returns once Redis has confirmed the subscription, so
// everything published after it returns is delivered. The channel is
// closed when ctx is done or the store is closed; a subscriber that falls
// SubscriberBuffer messages behind loses the newer ones.
//
// When the connection breaks (Redis restarted, network trouble), go-redis
// reconnects and subscribes again by itself, retrying every 100ms, and
// notices a silently dead connection with a ping after 3s without traffic;
// the channel stays open throughout, and what was published in between is
// lost.
func (s *Store) Subscribe(ctx context.Context, topic string) (<-chan []byte, error) {
	defer s.hold()()
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("redis: subscribe %s: %w", topic, err)
	}
	ps := s.rdb.Subscribe(ctx, s.key("bc", topic))
	out := make(chan []byte, SubscriberBuffer)
	// The first reply is the confirmation; a message cannot come before it.
	reply, err := ps.Receive(ctx)
	if err != nil {
		_ = ps.Close()
		return nil, wrap("subscribe", topic, err)
	}
	if m, ok := reply.(*redis.Message); ok {
		out <- []byte(m.Payload)
	}
	in := ps.Channel(redis.WithChannelSize(SubscriberBuffer))
	go s.forward(ctx, ps, in, out)
	return out, nil
}

// forward copies messages from in to out without ever waiting on out,
// until ctx is done, the store is closed or go-redis closes in; then it
// closes the subscription and out.
func (s *Store) forward(ctx context.Context, ps *redis.PubSub, in <-chan *redis.Message, out chan<- []byte) {
	defer close(out)
	defer func() { _ = ps.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case m, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- []byte(m.Payload):
			default: // full: this subscriber loses the message
			}
		}
	}
}

// checkOpen returns an error wrapping store.ErrUnavailable once Close has
// started.
func (s *Store) checkOpen() error {
	select {
	case <-s.closed:
		return fmt.Errorf("closed: %w", store.ErrUnavailable)
	default:
		return nil
	}
}
