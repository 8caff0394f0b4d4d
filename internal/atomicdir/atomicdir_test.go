package atomicdir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestReplace(t *testing.T) {
	for _, existing := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "img")
		if existing {
			os.MkdirAll(out, 0o755)
			os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
		}
		staged, err := Stage(out)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(staged, "bzImage"), []byte("new"), 0o644)
		if err := Replace(staged, out); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(out, "bzImage"))
		if string(got) != "new" {
			t.Errorf("existing=%v: bzImage = %q, want new", existing, got)
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
			t.Errorf("existing=%v: %d entries beside the directory, want 1 (no staging or old copy left)", existing, len(ents))
		}
	}
}

// stagedOverOld makes an image dir holding an old bzImage and a staged
// dir for it holding a new one.
func stagedOverOld(t *testing.T) (out, staged string) {
	t.Helper()
	out = filepath.Join(t.TempDir(), "img")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
	staged, err := Stage(out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(staged, "bzImage"), []byte("new"), 0o644)
	return out, staged
}

func TestReplaceFailureKeepsOld(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "bzImage"), []byte("old"), 0o644)
	if err := Replace(filepath.Join(t.TempDir(), "missing"), out); err == nil {
		t.Fatal("Replace from a missing directory succeeded")
	}
	if got, _ := os.ReadFile(filepath.Join(out, "bzImage")); string(got) != "old" {
		t.Errorf("after a failed Replace, bzImage = %q, want old", got)
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	os.WriteFile(src, []byte("data"), 0o755)
	if err := CopyFile(src, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "b"))
	if err != nil || st.Mode().Perm() != 0o755 || st.Size() != 4 {
		t.Errorf("copy: %v, mode %v, size %d; want 0755, 4 bytes", err, st.Mode(), st.Size())
	}
}

// helperEnv makes the test binary act as a process that stages dst (its
// value), prints the staging dir and waits to be killed.
const helperEnv = "BESPOKE_ATOMICDIR_TEST_STAGE"

func TestMain(m *testing.M) {
	if dst := os.Getenv(helperEnv); dst != "" {
		stage, err := Stage(dst)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		fmt.Println(stage)
		time.Sleep(time.Hour) // until killed
	}
	os.Exit(m.Run())
}

// watchNames records the names that appear in and leave dir (inotify)
// while fn runs, in the kernel's order.
func watchNames(t *testing.T, dir string, fn func()) []nameEvent {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	fn()
	var evs []nameEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflow")
			}
			evs = append(evs, nameEvent{name, ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0})
		}
	}
	return evs
}

type nameEvent struct {
	name   string
	arrive bool // created or moved in; else deleted or moved out
}

// TestReplaceNeverLeavesNoDir checks, with the kernel's own account of the
// names in the parent dir, that dst has an entry at every moment of
// Replace: the exchange puts the new dir in the place of the old one in
// one step, so a crash at any point leaves one of them at dst.
func TestReplaceNeverLeavesNoDir(t *testing.T) {
	out, staged := stagedOverOld(t)
	evs := watchNames(t, filepath.Dir(out), func() {
		if err := Replace(staged, out); err != nil {
			t.Fatal(err)
		}
	})
	present, moved := 1, false
	for _, ev := range evs {
		if ev.name != "img" {
			continue
		}
		moved = true
		if ev.arrive {
			present++
		} else if present--; present == 0 {
			t.Errorf("img had no entry during Replace (events: %v)", evs)
			break
		}
	}
	if !moved {
		t.Errorf("no rename of img seen (events: %v)", evs)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "bzImage")); string(got) != "new" {
		t.Errorf("bzImage = %q, want new", got)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("%d entries beside the directory, want 1 (the old one removed)", len(ents))
	}
}

