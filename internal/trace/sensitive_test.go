package trace

import "testing"

func TestSensitive(t *testing.T) {
	tests := []struct {
		path string
		head string
		want bool
	}{
		{"/etc/shadow", "", true},
		{"/etc/gshadow", "", true},
		{"/etc/sudoers", "", true},
		{"/etc/sudoers.d/90-cloud", "", true},
		{"/root/.ssh/authorized_keys", "", true},
		{"/home/ann/.ssh/config", "", true},
		{"/srv/keys/id_ed25519", "", true},
		{"/etc/ssh/ssh_host_rsa_key", "", true},
		{"/etc/redis/tls.key", "", true},
		{"/etc/redis/tls.pem", "-----BEGIN PRIVATE KEY-----\nMII", true},
		{"/etc/redis/cert.pem", "-----BEGIN CERTIFICATE-----\nMII", false},
		{"/etc/ssl/private/ssl-cert-snakeoil.key", "", true},
		{"/root/.netrc", "", true},
		{"/root/.aws/credentials", "", true},
		{"/root/.docker/config.json", "", true},
		{"/var/lib/postgresql/.pgpass", "", true},
		{"/etc/passwd", "", false},
		{"/etc/ssh/ssh_host_rsa_key.pub", "", false},
		{"/etc/ssh/sshd_config", "", false},
		{"/usr/share/doc/sudo/examples/sudoers", "", false},
		{"/etc/hostname", "", false},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "", false},
	}
	for _, tt := range tests {
		reason, got := Sensitive(tt.path, []byte(tt.head))
		if got != tt.want {
			t.Errorf("Sensitive(%q) = %v (%q), want %v", tt.path, got, reason, tt.want)
		}
		if got && reason == "" {
			t.Errorf("Sensitive(%q): no reason", tt.path)
		}
	}
}

func TestProcSysPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/proc/1234/stat", "/proc/self/stat", true},
		{"/proc/self/task/77/comm", "/proc/thread-self/comm", true},
		{"/proc/sys/net/core/somaxconn", "/proc/sys/net/core/somaxconn", true},
		{"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/transparent_hugepage/enabled", true},
		{"/process", "", false},
		{"/etc/hostname", "", false},
	}
	for _, tt := range tests {
		got, ok := procSysPath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("procSysPath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
