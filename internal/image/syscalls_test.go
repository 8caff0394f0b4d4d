package image

import (
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/manifest"
)

func TestPlanSyscalls(t *testing.T) {
	table := []kbuild.Syscall{
		{Nr: 0, Name: "read", Entry: "sys_read"},
		{Nr: 99, Name: "sysinfo", Entry: "sys_sysinfo"},
		{Nr: 134, Name: "uselib"},
		{Nr: 232, Name: "epoll_wait", Entry: "sys_epoll_wait"},
		{Nr: 425, Name: "io_uring_setup", Entry: "sys_io_uring_setup"},
		{Nr: 426, Name: "io_uring_enter", Entry: "sys_io_uring_enter"},
	}
	m := &manifest.Manifest{Syscalls: []manifest.Syscall{{Name: "epoll_wait", Nr: 232}}}
	sh, err := PlanSyscalls(table, m, []string{"io_uring_enter"})
	if err != nil {
		t.Fatal(err)
	}
	// read: the guest init's; uselib: nothing to remove; epoll_wait: the
	// trace's; io_uring_enter: kept by name.
	if !slices.Equal(sh.Removed, []string{"sysinfo", "io_uring_setup"}) || !slices.Equal(sh.RemovedNrs, []int{99, 425}) || sh.Kept != 4 || sh.Table != 6 {
		t.Errorf("plan %+v", sh)
	}
	if _, err := PlanSyscalls(table, m, []string{"io_uring_setpu"}); err == nil || !strings.Contains(err.Error(), "io_uring_setpu") {
		t.Errorf("an unknown syscall to keep: %v, want an error naming it", err)
	}
}
