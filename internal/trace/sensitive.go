package trace

import (
	"bytes"
	"path"
	"strings"
)

// privateKeyNames are the default file names of SSH private keys.
var privateKeyNames = map[string]bool{
	"id_rsa": true, "id_dsa": true, "id_ecdsa": true, "id_ed25519": true,
	"id_ecdsa_sk": true, "id_ed25519_sk": true, "identity": true,
}

// credentialFiles are credential stores by base name.
var credentialFiles = map[string]bool{
	".netrc": true, ".pgpass": true, ".git-credentials": true, ".my.cnf": true,
}

// Sensitive says whether the file at p must never be copied into an image,
// and why. head is the start of the file's content (nil when unknown); it
// is used to recognize PEM private keys.
func Sensitive(p string, head []byte) (reason string, ok bool) {
	p = path.Clean(p)
	base := path.Base(p)
	dir := path.Dir(p)
	comps := strings.Split(p, "/")
	has := func(c string) bool {
		for _, x := range comps {
			if x == c {
				return true
			}
		}
		return false
	}
	hasSeq := func(a, b string) bool {
		for i := 0; i+1 < len(comps); i++ {
			if comps[i] == a && comps[i+1] == b {
				return true
			}
		}
		return false
	}
	switch {
	case dir == "/etc" && (base == "shadow" || base == "gshadow" || base == "shadow-" || base == "gshadow-"):
		return "password hashes", true
	case strings.HasPrefix(p, "/etc/sudoers"):
		return "sudo policy", true
	case has(".ssh"):
		return "SSH keys and configuration of a user", true
	case dir == "/etc/ssh" && strings.HasPrefix(base, "ssh_host_") && strings.HasSuffix(base, "_key"):
		return "SSH host private key", true
	case privateKeyNames[base]:
		return "private key", true
	case p == "/etc/ssl/private" || strings.HasPrefix(p, "/etc/ssl/private/"):
		return "TLS private keys", true
	case has(".gnupg"):
		return "GnuPG keys", true
	case credentialFiles[base]:
		return "credentials", true
	case hasSeq(".aws", "credentials"):
		return "cloud credentials", true
	case hasSeq(".docker", "config.json"):
		return "registry credentials", true
	case hasSeq(".kube", "config"):
		return "cluster credentials", true
	case strings.HasSuffix(base, ".key"):
		return "private key", true
	case bytes.Contains(head, []byte("PRIVATE KEY-----")):
		return "private key (PEM)", true
	}
	return "", false
}

// hostOnly says whether p lives in a filesystem that the kernel or the
// running system makes (/proc, /sys, /dev, /run), so that it is never
// copied into an image.
func hostOnly(p string) bool {
	for _, d := range []string{"/proc", "/sys", "/dev", "/run"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// procSysPath reports whether p is under /proc or /sys, and normalizes a
// process's own entries: /proc/1234/stat -> /proc/self/stat,
// /proc/self/task/1235/comm -> /proc/thread-self/comm.
func procSysPath(p string) (string, bool) {
	if !(p == "/proc" || p == "/sys" || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/")) {
		return "", false
	}
	if !strings.HasPrefix(p, "/proc/") {
		return p, true
	}
	comps := strings.Split(p, "/") // "", "proc", X, ...
	if isDigits(comps[2]) {
		comps[2] = "self"
	}
	if comps[2] == "self" && len(comps) >= 5 && comps[3] == "task" && isDigits(comps[4]) {
		comps = append([]string{"", "proc", "thread-self"}, comps[5:]...)
	}
	return strings.Join(comps, "/"), true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SensitiveFile is Sensitive for a file on this host, its content's start
// read from disk.
func SensitiveFile(p string) (reason string, ok bool) {
	return Sensitive(p, realHost{}.Head(p))
}
