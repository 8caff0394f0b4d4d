package spec

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAccount(t *testing.T) {
	for _, tc := range []struct {
		user    *User
		want    Account
		wantErr string
	}{
		{user: nil, want: Root},
		{user: &User{Name: "root"}, want: Root},
		{user: &User{Name: "redis"}, want: Account{Name: "redis", UID: 102, GID: 105, Group: "redis", Home: "/var/lib/redis", Shell: "/usr/sbin/nologin"}},
		{user: &User{Name: "postgres", Home: "/srv"}, want: Account{Name: "postgres", UID: 104, GID: 110, Group: "postgres", Home: "/srv", Shell: "/bin/bash"}},
		{user: &User{Name: "app", UID: intp(1000)}, want: Account{Name: "app", UID: 1000, GID: 1000, Group: "app", Home: "/", Shell: "/usr/sbin/nologin"}},
		{user: &User{Name: "app", UID: intp(1000), GID: intp(109)}, want: Account{Name: "app", UID: 1000, GID: 109, Group: "ssl-cert", Home: "/", Shell: "/usr/sbin/nologin"}},
		{user: &User{Name: "mysql"}, wantErr: `x.yaml:2: user "mysql" does not exist on this host`},
	} {
		sp := &Spec{File: "x.yaml", User: tc.user, lines: map[string]int{"user": 2}}
		got, err := sp.Account("testdata/etc")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Account(%+v): got %+v, %v; want error containing %q", tc.user, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Account(%+v): %v", tc.user, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Account(%+v) mismatch (-want +got):\n%s", tc.user, diff)
		}
	}
	if got, want := (Account{Name: "redis", UID: 102, GID: 105, Group: "redis", Home: "/var/lib/redis", Shell: "/usr/sbin/nologin"}).PasswdLine(), "redis:x:102:105::/var/lib/redis:/usr/sbin/nologin"; got != want {
		t.Errorf("PasswdLine: got %q, want %q", got, want)
	}
}

func TestLookupOwner(t *testing.T) {
	def := Account{Name: "app", UID: 1000, GID: 1000, Group: "app"}
	for _, tc := range []struct {
		owner    string
		uid, gid int
		wantErr  string
	}{
		{"", 1000, 1000, ""},
		{"app", 1000, 1000, ""},
		{"postgres", 104, 110, ""},
		{"postgres:ssl-cert", 104, 109, ""},
		{"redis:app", 102, 1000, ""},
		{"7:8", 7, 8, ""},
		{"nobody-here", 0, 0, "no user nobody-here"},
		{"redis:nogroup", 0, 0, "no group nogroup"},
	} {
		uid, gid, err := LookupOwner(tc.owner, "testdata/etc", def)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LookupOwner(%q): got %d:%d, %v; want error containing %q", tc.owner, uid, gid, err, tc.wantErr)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid {
			t.Errorf("LookupOwner(%q): got %d:%d, %v; want %d:%d", tc.owner, uid, gid, err, tc.uid, tc.gid)
		}
	}
}

func TestCheckHost(t *testing.T) {
	sp, err := Parse("testdata/x.yaml", []byte(`cmd: [a]
user: postgres
include:
  - etc/passwd
  - missing.conf
dirs:
  - {path: /run/a, owner: ghost}
kernel:
  source: no-such-linux
`))
	if err != nil {
		t.Fatal(err)
	}
	err = sp.CheckHost("testdata/etc")
	if err == nil {
		t.Fatal("CheckHost succeeded, want errors")
	}
	for _, want := range []string{
		"testdata/x.yaml:5: include " + filepath.Join(sp.Dir, "missing.conf") + ": no such file or directory",
		"testdata/x.yaml:7: dirs /run/a: owner \"ghost\"",
		"testdata/x.yaml:9: kernel source",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckHost error:\n%v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "etc/passwd") || strings.Contains(err.Error(), `user "postgres"`) {
		t.Errorf("CheckHost error mentions a path or user that exists:\n%v", err)
	}
}
