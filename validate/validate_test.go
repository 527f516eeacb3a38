package validate

import "testing"

func TestPaths(t *testing.T) {
	var errs Errors
	errs.Add(Join(Index("pipelines", 0), "id"), "required")
	var inner Errors
	inner.Add("url", "required")
	inner.Add("", "bad %s", "thing")
	errs.Merge(Index(Join(Index("pipelines", 0), "stages"), 2), inner)
	want := "pipelines[0].id: required\npipelines[0].stages[2].url: required\npipelines[0].stages[2]: bad thing"
	if errs.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", errs.Error(), want)
	}
	if (Errors{}).Err() != nil || errs.Err() == nil {
		t.Fatal("Err: nil exactly when empty")
	}
	if Join("a", "[1]") != "a[1]" || Join("", "b") != "b" || Join("a", "") != "a" {
		t.Fatal("Join")
	}
}
