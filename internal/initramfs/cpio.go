package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// File type bits of Header.Mode (as in st_mode).
const (
	TypeMask    = 0o170000
	TypeSocket  = 0o140000
	TypeSymlink = 0o120000
	TypeReg     = 0o100000
	TypeBlock   = 0o060000
	TypeDir     = 0o040000
	TypeChar    = 0o020000
	TypeFIFO    = 0o010000
)

const (
	newcMagic   = "070701"
	headerLen   = 110
	trailerName = "TRAILER!!!"
	// blockSize is what the archive is padded to after the trailer, as
	// GNU cpio does.
	blockSize = 512
)

// Header is one entry of a newc ("070701") cpio archive.
type Header struct {
	// Name is the path inside the archive, without a leading slash
	// ("etc/passwd").
	Name string
	// Mode is the st_mode: file type bits (TypeReg, TypeDir, ...) and
	// permission bits.
	Mode     uint32
	Uid, Gid int
	Mtime    int64
	// Size is the length of the data: the file's bytes, or the symlink
	// target. Directories and device nodes have none.
	Size int64
	// Linkname is the target of a symlink; the Writer writes it as the
	// entry's data.
	Linkname string
	// RdevMajor and RdevMinor are the device numbers of a device node.
	RdevMajor, RdevMinor uint32
	// Ino is the inode number. The Writer assigns them (1, 2, 3, ...) in
	// the order entries are written; the Reader reports what it read.
	Ino uint32
	// Nlink is the link count. The Writer writes 2 for directories and 1
	// otherwise.
	Nlink uint32
}

// Type returns the file type bits of Mode.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// FileMode returns Mode as an fs.FileMode.
func (h *Header) FileMode() fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch h.Type() {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// ModeOf returns the st_mode for an fs.FileMode.
func ModeOf(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	switch {
	case m.IsDir():
		mode |= TypeDir
	case m&fs.ModeSymlink != 0:
		mode |= TypeSymlink
	case m&fs.ModeCharDevice != 0:
		mode |= TypeChar
	case m&fs.ModeDevice != 0:
		mode |= TypeBlock
	case m&fs.ModeNamedPipe != 0:
		mode |= TypeFIFO
	case m&fs.ModeSocket != 0:
		mode |= TypeSocket
	default:
		mode |= TypeReg
	}
	return mode
}

// Writer writes a newc cpio archive, the format the Linux kernel unpacks
// as an initramfs. Call WriteHeader, then Write the entry's data (regular
// files only), and Close to write the trailer.
type Writer struct {
	w      io.Writer
	n      int64 // bytes written
	ino    uint32
	remain int64 // data bytes still expected for the current entry
	pad    int64 // padding after the current entry's data
	closed bool
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// ErrWriteTooLong is returned when more data is written than Header.Size.
var ErrWriteTooLong = errors.New("cpio: write too long")

// WriteHeader starts a new entry. The previous entry's data must be
// complete.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	if h.Name == "" || h.Name[0] == '/' {
		return fmt.Errorf("cpio: bad entry name %q (want a relative path)", h.Name)
	}
	w.ino++
	hdr := *h
	hdr.Ino = w.ino
	hdr.Nlink = 1
	switch hdr.Type() {
	case TypeDir:
		hdr.Nlink = 2
		hdr.Size = 0
	case TypeSymlink:
		hdr.Size = int64(len(hdr.Linkname))
	case TypeReg:
	default:
		hdr.Size = 0
	}
	if err := w.writeRaw(&hdr); err != nil {
		return err
	}
	if hdr.Type() == TypeSymlink {
		if _, err := w.write([]byte(hdr.Linkname)); err != nil {
			return err
		}
		return w.writePad(pad4(hdr.Size))
	}
	w.remain = hdr.Size
	w.pad = pad4(hdr.Size)
	return nil
}

func (w *Writer) writeRaw(h *Header) error {
	if h.Size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes is more than newc can hold (4 GiB)", h.Name, h.Size)
	}
	buf := make([]byte, 0, headerLen+len(h.Name)+4)
	buf = append(buf, newcMagic...)
	for _, v := range []uint64{
		uint64(h.Ino), uint64(h.Mode), uint64(uint32(h.Uid)), uint64(uint32(h.Gid)),
		uint64(h.Nlink), uint64(uint32(h.Mtime)), uint64(h.Size),
		0, 0, // dev major, minor
		uint64(h.RdevMajor), uint64(h.RdevMinor),
		uint64(len(h.Name) + 1),
		0, // check
	} {
		buf = append(buf, fmt.Sprintf("%08x", v)...)
	}
	buf = append(buf, h.Name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, err := w.write(buf)
	return err
}

