package trace

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRecorderCredentials: the ids a program switches to are recorded
// (an image needs their /etc/passwd and /etc/group entries); -1 leaves an
// id unchanged and is not one.
func TestRecorderCredentials(t *testing.T) {
	const unchanged = 0xffffffff
	r := newRecorder()
	for _, ev := range []*Event{
		{Nr: mustNumber("setgroups"), Args: [6]uint64{1, 0x1000}},
		{Nr: mustNumber("setresgid"), Args: [6]uint64{33, 33, 33}},
		{Nr: mustNumber("setresuid"), Args: [6]uint64{unchanged, 33, unchanged}},
		{Nr: mustNumber("setuid"), Args: [6]uint64{33}},
		{Nr: mustNumber("setregid"), Args: [6]uint64{unchanged, 65534}},
		{Nr: mustNumber("setfsuid"), Args: [6]uint64{101}},
	} {
		r.add(ev)
	}
	m := r.build(&fakeHost{}, "/usr/bin/app", func(string) {})
	m.Normalize()
	if diff := cmp.Diff([]int{33, 101}, m.UIDs); diff != "" {
		t.Errorf("UIDs (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]int{33, 65534}, m.GIDs); diff != "" {
		t.Errorf("GIDs (-want +got)\n%s", diff)
	}
	// The tracer hands these syscalls to the recorder, not only counts them.
	for _, name := range []string{"setuid", "setreuid", "setresuid", "setfsuid", "setgid", "setregid", "setresgid", "setfsgid"} {
		if specFor(mustNumber(name)) == nil {
			t.Errorf("specFor(%s) = nil: the tracer would only count it", name)
		}
	}
}
