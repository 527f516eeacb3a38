package group

import "testing"

func TestCollect(t *testing.T) {
	ch := make(chan int, 10)
	for i := 2; i <= 6; i++ {
		ch <- i
	}
	if g := Collect(ch, 1, 4, nil); len(g) != 4 || g[0] != 1 || g[3] != 4 {
		t.Fatalf("bounded group = %v, want [1 2 3 4]", g)
	}
	if g := Collect(ch, 0, 10, nil); len(g) != 3 || g[1] != 5 || g[2] != 6 {
		t.Fatalf("rest = %v, want [0 5 6] without waiting", g)
	}
	ch <- 7
	close(ch)
	if g := Collect(ch, 0, 10, make([]int, 5)); len(g) != 2 || g[1] != 7 {
		t.Fatalf("closed channel = %v, want [0 7]", g)
	}
}
