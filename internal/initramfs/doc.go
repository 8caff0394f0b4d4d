// Package initramfs builds the initramfs of a bespoke image: a
// reproducible newc cpio archive (Writer, Reader) holding the program, its
// ELF closure and the files it used (from the manifest), a minimal
// generated /etc, /dev/console and /dev/null, and the guest init as /init,
// compressed with a method the kernel is configured to unpack
// (KconfigFor). Build writes it atomically and returns a Report of every
// file and why it is there; InitBinary finds or builds the guest init.
package initramfs