// Write writes data of the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		n, err := w.write(p[:w.remain])
		w.remain -= int64(n)
		if err == nil {
			err = ErrWriteTooLong
		}
		return n, err
	}
	n, err := w.write(p)
	w.remain -= int64(n)
	return n, err
}

func (w *Writer) finishEntry() error {
	if w.remain > 0 {
		return fmt.Errorf("cpio: entry data short by %d bytes", w.remain)
	}
	err := w.writePad(w.pad)
	w.pad = 0
	return err
}

func (w *Writer) write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

var zeros [blockSize]byte

func (w *Writer) writePad(n int64) error {
	if n == 0 {
		return nil
	}
	_, err := w.write(zeros[:n])
	return err
}

// Close writes the trailer entry and pads the archive to 512 bytes. It
// does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	if err := w.writeRaw(&Header{Name: trailerName, Nlink: 1}); err != nil {
		return err
	}
	w.closed = true
	if r := w.n % blockSize; r != 0 {
		return w.writePad(blockSize - r)
	}
	return nil
}

// Len returns the bytes written so far.
func (w *Writer) Len() int64 { return w.n }

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// Reader reads a newc cpio archive.
type Reader struct {
	r      *bufio.Reader
	remain int64
	pad    int64
	done   bool
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Next advances to the next entry and returns its header. It returns
// io.EOF after the trailer. For symlinks, Linkname is set and the data is
// already consumed.
func (r *Reader) Next() (*Header, error) {
	if r.done {
		return nil, io.EOF
	}
	if _, err := io.CopyN(io.Discard, r.r, r.remain+r.pad); err != nil {
		return nil, fmt.Errorf("cpio: skipping data: %w", err)
	}
	r.remain, r.pad = 0, 0
	var raw [headerLen]byte
	if _, err := io.ReadFull(r.r, raw[:]); err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if string(raw[:6]) != newcMagic {
		return nil, fmt.Errorf("cpio: bad magic %q (want %q)", raw[:6], newcMagic)
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio: bad header field %d: %w", i, err)
		}
		f[i] = uint32(v)
	}
	h := &Header{
		Ino: f[0], Mode: f[1], Uid: int(f[2]), Gid: int(f[3]), Nlink: f[4],
		Mtime: int64(f[5]), Size: int64(f[6]), RdevMajor: f[9], RdevMinor: f[10],
	}
	namesize := int64(f[11])
	if namesize == 0 {
		return nil, errors.New("cpio: empty name")
	}
	name := make([]byte, namesize+pad4(headerLen+namesize))
	if _, err := io.ReadFull(r.r, name); err != nil {
		return nil, fmt.Errorf("cpio: reading name: %w", err)
	}
	h.Name = string(name[:namesize-1])
	if h.Name == trailerName {
		r.done = true
		return nil, io.EOF
	}
	r.remain, r.pad = h.Size, pad4(h.Size)
	if h.Type() == TypeSymlink {
		target := make([]byte, h.Size)
		if _, err := io.ReadFull(r.r, target); err != nil {
			return nil, fmt.Errorf("cpio: reading link target of %s: %w", h.Name, err)
		}
		h.Linkname = string(target)
		r.remain = 0
	}
	return h, nil
}

// NextArchive moves past the trailer to the archive concatenated after
// this one, skipping the zeros between them, and reports whether there is
// one. The kernel unpacks such sequences (an image amended by bespoke
// verify --fix holds several).
func (r *Reader) NextArchive() bool {
	if !r.done {
		return false
	}
	for {
		b, err := r.r.Peek(1)
		if err != nil {
			return false
		}
		if b[0] != 0 {
			break
		}
		r.r.Discard(1)
	}
	r.done, r.remain, r.pad = false, 0, 0
	return true
}

// Read reads the current entry's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.remain -= int64(n)
	if err == io.EOF && r.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
