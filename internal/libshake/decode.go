package libshake

// An x86-64 instruction decoder that knows every instruction's length and
// the few things the shaker asks of it: the target of a relative branch,
// the address of a RIP-relative operand, whether it is lea, and (for code
// linked at a fixed address) an absolute displacement or immediate. It
// covers the legacy, 0F, 0F38 and 0F3A maps and VEX and EVEX encodings;
// what it does not know (XOP, 3DNow!, invalid opcodes) is an error.

import "errors"

// inst is what decode reports of one instruction.
type inst struct {
	len    int
	op     byte // the opcode byte (of its map)
	m      int  // map: 0 one-byte, 1 0F, 2 0F38, 3 0F3A, >3 EVEX maps
	vex    bool // VEX or EVEX encoded
	branch bool // a relative branch: rel is its displacement
	rel    int64
	ripRel bool // a RIP-relative memory operand: disp is its displacement
	absMem bool // a memory operand with no base or index register besides a scaled index: disp is absolute
	index  bool // absMem with an index register
	scale  int
	disp   int64
	hasImm bool
	imm    int64
	ret    bool // ret, ret imm16
}

var errUnknown = errors.New("unknown instruction")

// imm kinds
const (
	iNone = iota
	i8
	i16
	iz // 16 or 32 by operand size
	i16i8
)

// one-byte map: modrm presence and immediate kind; -1: invalid or prefix.
type opInfo struct {
	modrm bool
	imm   int8
	bad   bool
}

var oneByte [256]opInfo

func init() {
	for i := range oneByte {
		oneByte[i] = opInfo{}
	}
	for _, base := range []int{0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38} {
		for j := 0; j < 4; j++ {
			oneByte[base+j] = opInfo{modrm: true}
		}
		oneByte[base+4] = opInfo{imm: i8}
		oneByte[base+5] = opInfo{imm: iz}
	}
	for _, b := range []int{0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61, 0x82, 0x9a, 0xce, 0xd4, 0xd5, 0xd6, 0xea} {
		oneByte[b] = opInfo{bad: true}
	}
	oneByte[0x63] = opInfo{modrm: true}
	oneByte[0x68] = opInfo{imm: iz}
	oneByte[0x69] = opInfo{modrm: true, imm: iz}
	oneByte[0x6a] = opInfo{imm: i8}
	oneByte[0x6b] = opInfo{modrm: true, imm: i8}
	for b := 0x70; b <= 0x7f; b++ {
		oneByte[b] = opInfo{imm: i8} // rel8
	}
	oneByte[0x80] = opInfo{modrm: true, imm: i8}
	oneByte[0x81] = opInfo{modrm: true, imm: iz}
	oneByte[0x83] = opInfo{modrm: true, imm: i8}
	for b := 0x84; b <= 0x8f; b++ {
		oneByte[b] = opInfo{modrm: true}
	}
	oneByte[0xa8] = opInfo{imm: i8}
	oneByte[0xa9] = opInfo{imm: iz}
	for b := 0xb0; b <= 0xb7; b++ {
		oneByte[b] = opInfo{imm: i8}
	}
	for b := 0xb8; b <= 0xbf; b++ {
		oneByte[b] = opInfo{imm: iz} // imm64 with REX.W: decode
	}
	oneByte[0xc0] = opInfo{modrm: true, imm: i8}
	oneByte[0xc1] = opInfo{modrm: true, imm: i8}
	oneByte[0xc2] = opInfo{imm: i16}
	oneByte[0xc6] = opInfo{modrm: true, imm: i8}
	oneByte[0xc7] = opInfo{modrm: true, imm: iz}
	oneByte[0xc8] = opInfo{imm: i16i8}
	oneByte[0xca] = opInfo{imm: i16}
	oneByte[0xcd] = opInfo{imm: i8}
	for b := 0xd0; b <= 0xd3; b++ {
		oneByte[b] = opInfo{modrm: true}
	}
	for b := 0xd8; b <= 0xdf; b++ {
		oneByte[b] = opInfo{modrm: true}
	}
	for b := 0xe0; b <= 0xe7; b++ {
		oneByte[b] = opInfo{imm: i8}
	}
	oneByte[0xe8] = opInfo{imm: iz}
	oneByte[0xe9] = opInfo{imm: iz}
	oneByte[0xeb] = opInfo{imm: i8}
	oneByte[0xf6] = opInfo{modrm: true} // imm8 for /0 /1: decode
	oneByte[0xf7] = opInfo{modrm: true} // immz for /0 /1: decode
	oneByte[0xfe] = opInfo{modrm: true}
	oneByte[0xff] = opInfo{modrm: true}
}

