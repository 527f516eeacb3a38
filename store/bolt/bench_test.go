package bolt

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
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
func BenchmarkAppendListHits(b *testing.B) {
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
			if _, _, err := s.AppendList(b.Context(), key, "h"+strconv.FormatInt(i, 10), value, 30*24*time.Hour); err != nil {
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
