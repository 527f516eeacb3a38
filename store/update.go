package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// UpdateAttempts is the one compare-and-set budget of the connectors' JSON
// records: how many times UpdateJSON reads, changes and writes a record
// before it gives up. Each failed attempt means that another writer changed
// the record between this one's read and write, so running out takes that
// many writers landing on one record within one round trip each — a record
// that hot is a caller to answer "busy" (HTTP 503), not one to spin on.
// The writers it was chosen for (a live chat conversation, a call folding
// its provider's callbacks, a tracked message or visitor) see a handful of
// concurrent writers at most; 50 leaves room for bursts on one key across
// several gateway processes and bounds the work of one caller.
const UpdateAttempts = 50

// GetJSON reads the record at key into v and returns its version; an
// absent record leaves v as it is and returns version 0.
func GetJSON(ctx context.Context, r Records, key string, v any) (int64, error) {
	rec, err := r.GetRecord(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("record %s: read: %w", key, err)
	}
	if err := json.Unmarshal(rec.Value, v); err != nil {
		return 0, fmt.Errorf("record %s: decode: %w", key, err)
	}
	return rec.Version, nil
}

// PutJSON writes v as JSON at key if the stored version equals expect (0:
// the key must be absent), with PutRecord's ttl, and returns the new
// version. A lost race is ErrConflict, unwrapped, so that callers that
// treat it as "someone else holds this" can compare it directly.
func PutJSON(ctx context.Context, r Records, key string, v any, expect int64, ttl time.Duration) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("record %s: encode: %w", key, err)
	}
	ver, err := r.PutRecord(ctx, key, b, expect, ttl)
	if err != nil && !errors.Is(err, ErrConflict) {
		return 0, fmt.Errorf("record %s: write: %w", key, err)
	}
	return ver, err
}

// UpdateJSON changes the JSON record at key with compare-and-set, retrying
// from the read when another writer got there first, at most
// UpdateAttempts times.
//
// change gets the stored value decoded into a fresh T (the zero T when the
// record is absent) and the version read (0: absent). It changes v in
// place and returns true to write it back, with ttl as in PutRecord, or
// false to leave the record as it is. It may run several times, so
// anything it does besides changing v must be safe to repeat; an error
// from it ends the update and is returned as is.
//
// UpdateJSON returns the value as change left it and the version now
// stored (the version read when nothing was written). When every attempt
// lost its race the error wraps ErrConflict.
func UpdateJSON[T any](ctx context.Context, r Records, key string, ttl time.Duration, change func(v *T, version int64) (bool, error)) (T, int64, error) {
	v, ver, _, err := updateJSON(ctx, r, nil, key, ttl, change)
	return v, ver, err
}

// UpdateJSONAppend is UpdateJSON that also appends a to its list, in the
// same store step as the record's first write (AppendAndPut: one commit,
// one round trip), or alone when change writes nothing. When change fails
// nothing is appended; when the first write loses its race the append has
// happened and the next attempts write the record alone. duplicate is the
// append's: the list had an element with a.ID already.
func UpdateJSONAppend[T any](ctx context.Context, r Records, a ListAppend, key string, ttl time.Duration, change func(v *T, version int64) (bool, error)) (v T, version int64, duplicate bool, err error) {
	return updateJSON(ctx, r, &a, key, ttl, change)
}

// updateJSON is UpdateJSON and UpdateJSONAppend: a, when not nil, is
// appended with the first write.
func updateJSON[T any](ctx context.Context, r Records, a *ListAppend, key string, ttl time.Duration, change func(v *T, version int64) (bool, error)) (T, int64, bool, error) {
	dup := false
	for range UpdateAttempts {
		var v T
		ver, err := GetJSON(ctx, r, key, &v)
		if err != nil {
			return v, 0, false, err
		}
		write, err := change(&v, ver)
		if err != nil {
			return v, ver, false, err
		}
		if !write {
			if a != nil { // nothing to write with: the append alone
				if _, dup, err = r.AppendList(ctx, a.Key, a.ID, a.Value, a.TTL); err != nil {
					return v, ver, false, fmt.Errorf("append list %s: %w", a.Key, err)
				}
			}
			return v, ver, dup, nil
		}
		var next int64
		if a == nil {
			next, err = PutJSON(ctx, r, key, &v, ver, ttl)
		} else {
			b, merr := json.Marshal(&v)
			if merr != nil {
				return v, 0, false, fmt.Errorf("record %s: encode: %w", key, merr)
			}
			_, dup, next, err = AppendAndPut(ctx, r, *a, RecordPut{Key: key, Value: b, Expect: ver, TTL: ttl})
			if err == nil || errors.Is(err, ErrConflict) {
				a = nil // appended; a lost race retries the record alone
			}
		}
		if errors.Is(err, ErrConflict) {
			continue
		}
		return v, next, dup, err
	}
	var zero T
	return zero, 0, dup, fmt.Errorf("record %s: %w %d times in a row", key, ErrConflict, UpdateAttempts)
}