// twoByte: the 0F map.
func twoByte(op byte) (modrm bool, imm int, bad bool) {
	switch {
	case op <= 0x03:
		return true, iNone, false
	case op == 0x05 || op == 0x06 || op == 0x07 || op == 0x08 || op == 0x09 || op == 0x0b || op == 0x0e:
		return false, iNone, false
	case op == 0x0d:
		return true, iNone, false
	case op >= 0x10 && op <= 0x2f:
		if op >= 0x24 && op <= 0x27 {
			return false, 0, true
		}
		return true, iNone, false
	case op >= 0x30 && op <= 0x37:
		return false, iNone, false
	case op >= 0x40 && op <= 0x6f:
		return true, iNone, false
	case op >= 0x70 && op <= 0x73:
		return true, i8, false
	case op == 0x77:
		return false, iNone, false
	case op >= 0x74 && op <= 0x7f:
		if op == 0x7a || op == 0x7b {
			return false, 0, true
		}
		return true, iNone, false
	case op >= 0x80 && op <= 0x8f:
		return false, iz, false // jcc rel32
	case op >= 0x90 && op <= 0x9f:
		return true, iNone, false
	case op == 0xa0 || op == 0xa1 || op == 0xa2 || op == 0xa8 || op == 0xa9 || op == 0xaa:
		return false, iNone, false
	case op == 0xa4 || op == 0xac || op == 0xba || op == 0xc2 || op == 0xc4 || op == 0xc5 || op == 0xc6:
		return true, i8, false
	case op == 0xa3 || op == 0xa5 || op == 0xab || op == 0xad || op == 0xae || op == 0xaf:
		return true, iNone, false
	case op >= 0xb0 && op <= 0xc7:
		return true, iNone, false
	case op >= 0xc8 && op <= 0xcf:
		return false, iNone, false
	case op >= 0xd0:
		return true, iNone, false
	case op == 0xa6 || op == 0xa7:
		// VIA PadLock (xstore, xcrypt*, xsha*, montmul: 0F A7 C0, F3 0F A7
		// C8, ...): a register-form ModRM byte; decode checks the form.
		return true, iNone, false
	}
	return false, 0, true
}

