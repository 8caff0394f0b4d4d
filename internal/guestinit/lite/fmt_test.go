package lite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"
)

// verbD is "%d" where vet does not see it: a test of a wrong argument.
var verbD = "%d"

type stringer struct{}

func (stringer) String() string { return "str" }

// TestSprintf checks Sprintf against fmt.Sprintf for the verbs and types
// the init uses.
func TestSprintf(t *testing.T) {
	err := errors.New("boom")
	for _, tc := range []struct {
		format string
		args   []any
	}{
		{"plain", nil},
		{"100%% sure", nil},
		{"%s and %s", []any{"a", err}},
		{"%v %v %v", []any{"a", err, stringer{}}},
		{"%q %q", []any{"a \"b\"\n", err}},
		{"%d %d %d %d %d", []any{0, -42, uint64(1 << 63), int64(-1 << 63), uint32(7)}},
		{"%x %#x %016x %08x", []any{255, 255, uint64(0xdeadbeef), uint32(0xbeef)}},
		{"%+.3f %.1f %f %+.3f", []any{1.23456, 2.25, 3.0, -0.5}},
		{"%v %v", []any{1.5, true}},
		{"%v", []any{time.Second + 500*time.Millisecond}},
		{"%v %v", []any{[]string{"a", "b"}, []int{1, 2}}},
		{"%5d|%-5d|%05d|%5s|%-5s|", []any{42, 42, -42, "ab", "ab"}},
		{"%v", []any{nil}},
		{"%s: %w", []any{"wrap", fs.ErrNotExist}},
		{"%s %d", []any{"missing"}},
		{"café %s", []any{"ü"}},
	} {
		got := Sprintf(tc.format, tc.args...)
		want := fmt.Sprintf(tc.format, tc.args...)
		if tc.format == "%s: %w" {
			want = fmt.Errorf(tc.format, tc.args...).Error()
		}
		if got != want {
			t.Errorf("Sprintf(%q, %v) = %q, fmt gives %q", tc.format, tc.args, got, want)
		}
	}
	// What lite does not know it says, never printing a wrong value.
	if got := Sprintf("%v", struct{}{}); got != "%!v(TYPE?)" {
		t.Errorf("Sprintf of a struct = %q", got)
	}
	if got := Sprintf(verbD, "x"); got != "%!d(string)" {
		t.Errorf("Sprintf(%%d, string) = %q", got)
	}
}

func TestErrorf(t *testing.T) {
	err := Errorf("opening %s: %w", "/x", fs.ErrNotExist)
	if err.Error() != "opening /x: file does not exist" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Errorf = %q, errors.Is ErrNotExist: %v", err, errors.Is(err, fs.ErrNotExist))
	}
	var pe *os.PathError
	err = Errorf("a %w b %w", fs.ErrExist, &os.PathError{Op: "open", Path: "/y", Err: fs.ErrPermission})
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &pe) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Errorf with two %%w does not wrap both: %v", err)
	}
	if errors.Unwrap(Errorf("no wrap %v", fs.ErrExist)) != nil {
		t.Errorf("Errorf with %%v wraps")
	}
}
