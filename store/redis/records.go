package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stagegate/stagegate/store"
)

// Records and lists (see the key layout in the package doc):
//
//	P rec:<key>        hash: v (version), d (value); PEXPIRE'd for a ttl
//	P list:<key>       hash: seq (decimal) → "<len(id)>:<id><value>"
//	P list-ids:<key>   hash: element id → seq (not of elements appended Unique)
//
// Writes run as scripts (putRecordScript, deleteRecordScript,
// appendListScript); expiry is Redis's own, so an expired record or list
// is simply gone.

var _ store.Records = (*Store)(nil)

// readPage bounds the fields one HMGET of ReadList asks for.
const readPage = 512

// defaultReadLimit is ReadList's limit when the caller gives none.
const defaultReadLimit = 100

// ttlMillis is ttl in whole milliseconds for PEXPIRE, at least 1 for a
// positive ttl; 0 for none.
func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// GetRecord returns the record at key, or store.ErrNotFound.
func (s *Store) GetRecord(ctx context.Context, key string) (store.Record, error) {
	if key == "" {
		return store.Record{}, errors.New("redis: get record: key is required")
	}
	vals, err := s.rdb.HMGet(ctx, s.key("rec", key), "v", "d").Result()
	if err != nil {
		return store.Record{}, wrap("get record", key, err)
	}
	v, ok := vals[0].(string)
	if !ok {
		return store.Record{}, fmt.Errorf("redis: get record %s: %w", key, store.ErrNotFound)
	}
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return store.Record{}, fmt.Errorf("redis: get record %s: version: %w", key, err)
	}
	d, _ := vals[1].(string)
	return store.Record{Value: []byte(d), Version: version}, nil
}

// PutRecord stores value at key if the record's version is expect (0: the
// key must be absent) and returns the new version, in one script. A ttl >
// 0 makes the key expire that long after the put (PEXPIRE); 0 stores it
// without expiry, also when the record it replaces had one (PERSIST).
func (s *Store) PutRecord(ctx context.Context, key string, value []byte, expect int64, ttl time.Duration) (int64, error) {
	defer s.hold()()
	if key == "" {
		return 0, errors.New("redis: put record: key is required")
	}
	if expect < 0 {
		return 0, fmt.Errorf("redis: put record %s: negative version %d", key, expect)
	}
	res, err := putRecordScript.Run(ctx, s.rdb, []string{s.key("rec", key)},
		expect, value, ttlMillis(ttl)).Slice()
	return putRecordReply(key, expect, res, err)
}

func putRecordReply(key string, expect int64, res []any, err error) (int64, error) {
	if err != nil {
		return 0, wrap("put record", key, err)
	}
	status, n, err := statusReply(res)
	if err != nil {
		return 0, fmt.Errorf("redis: put record %s: %w", key, err)
	}
	switch status {
	case "ok":
		return n, nil
	case "conflict":
		return 0, fmt.Errorf("redis: put record %s: %w: version is %d, not %d", key, store.ErrConflict, n, expect)
	}
	return 0, fmt.Errorf("redis: put record %s: unexpected reply %v", key, res)
}

// DeleteRecord removes the record at key if its version is expect.
func (s *Store) DeleteRecord(ctx context.Context, key string, expect int64) error {
	defer s.hold()()
	if key == "" {
		return errors.New("redis: delete record: key is required")
	}
	res, err := deleteRecordScript.Run(ctx, s.rdb, []string{s.key("rec", key)}, expect).Slice()
	if err != nil {
		return wrap("delete record", key, err)
	}
	status, n, err := statusReply(res)
	if err != nil {
		return fmt.Errorf("redis: delete record %s: %w", key, err)
	}
	switch status {
	case "ok":
		return nil
	case "notfound":
		return fmt.Errorf("redis: delete record %s: %w", key, store.ErrNotFound)
	case "conflict":
		return fmt.Errorf("redis: delete record %s: %w: version is %d, not %d", key, store.ErrConflict, n, expect)
	}
	return fmt.Errorf("redis: delete record %s: unexpected reply %v", key, res)
}

// statusReply splits a script's {status[, number]} reply.
func statusReply(res []any) (string, int64, error) {
	if len(res) == 0 {
		return "", 0, errors.New("empty script reply")
	}
	status, ok := res[0].(string)
	if !ok {
		return "", 0, fmt.Errorf("unexpected script reply %v", res)
	}
	var n int64
	if len(res) > 1 {
		n, _ = res[1].(int64)
	}
	return status, n, nil
}

// AppendList adds an element to the list at key unless the list has one
// with id, in one script, and returns the element's sequence number and
// whether it was there already (then nothing changes, not even the
// expiry). A ttl > 0 sets both keys of the list to expire that long after
// this append; 0 leaves their expiry as it is.
func (s *Store) AppendList(ctx context.Context, key, id string, value []byte, ttl time.Duration) (int64, bool, error) {
	defer s.hold()()
	if key == "" || id == "" {
		return 0, false, errors.New("redis: append list: key and element id are required")
	}
	res, err := appendListScript.Run(ctx, s.rdb, []string{s.key("list", key), s.key("list-ids", key)},
		id, listElem(id, value), ttlMillis(ttl), "0").Int64Slice()
	return appendListReply(key, res, err)
}

// uniqueArg is appendListScript's last argument: "1" for an element
// appended unique (store.ListAppend.Unique).
func uniqueArg(unique bool) string {
	if unique {
		return "1"
	}
	return "0"
}