// decode decodes the instruction at the start of b.
func decode(b []byte) (inst, error) {
	var in inst
	i := 0
	opsize16, addr32, rexW := false, false, false
	// Legacy prefixes, then REX.
	for ; i < len(b) && i < 14; i++ {
		switch b[i] {
		case 0x66:
			opsize16 = true
			continue
		case 0x67:
			addr32 = true
			continue
		case 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65:
			continue
		}
		break
	}
	if i < len(b) && b[i]&0xf0 == 0x40 {
		rexW = b[i]&8 != 0
		i++
	}
	if i >= len(b) {
		return in, errUnknown
	}
	modrm, imm := false, iNone
	op := b[i]
	switch {
	case op == 0xc4 || op == 0xc5 || op == 0x62:
		// VEX (C4 three bytes, C5 two) or EVEX (62, four).
		in.vex = true
		evex := op == 0x62
		m := 1
		switch op {
		case 0xc5:
			i += 2
		case 0xc4:
			if i+2 >= len(b) {
				return in, errUnknown
			}
			m = int(b[i+1] & 0x1f)
			i += 3
		case 0x62:
			if i+3 >= len(b) {
				return in, errUnknown
			}
			m = int(b[i+1] & 0x07)
			i += 4
		}
		if i >= len(b) {
			return in, errUnknown
		}
		op = b[i]
		i++
		in.op, in.m = op, m
		switch m {
		case 1:
			modrm = !(op == 0x77 && !evex)
			if op >= 0x70 && op <= 0x73 || op == 0xc2 || op >= 0xc4 && op <= 0xc6 {
				imm = i8
			}
		case 2, 5, 6:
			modrm = true
		case 3:
			modrm, imm = true, i8
		default:
			return in, errUnknown
		}
	case op == 0x0f:
		i++
		if i >= len(b) {
			return in, errUnknown
		}
		op = b[i]
		i++
		switch op {
		case 0x38:
			if i >= len(b) {
				return in, errUnknown
			}
			in.op, in.m = b[i], 2
			i++
			modrm = true
		case 0x3a:
			if i >= len(b) {
				return in, errUnknown
			}
			in.op, in.m = b[i], 3
			i++
			modrm, imm = true, i8
		case 0x0f:
			return in, errUnknown // 3DNow!
		default:
			var bad bool
			modrm, imm, bad = twoByte(op)
			if bad || (op == 0xa6 || op == 0xa7) && (i >= len(b) || b[i]>>6 != 3) {
				return in, errUnknown
			}
			in.op, in.m = op, 1
			if op >= 0x80 && op <= 0x8f {
				in.branch = true
			}
		}
	case op == 0x8f && i+1 < len(b) && b[i+1]&0x1f >= 8:
		// XOP (AMD): 8F, RXB.map, W.vvvv.L.pp, opcode, modrm.
		if i+3 >= len(b) {
			return in, errUnknown
		}
		m := int(b[i+1] & 0x1f)
		in.vex, in.m, in.op = true, m, b[i+3]
		i += 4
		modrm = true
		switch m {
		case 8:
			imm = i8
		case 9:
		case 10:
			imm = iz
		default:
			return in, errUnknown
		}
	default:
		info := oneByte[op]
		if info.bad || op&0xf0 == 0x40 || op == 0x66 || op == 0x67 || op == 0xf0 || op == 0xf2 || op == 0xf3 || op == 0x2e || op == 0x36 || op == 0x3e || op == 0x26 || op == 0x64 || op == 0x65 {
			return in, errUnknown
		}
		i++
		in.op = op
		modrm, imm = info.modrm, int(info.imm)
		switch {
		case op >= 0x70 && op <= 0x7f, op >= 0xe0 && op <= 0xe3, op == 0xe8, op == 0xe9, op == 0xeb:
			in.branch = true
		case op == 0xc3 || op == 0xc2:
			in.ret = true
		case op >= 0xa0 && op <= 0xa3:
			// moffs: an absolute address.
			n := 8
			if addr32 {
				n = 4
			}
			if i+n > len(b) {
				return in, errUnknown
			}
			in.absMem, in.disp = true, int64(le(b[i:i+n]))
			i += n
			if i > 15 {
				return in, errUnknown // longer than x86 allows
			}
			in.len = i
			return in, nil
		case op >= 0xb8 && op <= 0xbf && rexW:
			if i+8 > len(b) {
				return in, errUnknown
			}
			in.hasImm, in.imm = true, int64(le(b[i:i+8]))
			if i+8 > 15 {
				return in, errUnknown
			}
			in.len = i + 8
			return in, nil
		}
	}
	if modrm {
		if i >= len(b) {
			return in, errUnknown
		}
		mr := b[i]
		i++
		mod, reg, rm := mr>>6, (mr>>3)&7, mr&7
		if !in.vex && in.m == 0 && (op == 0xf6 || op == 0xf7) && reg <= 1 {
			if op == 0xf6 {
				imm = i8
			} else {
				imm = iz
			}
		}
		if op == 0xc7 && in.m == 0 && mr == 0xf8 {
			in.branch = true // xbegin rel32
		}
		if mod != 3 {
			dispN := 0
			switch mod {
			case 1:
				dispN = 1
			case 2:
				dispN = 4
			}
			if rm == 4 {
				if i >= len(b) {
					return in, errUnknown
				}
				sib := b[i]
				i++
				if sib&7 == 5 && mod == 0 {
					dispN = 4
					in.absMem = true
					in.index = (sib>>3)&7 != 4
					in.scale = 1 << (sib >> 6)
				}
			} else if rm == 5 && mod == 0 {
				dispN = 4
				in.ripRel = true
			}
			if i+dispN > len(b) {
				return in, errUnknown
			}
			switch dispN {
			case 1:
				in.disp = int64(int8(b[i]))
			case 4:
				in.disp = int64(int32(le(b[i : i+4])))
			}
			i += dispN
		}
	}
	n := 0
	switch imm {
	case i8:
		n = 1
	case i16:
		n = 2
	case iz:
		n = 4
		if opsize16 && !rexW && !in.branch {
			n = 2
		}
	case i16i8:
		n = 3
	}
	if i+n > len(b) {
		return in, errUnknown
	}
	if n > 0 {
		v := le(b[i : i+n])
		switch n {
		case 1:
			in.imm = int64(int8(v))
		case 2:
			in.imm = int64(int16(v))
		case 4:
			in.imm = int64(int32(v))
		default:
			in.imm = int64(v)
		}
		in.hasImm = true
		if in.branch {
			in.rel = in.imm
			in.hasImm = false
		}
	}
	i += n
	if i > 15 {
		return in, errUnknown
	}
	in.len = i
	return in, nil
}

func le(b []byte) uint64 {
	var v uint64
	for j := len(b) - 1; j >= 0; j-- {
		v = v<<8 | uint64(b[j])
	}
	return v
}
