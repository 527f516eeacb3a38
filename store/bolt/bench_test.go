package bolt

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagegate/stagegate/store"
)

// BenchmarkAppendParallel appends distinct events from about 64 goroutines.
// Each commit is fsync'd, so without group commit events/s would be bounded
// by 1/fsync-time; events/commit shows how many appends share one fsync.
func BenchmarkAppendParallel(b *testing.B) {
	benchAppend(b, max(1, 64/runtime.GOMAXPROCS(0)))
}

// BenchmarkAppendSerial is the baseline: one goroutine, one fsync per event.
func BenchmarkAppendSerial(b *testing.B) {
	benchAppend(b, 0)
}

// benchAppend runs Append with parallelism p (0 for a single goroutine).
func benchAppend(b *testing.B, p int) {
	s := openTemp(b, filepath.Join(b.TempDir(), "sg.db"), Options{})
	var n atomic.Int64
	ev := ev("")
	commits := s.c.commits.Load()
	b.ResetTimer()
	appendOne := func() {
		e := *ev
		e.ID = "bench:" + strconv.FormatInt(n.Add(1), 10)
		if _, err := s.Append(b.Context(), &e); err != nil {
			b.Error(err)
		}
	}
	if p == 0 {
		for b.Loop() {
			appendOne()
		}
	} else {
		b.SetParallelism(p)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				appendOne()
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if c := s.c.commits.Load() - commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "events/commit")
	}
}

// BenchmarkAppendListHits appends tracking-hit-like elements (about 200
// bytes, a 30-day ttl) to 300 lists from about 64 goroutines, as the open
// pixel of 300 messages does; pages/hit is what each costs the file.
// indexed: AppendList, the id looked up and indexed; unique: AppendLists
// of one element with Unique, as the tracking connector writes hits.
func BenchmarkAppendListHits(b *testing.B) {
	for _, unique := range []bool{false, true} {
		name := "indexed"
		if unique {
			name = "unique"
		}
		b.Run(name, func(b *testing.B) { benchAppendListHits(b, unique) })
	}
}

func benchAppendListHits(b *testing.B, unique bool) {
	s := openTemp(b, filepath.Join(b.TempDir(), "sg.db"), Options{})
	var n atomic.Int64
	value := bytes.Repeat([]byte("h"), 200)
	before := s.WriteStats()
	b.ResetTimer()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := "hits:msg-" + strconv.FormatInt(i%300, 10)
			id := "h" + strconv.FormatInt(i, 10)
			var err error
			if unique {
				var res []store.ListAppendResult
				res, err = s.AppendLists(b.Context(), []store.ListAppend{{Key: key, ID: id, Value: value, TTL: 30 * 24 * time.Hour, Unique: true}})
				if err == nil {
					err = res[0].Err
				}
			} else {
				_, _, err = s.AppendList(b.Context(), key, id, value, 30*24*time.Hour)
			}
			if err != nil {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	after := s.WriteStats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
	b.ReportMetric(float64(after.Pages-before.Pages)/float64(b.N), "pages/hit")
	if c := after.Commits - before.Commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "hits/commit")
	}
}