// TestStageRemovesStale: a staging dir whose owner is gone (a killed
// process) is removed by the next Stage of the same dst; one whose owner
// lives (another process, or this one) is kept, and so is anything else.
func TestStageRemovesStale(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "img")

	// Another process stages out and lives.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's staging dir: %v", err)
	}
	theirs := strings.TrimSpace(line)
	os.WriteFile(filepath.Join(theirs, "bzImage"), []byte("theirs"), 0o644)

	// A crashed build's dir: no one holds it.
	crashed := filepath.Join(parent, ".img.new-123456")
	os.MkdirAll(filepath.Join(crashed, "sub"), 0o755)
	os.WriteFile(filepath.Join(crashed, "sub", "x"), []byte("x"), 0o644)
	// Not staging dirs of img.
	others := []string{filepath.Join(parent, ".img2.new-1"), filepath.Join(parent, ".img.old-1"), filepath.Join(parent, "img.new-1")}
	for _, o := range others {
		os.Mkdir(o, 0o755)
	}

	mine, err := Stage(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(crashed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale staging dir %s: stat %v, want it removed", crashed, err)
	}
	for _, d := range append(others, theirs) {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed by Stage: %v", d, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(theirs, "bzImage")); string(b) != "theirs" {
		t.Errorf("another process's live staging dir changed: bzImage %q", b)
	}

	// This process's staging dir is live too; the killed helper's is not.
	cmd.Process.Kill()
	cmd.Wait()
	again, err := Stage(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(theirs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging dir of a killed process %s: stat %v, want it removed", theirs, err)
	}
	for _, d := range []string{mine, again} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("live staging dir %s of this process removed: %v", d, err)
		}
		Discard(d)
	}
}

// TestReplaceFallback: on a filesystem that cannot exchange (EINVAL,
// ENOSYS), Replace still replaces, by two renames.
func TestReplaceFallback(t *testing.T) {
	defer func(f func(a, b string) error) { exchange = f }(exchange)
	for _, errno := range []error{unix.EINVAL, unix.ENOSYS} {
		exchange = func(a, b string) error { return errno }
		out, staged := stagedOverOld(t)
		if err := Replace(staged, out); err != nil {
			t.Fatalf("%v: %v", errno, err)
		}
		if got, _ := os.ReadFile(filepath.Join(out, "bzImage")); string(got) != "new" {
			t.Errorf("%v: bzImage = %q, want new", errno, got)
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
			t.Errorf("%v: %d entries beside the directory, want 1", errno, len(ents))
		}
	}
}

// TestReplaceSyncs: every file and dir of the new content is written to
// disk before the swap, and the parent dir (the swap itself) after it.
func TestReplaceSyncs(t *testing.T) {
	defer func(f func(*os.File) error) { fsync = f }(fsync)
	defer func(f func(a, b string) error) { exchange = f }(exchange)
	var synced []string
	fsync = func(f *os.File) error {
		synced = append(synced, f.Name())
		return f.Sync()
	}
	var atSwap []string
	realExchange := exchange
	exchange = func(a, b string) error {
		atSwap = append([]string{}, synced...)
		return realExchange(a, b)
	}
	parent := t.TempDir()
	out := filepath.Join(parent, "img")
	os.MkdirAll(out, 0o755)
	staged, err := Stage(out)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(staged, "sub"), 0o755)
	os.WriteFile(filepath.Join(staged, "bzImage"), []byte("new"), 0o644)
	os.WriteFile(filepath.Join(staged, "sub", "x"), []byte("x"), 0o644)
	os.Symlink("bzImage", filepath.Join(staged, "link"))
	if err := Replace(staged, out); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(staged, "bzImage"), filepath.Join(staged, "sub", "x"), filepath.Join(staged, "sub"), staged}
	if diff := cmp.Diff(want, atSwap); diff != "" {
		t.Errorf("synced before the swap (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{parent}, synced[len(atSwap):]); diff != "" {
		t.Errorf("synced after the swap (-want +got):\n%s", diff)
	}
}

// TestDiscard: a discarded staging dir is gone and its lock released.
func TestDiscard(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	staged, err := Stage(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Discard(staged); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("discarded %s: stat %v, want it gone", staged, err)
	}
	held.Lock()
	f := held.m[staged]
	held.Unlock()
	if f != nil {
		t.Errorf("%s still held after Discard", staged)
	}
}
