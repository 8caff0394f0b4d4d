package initramfs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAddHostIDs: the accounts a program switched to while traced come
// from the host's passwd and group, without passwords; the spec's user
// and root stay as they are; an unknown id is a warning.
func TestAddHostIDs(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	gr := filepath.Join(dir, "group")
	os.WriteFile(pw, []byte("root:x:0:0:root:/root:/bin/bash\n# comment\nwww-data:secret:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(gr, []byte("root:x:0:\nwww-data:x:33:\nssl-cert:x:103:postgres\nnogroup:x:65534:\n"), 0o644)
	passwd, group := PasswdGroup(User{Name: "nobody", Uid: 65534, Gid: 65534, Group: "nogroup"})
	p, g, warn := AddHostIDs(passwd, group, pw, gr, []int{0, 33, 65534, 4242}, []int{103, 4243})
	wantP := passwd + "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
	wantG := group + "ssl-cert:x:103:\nwww-data:x:33:\n"
	if p != wantP {
		t.Errorf("passwd = %q, want %q", p, wantP)
	}
	if g != wantG {
		t.Errorf("group = %q, want %q", g, wantG)
	}
	wantWarn := []string{
		"uid 4242: the program switched to it, but the host's /etc/passwd does not name it",
		"gid 4243: the program switched to it, but the host's /etc/group does not name it",
	}
	if !slices.Equal(warn, wantWarn) {
		t.Errorf("warnings = %q, want %q", warn, wantWarn)
	}
}
