package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The -update flag rewrites golden files:
//
//	go test ./internal/cli -run Features -update
//
// It is defined here unless another test file of the package defines it
// (package-level flag.Bool calls run before init functions).
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const redisLike = "../features/testdata/redis-like.json"

func TestFeaturesGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"plain", []string{"features", redisLike}, "features-redis-like.golden"},
		{"sources", []string{"features", "--sources", redisLike}, "features-redis-like-sources.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), tc.args, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr: %s", code, stderr.String())
			}
			path := filepath.Join("testdata", tc.golden)
			if updateGolden() {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("bespoke %s (-want +got):\n%s", strings.Join(tc.args, " "), diff)
			}
		})
	}
}

func TestFeaturesJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"features", redisLike, "--json"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	var got struct {
		Required []struct {
			Symbol  string   `json:"symbol"`
			Facts   []string `json:"facts"`
			Sources []string `json:"sources"`
		} `json:"required"`
		Gaps []struct{ Fact, Reason string } `json:"gaps"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("decoding --json output: %v\n%s", err, stdout.String())
	}
	var epoll []string
	for _, r := range got.Required {
		if r.Symbol == "EPOLL" {
			epoll = r.Facts
		}
	}
	if want := []string{"epoll_wait x1234", "epoll_ctl x56", "epoll_create x1"}; !cmp.Equal(epoll, want) {
		t.Errorf("EPOLL facts: got %q, want %q", epoll, want)
	}
	if len(got.Gaps) != 1 || !strings.HasPrefix(got.Gaps[0].Fact, "uselib") {
		t.Errorf("gaps: got %+v, want the uselib call", got.Gaps)
	}
}

func TestFeaturesUsage(t *testing.T) {
	for _, args := range [][]string{{"features"}, {"features", "a.json", "b.json"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, nil, &stdout, &stderr); code != 2 {
			t.Errorf("bespoke %v: exit %d, want 2 (usage)", args, code)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"features", "testdata/no-such.json"}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("missing manifest: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "no-such.json") {
		t.Errorf("missing manifest: stderr %q does not name the file", stderr.String())
	}
}