// listElem is the stored form of a list element: len(id) in decimal, ":",
// id, value.
func listElem(id string, value []byte) []byte {
	elem := make([]byte, 0, len(id)+len(value)+8)
	elem = strconv.AppendInt(elem, int64(len(id)), 10)
	return append(append(append(elem, ':'), id...), value...)
}

func appendListReply(key string, res []int64, err error) (int64, bool, error) {
	if err != nil {
		return 0, false, wrap("append list", key, err)
	}
	if len(res) != 2 || res[0] < 1 {
		return 0, false, fmt.Errorf("redis: append list %s: unexpected reply %v", key, res)
	}
	return res[0], res[1] == 1, nil
}

// AppendListPutRecord implements store.AppendPutter: the append script and
// the put script in one pipeline (one round trip), the append first. Each
// is atomic on its own; the append stands whatever the put's check says.
func (s *Store) AppendListPutRecord(ctx context.Context, a store.ListAppend, p store.RecordPut) (int64, bool, int64, error) {
	defer s.hold()()
	if a.Key == "" || a.ID == "" {
		return 0, false, 0, errors.New("redis: append list: key and element id are required")
	}
	if p.Key == "" {
		return 0, false, 0, errors.New("redis: put record: key is required")
	}
	if p.Expect < 0 {
		return 0, false, 0, fmt.Errorf("redis: put record %s: negative version %d", p.Key, p.Expect)
	}
	var app, put *redis.Cmd
	_ = s.pipelinedScripts(ctx, func(pl redis.Pipeliner) error { // each command keeps its own error
		app = appendListScript.Run(ctx, pl, []string{s.key("list", a.Key), s.key("list-ids", a.Key)},
			a.ID, listElem(a.ID, a.Value), ttlMillis(a.TTL), uniqueArg(a.Unique))
		put = putRecordScript.Run(ctx, pl, []string{s.key("rec", p.Key)}, p.Expect, p.Value, ttlMillis(p.TTL))
		return nil
	})
	ares, aerr := app.Int64Slice()
	seq, dup, aerr := appendListReply(a.Key, ares, aerr)
	if aerr != nil {
		return 0, false, 0, aerr
	}
	pres, perr := put.Slice()
	version, perr := putRecordReply(p.Key, p.Expect, pres, perr)
	return seq, dup, version, perr
}

// ReadList returns up to limit elements of the list at key with Seq >
// after, in order; limit <= 0 means 100. It asks for the fields after+1,
// after+2, … directly (HMGET, at most 512 per round trip) and stops at the
// first that is missing, so its cost does not depend on after.
func (s *Store) ReadList(ctx context.Context, key string, after int64, limit int) ([]store.ListElem, error) {
	if key == "" {
		return nil, errors.New("redis: read list: key is required")
	}
	if limit <= 0 {
		limit = defaultReadLimit
	}
	next := max(after, 0) + 1
	k := s.key("list", key)
	var out []store.ListElem
	for len(out) < limit {
		n := min(limit-len(out), readPage)
		fields := make([]string, n)
		for i := range fields {
			fields[i] = strconv.FormatInt(next+int64(i), 10)
		}
		vals, err := s.rdb.HMGet(ctx, k, fields...).Result()
		if err != nil {
			return nil, wrap("read list", key, err)
		}
		for _, v := range vals {
			raw, ok := v.(string)
			if !ok {
				return out, nil // past the end
			}
			e, err := decodeElem(next, raw)
			if err != nil {
				return nil, fmt.Errorf("redis: read list %s: %w", key, err)
			}
			out = append(out, e)
			next++
		}
	}
	return out, nil
}

// decodeElem parses a stored "<len(id)>:<id><value>" element.
func decodeElem(seq int64, raw string) (store.ListElem, error) {
	head, rest, ok := strings.Cut(raw, ":")
	n, err := strconv.Atoi(head)
	if !ok || err != nil || n < 0 || n > len(rest) {
		return store.ListElem{}, fmt.Errorf("element %d: corrupt", seq)
	}
	return store.ListElem{Seq: seq, ID: rest[:n], Value: []byte(rest[n:])}, nil
}

var _ store.ListsAppender = (*Store)(nil)

// AppendLists implements store.ListsAppender: the append script of every
// append in one pipeline (one round trip), in order. Each script is
// atomic on its own and each append gets its own reply or error.
func (s *Store) AppendLists(ctx context.Context, as []store.ListAppend) ([]store.ListAppendResult, error) {
	defer s.hold()()
	out := make([]store.ListAppendResult, len(as))
	cmds := make([]*redis.Cmd, len(as))
	todo := 0
	for i, a := range as {
		if a.Key == "" || a.ID == "" {
			out[i].Err = errors.New("redis: append list: key and element id are required")
			continue
		}
		todo++
	}
	if todo == 0 {
		return out, nil
	}
	_ = s.pipelinedScripts(ctx, func(pl redis.Pipeliner) error { // each command keeps its own error
		for i, a := range as {
			if out[i].Err != nil {
				continue
			}
			cmds[i] = appendListScript.Run(ctx, pl, []string{s.key("list", a.Key), s.key("list-ids", a.Key)},
				a.ID, listElem(a.ID, a.Value), ttlMillis(a.TTL), uniqueArg(a.Unique))
		}
		return nil
	})
	for i, c := range cmds {
		if c == nil {
			continue
		}
		res, err := c.Int64Slice()
		out[i].Seq, out[i].Duplicate, out[i].Err = appendListReply(as[i].Key, res, err)
	}
	return out, nil
}
